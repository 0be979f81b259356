-- Purpose: workspaces (the tenant of captured traffic), their members, and saved filter tabs.
-- Affects: public.workspaces, public.workspace_members, public.workspace_tabs.
-- Caveats: members read their workspaces; admins read all. Writes go through the admin RPCs, except that a
-- user manages their own tabs directly.

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
