-- Purpose: workspaces (the tenant of captured traffic), their members, saved filter tabs, and the admin RPCs
-- that write them.
-- Defines:
--   table public.workspace_members
--   table public.workspace_tabs
--   table public.workspaces
--   function private.add_workspace_member(uuid,uuid)
--   function private.delete_admin_row(text,uuid,uuid)
--   function private.save_workspace(uuid,text,text,integer)
--   function private.save_workspace_tab(uuid,uuid,uuid,text,jsonb,integer)
--   function public.add_workspace_member(uuid,uuid)
--   function public.create_workspace(text,text,integer)
--   function public.create_workspace_tab(uuid,text,jsonb,uuid,integer)
--   function public.delete_workspace(uuid)
--   function public.delete_workspace_tab(uuid)
--   function public.remove_workspace_member(uuid,uuid)
--   function public.update_workspace(uuid,text,integer)
--   function public.update_workspace_tab(uuid,text,jsonb,integer)
--   policy "workspace_members: select fellow members and admins" on public.workspace_members
--   policy "workspace_tabs: delete own tabs" on public.workspace_tabs
--   policy "workspace_tabs: insert own tabs in my workspaces" on public.workspace_tabs
--   policy "workspace_tabs: select shared and own tabs of my workspaces" on public.workspace_tabs
--   policy "workspace_tabs: update own tabs" on public.workspace_tabs
--   policy "workspaces: select members and admins" on public.workspaces
-- Caveats: members read their workspaces; admins read all. Writes go through the admin RPCs, except that a user
-- manages their own tabs directly.

create table public.workspaces (
    id uuid primary key default gen_random_uuid(),
    slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name text not null check (length(name) between 1 and 200),
    retention_days integer not null default 7 check (retention_days between 1 and 3650),
    created_at timestamptz not null default now()
);
comment on table public.workspaces is 'A tenant of captured traffic: its devices, entries and tabs.';
comment on column public.workspaces.retention_days is 'Entries older than this many days are removed.';

