-- Purpose: roles with their capabilities, and a profile for every auth user (created by a trigger).
-- Affects: public.roles (admin, member, viewer), public.profiles, trigger on auth.users.
-- Caveats: the three roles are reference data the schema needs (a new profile points at one), so they are
-- inserted here, not in the seed. New users start as viewers; an admin promotes them.

create table public.roles (
    name text primary key check (name ~ '^[a-z][a-z0-9_]{1,62}$'),
    description text not null default '',
    grants_all boolean not null default false,
    capabilities jsonb not null default '{}' check (jsonb_typeof(capabilities) = 'object')
);
comment on table public.roles is
'What each role may do: capabilities {"<section>": {"view": bool, "edit": bool}}; grants_all passes everything.';
comment on column public.roles.capabilities is
'Sections: devices, entries, services, tags, global, users, workspaces, breakpoints, agents. Only a JSON true grants.';

insert into public.roles (name, description, grants_all, capabilities) values
('admin', 'Everything, in every workspace.', true, '{}'),
(
    'member', 'Works with devices, traffic, catalog and breakpoints in their workspaces.', false,
    '{"devices": {"view": true, "edit": true}, "entries": {"view": true, "edit": false},
      "services": {"view": true, "edit": true}, "tags": {"view": true, "edit": true},
      "global": {"view": true, "edit": false}, "users": {"view": true, "edit": false},
      "workspaces": {"view": true, "edit": false}, "breakpoints": {"view": true, "edit": true},
      "agents": {"view": true, "edit": false}}'
),
(
    'viewer', 'Reads traffic and the catalog; changes nothing.', false,
    '{"devices": {"view": true, "edit": false}, "entries": {"view": true, "edit": false},
      "services": {"view": true, "edit": false}, "tags": {"view": true, "edit": false},
      "global": {"view": true, "edit": false}, "users": {"view": false, "edit": false},
      "workspaces": {"view": true, "edit": false}, "breakpoints": {"view": true, "edit": false},
      "agents": {"view": true, "edit": false}}'
)
on conflict (name) do nothing;

create table public.profiles (
    id uuid primary key references auth.users (id) on delete cascade,
    email text,
    display_name text not null default '' check (length(display_name) <= 200),
    role text not null default 'viewer' references public.roles (name) on update cascade,
    busybro_prefs jsonb not null default '{}' check (jsonb_typeof(busybro_prefs) = 'object'),
    created_at timestamptz not null default now()
);
comment on table public.profiles is 'One row per auth user: display name, role and assistant preferences.';
create index profiles_role_idx on public.profiles (role);

revoke all on public.roles, public.profiles from anon, authenticated;
grant select on public.roles, public.profiles to authenticated;
grant update (display_name, busybro_prefs) on public.profiles to authenticated;
-- Policies follow in the next migrations, once the capability helpers exist.
alter table public.roles enable row level security;
alter table public.profiles enable row level security;

create or replace function private.handle_auth_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer: auth.users is written by the auth server's role, which cannot write public.profiles.
    if tg_op = 'INSERT' then
        insert into public.profiles (id, email, display_name)
        values (
            new.id, new.email,
            left(coalesce(new.raw_user_meta_data ->> 'display_name', split_part(coalesce(new.email, ''), '@', 1)), 200)
        )
        on conflict (id) do nothing;
    elsif new.email is distinct from old.email then
        update public.profiles set email = new.email where id = new.id;
    end if;
    return null;
end;
$$;
revoke execute on function private.handle_auth_user() from public, anon;

create trigger on_auth_user_changed
after insert or update of email on auth.users
for each row execute function private.handle_auth_user();
