-- Seed for a local developer: applied by `busymate db reset` and `supabase db reset` after the migrations.
-- Tests never depend on it: every pgTAP file and integration test makes its own users and rows.
-- The product's roles, workspace and admin arrive with their migrations; until then there is nothing to seed.
select 1;