create table public.workspace_members (
    workspace_id uuid not null references public.workspaces (id) on delete cascade,
    user_id uuid not null references public.profiles (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (workspace_id, user_id)
);
comment on table public.workspace_members is 'Who belongs to which workspace.';
create index workspace_members_user_id_idx on public.workspace_members (user_id);

create table public.workspace_tabs (
    id uuid primary key default gen_random_uuid(),
    workspace_id uuid not null references public.workspaces (id) on delete cascade,
    user_id uuid references public.profiles (id) on delete cascade,
    name text not null check (length(name) between 1 and 100),
    filter jsonb not null default '{}' check (jsonb_typeof(filter) = 'object'),
    position integer not null default 0,
    created_at timestamptz not null default now()
);
comment on table public.workspace_tabs is 'Saved traffic filters; user_id null means shared with the whole workspace.';
create index workspace_tabs_workspace_id_idx on public.workspace_tabs (workspace_id, position);
create index workspace_tabs_user_id_idx on public.workspace_tabs (user_id);

revoke all on public.workspaces, public.workspace_members, public.workspace_tabs from anon, authenticated;
grant select on public.workspaces, public.workspace_members to authenticated;
grant select, delete on public.workspace_tabs to authenticated;
grant insert (workspace_id, user_id, name, filter, position) on public.workspace_tabs to authenticated;
grant update (name, filter, position) on public.workspace_tabs to authenticated;

alter table public.workspaces enable row level security;
alter table public.workspace_members enable row level security;
alter table public.workspace_tabs enable row level security;

create policy "workspaces: select members and admins" on public.workspaces
for select to authenticated
using (id = any((select private.my_workspaces())::uuid[]) or (select private.is_admin()));

create policy "workspace_members: select fellow members and admins" on public.workspace_members
for select to authenticated
using (workspace_id = any((select private.my_workspaces())::uuid[]) or (select private.is_admin()));

create policy "workspace_tabs: select shared and own tabs of my workspaces" on public.workspace_tabs
for select to authenticated
using (
    (workspace_id = any((select private.my_workspaces())::uuid[]) and (user_id is null or user_id = (select auth.uid())))
    or (select private.is_admin())
);

create policy "workspace_tabs: insert own tabs in my workspaces" on public.workspace_tabs
for insert to authenticated
with check (user_id = (select auth.uid()) and workspace_id = any((select private.my_workspaces())::uuid[]));

create policy "workspace_tabs: update own tabs" on public.workspace_tabs
for update to authenticated
using (user_id = (select auth.uid()))
with check (user_id = (select auth.uid()));

create policy "workspace_tabs: delete own tabs" on public.workspace_tabs
for delete to authenticated
using (user_id = (select auth.uid()));

create or replace function private.save_workspace(ws_id uuid, ws_slug text, ws_name text, ws_retention integer)
returns public.workspaces
language plpgsql
security definer
set search_path = ''
as $$
declare
    result public.workspaces;
begin
    -- A definer: users hold no write grant on workspaces; require_admin is the gate.
    perform private.require_admin('create or change workspaces');
    if ws_id is null then
        insert into public.workspaces (slug, name, retention_days)
        values (ws_slug, btrim(ws_name), coalesce(ws_retention, 7))
        returning * into result;
    else
        update public.workspaces
        set name = coalesce(btrim(ws_name), name), retention_days = coalesce(ws_retention, retention_days)
        where id = ws_id
        returning * into result;
        if result.id is null then
            raise exception using errcode = 'PT404', message = format('no workspace %s', ws_id);
        end if;
    end if;
    return result;
end;
$$;

create or replace function private.delete_admin_row(kind text, row_id uuid, other_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer for the same reason as save_workspace; `kind` picks one of three fixed statements.
    perform private.require_admin('delete workspaces, members or tabs');
    if kind = 'workspace' then
        delete from public.workspaces where id = row_id;
    elsif kind = 'member' then
        delete from public.workspace_members where workspace_id = row_id and user_id = other_id;
    else
        delete from public.workspace_tabs where id = row_id;
    end if;
    if not found then
        raise exception using errcode = 'PT404', message = format('no such %s', kind);
    end if;
end;
$$;

create or replace function private.add_workspace_member(ws_id uuid, member uuid)
returns public.workspace_members
language plpgsql
security definer
set search_path = ''
as $$
declare
    result public.workspace_members;
begin
    -- A definer for the same reason as save_workspace.
    perform private.require_admin('add workspace members');
    insert into public.workspace_members (workspace_id, user_id) values (ws_id, member)
    on conflict (workspace_id, user_id) do update set workspace_id = excluded.workspace_id
    returning * into result;
    return result;
end;
$$;

create or replace function private.save_workspace_tab(
    tab_id uuid, ws_id uuid, tab_user uuid, tab_name text, tab_filter jsonb, tab_position integer
)
returns public.workspace_tabs
language plpgsql
security definer
set search_path = ''
as $$
declare
    result public.workspace_tabs;
begin
    -- A definer for the same reason as save_workspace.
    perform private.require_admin('manage other people''s tabs');
    if tab_id is null then
        insert into public.workspace_tabs (workspace_id, user_id, name, filter, position)
        values (ws_id, tab_user, tab_name, coalesce(tab_filter, '{}'), coalesce(tab_position, 0))
        returning * into result;
    else
        update public.workspace_tabs
        set name = coalesce(tab_name, name), filter = coalesce(tab_filter, filter), position = coalesce(tab_position, position)
        where id = tab_id
        returning * into result;
        if result.id is null then
            raise exception using errcode = 'PT404', message = format('no tab %s', tab_id);
        end if;
    end if;
    return result;
end;
$$;

revoke execute on function private.save_workspace(uuid, text, text, integer), private.delete_admin_row(text, uuid, uuid),
private.add_workspace_member(uuid, uuid), private.save_workspace_tab(uuid, uuid, uuid, text, jsonb, integer)
from public, anon;
grant execute on function private.save_workspace(uuid, text, text, integer), private.delete_admin_row(text, uuid, uuid),
private.add_workspace_member(uuid, uuid), private.save_workspace_tab(uuid, uuid, uuid, text, jsonb, integer)
to authenticated, service_role;

create function public.create_workspace(slug text, name text, retention_days integer default 7)
returns public.workspaces
language sql as $$ select * from private.save_workspace(null, slug, name, retention_days) $$;
create function public.update_workspace(id uuid, name text default null, retention_days integer default null)
returns public.workspaces
language sql as $$ select * from private.save_workspace(id, null, name, retention_days) $$;
create function public.delete_workspace(id uuid) returns void
language sql as $$ select private.delete_admin_row('workspace', id, null) $$;
create function public.add_workspace_member(workspace_id uuid, user_id uuid) returns public.workspace_members
language sql as $$ select * from private.add_workspace_member(workspace_id, user_id) $$;
create function public.remove_workspace_member(workspace_id uuid, user_id uuid) returns void
language sql as $$ select private.delete_admin_row('member', workspace_id, user_id) $$;
create function public.create_workspace_tab(
    workspace_id uuid, name text, filter jsonb default '{}', user_id uuid default null, "position" integer default 0
) returns public.workspace_tabs
language sql as $$ select * from private.save_workspace_tab(null, workspace_id, user_id, name, filter, "position") $$;
create function public.update_workspace_tab(
    id uuid, name text default null, filter jsonb default null, "position" integer default null
) returns public.workspace_tabs
language sql as $$ select * from private.save_workspace_tab(id, null, null, name, filter, "position") $$;
create function public.delete_workspace_tab(id uuid) returns void
language sql as $$ select private.delete_admin_row('tab', id, null) $$;

comment on function public.create_workspace(text, text, integer) is 'Create a workspace (admin).';
comment on function public.update_workspace(uuid, text, integer) is 'Rename a workspace or change its retention (admin).';
comment on function public.delete_workspace(uuid) is 'Delete a workspace with its devices and tabs (admin).';
comment on function public.add_workspace_member(uuid, uuid) is 'Add a user to a workspace (admin).';
comment on function public.remove_workspace_member(uuid, uuid) is 'Remove a user from a workspace (admin).';
comment on function public.create_workspace_tab(uuid, text, jsonb, uuid, integer) is
'Create a tab; user_id null shares it with the workspace (admin).';
comment on function public.update_workspace_tab(uuid, text, jsonb, integer) is 'Change any tab (admin).';
comment on function public.delete_workspace_tab(uuid) is 'Delete any tab (admin).';

revoke execute on function public.create_workspace(text, text, integer), public.update_workspace(uuid, text, integer),
public.delete_workspace(uuid), public.add_workspace_member(uuid, uuid), public.remove_workspace_member(uuid, uuid),
public.create_workspace_tab(uuid, text, jsonb, uuid, integer), public.update_workspace_tab(uuid, text, jsonb, integer),
public.delete_workspace_tab(uuid) from public, anon;
grant execute on function public.create_workspace(text, text, integer), public.update_workspace(uuid, text, integer),
public.delete_workspace(uuid), public.add_workspace_member(uuid, uuid), public.remove_workspace_member(uuid, uuid),
public.create_workspace_tab(uuid, text, jsonb, uuid, integer), public.update_workspace_tab(uuid, text, jsonb, integer),
public.delete_workspace_tab(uuid) to authenticated, service_role;
