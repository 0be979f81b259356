-- Purpose: roles with their capabilities, a profile for every auth user (made by a trigger on auth.users), and
-- who is calling and may they: the capability helpers every policy and RPC uses.
-- Defines:
--   table public.profiles
--   table public.roles
--   function private.caller_grants()
--   function private.caller_role()
--   function private.handle_auth_user()
--   function private.has_capability(text,text)
--   function private.is_admin()
--   function private.my_workspaces()
--   function private.require_admin(text)
--   function private.require_capability(text,text,text)
--   function private.workspaces_with(text,text)
--   trigger on_auth_user_changed on auth.users
--   policy "profiles: select own, or all with users:view" on public.profiles
--   policy "profiles: update own" on public.profiles
--   policy "roles: select signed-in users" on public.roles
-- Caveats: the three roles (admin, member, viewer) are reference data the schema needs (a new profile points at
-- one), so they are inserted here, not in the seed; new users start as viewers. The helpers are definers where
-- they read roles, profiles and memberships the caller may not list; each is stable and called as (select ...)
-- in policies so the planner runs it once per statement. my_workspaces() and workspaces_with() read
-- workspace_members (next file): they are plpgsql, which resolves names when called. A user's role changes only
-- through set_user_role(); the column grants keep a user from editing anything of their profile but
-- display_name and busybro_prefs.

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

-- Policies follow below, once the capability helpers exist.
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

create or replace function private.caller_role()
returns text
language sql
stable
set search_path = ''
as $$
    select coalesce(auth.jwt() ->> 'role', 'anon')
$$;
comment on function private.caller_role() is 'The role claim of the caller''s JWT (anon when there is none).';

create or replace function private.caller_grants(out grants_all boolean, out capabilities jsonb)
language sql
stable
security definer
set search_path = ''
as $$
    -- A definer: it reads the caller's profile and role, which the caller may not be allowed to list.
    select
        coalesce(r.grants_all, false) or private.caller_role() = 'service_role',
        coalesce(r.capabilities, '{}')
    from (select) as one
    left join public.profiles as p on private.caller_role() = 'authenticated' and p.id = auth.uid()
    left join public.roles as r on r.name = p.role
$$;
comment on function private.caller_grants() is
'The caller''s grants_all and capabilities: the service role grants all; anon and devices hold nothing.';

create or replace function private.has_capability(section text, action text)
returns boolean
language sql
stable
set search_path = ''
as $$
    select g.grants_all or coalesce(g.capabilities -> section -> action = 'true'::jsonb, false)
    from private.caller_grants() as g
$$;
comment on function private.has_capability(text, text) is
'True when the caller''s role grants_all or its capabilities -> section -> action is exactly JSON true.';

create or replace function private.is_admin()
returns boolean
language sql
stable
set search_path = ''
as $$
    select g.grants_all from private.caller_grants() as g
$$;
comment on function private.is_admin() is 'True for the service role and for users whose role grants_all.';

create or replace function private.my_workspaces()
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- A definer: membership decides what a user may read, so it cannot itself be filtered by it.
    if private.caller_role() <> 'authenticated' then
        return '{}';
    end if;
    return coalesce(
        (select array_agg(m.workspace_id) from public.workspace_members as m where m.user_id = auth.uid()), '{}'
    );
end;
$$;
comment on function private.my_workspaces() is 'The workspaces the calling user belongs to.';
revoke execute on function private.caller_role(), private.caller_grants(), private.has_capability(text, text),
private.is_admin(), private.my_workspaces() from public, anon;
grant execute on function private.caller_role(), private.caller_grants(), private.has_capability(text, text),
private.is_admin(), private.my_workspaces() to authenticated, device, service_role;

create or replace function private.workspaces_with(section text, action text)
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- A definer: admins act in every workspace, which they may not otherwise list.
    if private.is_admin() then
        return coalesce((select array_agg(w.id) from public.workspaces as w), '{}');
    elsif private.has_capability(section, action) then
        return private.my_workspaces();
    end if;
    return '{}';
end;
$$;
comment on function private.workspaces_with(text, text) is
'Workspaces where the caller holds section:action: all for admins, their own with the capability, else none.';
revoke execute on function private.workspaces_with(text, text) from public, anon;
grant execute on function private.workspaces_with(text, text) to authenticated, device, service_role;

create or replace function private.require_capability(section text, action text, verb text)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    if not private.has_capability(section, action) then
        raise exception using
            errcode = '42501',
            message = format('you need the %s:%s capability to %s', section, action, verb),
            hint = 'Ask an admin to give your role this capability.';
    end if;
end;
$$;

create or replace function private.require_admin(verb text)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    if not private.is_admin() then
        raise exception using
            errcode = '42501', message = format('only an admin may %s', verb), hint = 'Ask an admin to do it.';
    end if;
end;
$$;
revoke execute on function private.require_capability(text, text, text), private.require_admin(text)
from public, anon;
grant execute on function private.require_capability(text, text, text), private.require_admin(text)
to authenticated, service_role;

create policy "roles: select signed-in users" on public.roles
for select to authenticated
using (true);

create policy "profiles: select own, or all with users:view" on public.profiles
for select to authenticated
using (id = (select auth.uid()) or (select private.has_capability('users', 'view')));

create policy "profiles: update own" on public.profiles
for update to authenticated
using (id = (select auth.uid()))
with check (id = (select auth.uid()));
