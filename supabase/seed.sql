-- Seed for a local developer: applied by `busymate db reset` and `supabase db reset` after the migrations.
-- Tests never depend on it: every pgTAP file builds its own world (tests.make_world) and every integration
-- test makes its own users and rows.

-- The three roles are reference data a migration already inserts; stating them here keeps a seeded database
-- right even if someone edited them by hand.
insert into public.roles (name, description, grants_all) values
('admin', 'Everything, in every workspace.', true)
on conflict (name) do update set grants_all = true;
insert into public.roles (name) values ('member'), ('viewer') on conflict (name) do nothing;

-- A workspace to capture into. The local admin and this machine's proxy device are created by `make up`.
insert into public.workspaces (slug, name, retention_days) values ('local', 'Local', 7)
on conflict (slug) do nothing;
