-- Purpose: the catalog the viewer and BusyBro use: tags, service groups ("apps"), agents and their pairing, and
-- the RPCs that write tags and groups.
-- Defines:
--   table public.busybro_agents
--   table public.service_group_agents
--   table public.service_groups
--   table public.tags
--   function private.delete_catalog_row(text,uuid)
--   function private.set_service_group_agents(uuid,uuid[])
--   function private.upsert_service_group(uuid,text,text[],text)
--   function private.upsert_tag(uuid,text,text,text[])
--   function public.delete_service_group(uuid)
--   function public.delete_tag(uuid)
--   function public.set_service_group_agents(uuid,uuid[])
--   function public.upsert_service_group(text,text[],text,uuid)
--   function public.upsert_tag(text,text,text[],uuid)
--   policy "busybro_agents: delete with agents:edit" on public.busybro_agents
--   policy "busybro_agents: insert with agents:edit" on public.busybro_agents
--   policy "busybro_agents: select with agents:view" on public.busybro_agents
--   policy "busybro_agents: update with agents:edit" on public.busybro_agents
--   policy "service_group_agents: select with services:view" on public.service_group_agents
--   policy "service_groups: select with services:view" on public.service_groups
--   policy "tags: select with tags:view" on public.tags
-- Caveats: reads need the section's view capability. Tags and groups change through their RPCs; agents are
-- edited directly with agents:edit. A group has at most one primary agent (partial unique index).

create table public.tags (
    id uuid primary key default gen_random_uuid(),
    name text not null unique check (length(name) between 1 and 60),
    color text not null default '#888888' check (color ~ '^#[0-9a-fA-F]{6}$'),
    match_patterns text[] not null default '{}',
    created_at timestamptz not null default now()
);
comment on table public.tags is 'Labels applied to entries whose host or path matches one of match_patterns.';

create table public.service_groups (
    id uuid primary key default gen_random_uuid(),
    name text not null unique check (length(name) between 1 and 100),
    icon text,
    domains text[] not null default '{}',
    created_at timestamptz not null default now()
);
comment on table public.service_groups is 'A Proxyman-style App: the domains one service talks to.';

create table public.busybro_agents (
    id uuid primary key default gen_random_uuid(),
    name text not null unique check (length(name) between 1 and 100),
    emoji text not null default '🤖',
    instructions text not null default '' check (length(instructions) <= 20000),
    created_at timestamptz not null default now()
);
comment on table public.busybro_agents is 'Specialist lenses BusyBro can take for a service group.';

create table public.service_group_agents (
    service_group_id uuid not null references public.service_groups (id) on delete cascade,
    agent_id uuid not null references public.busybro_agents (id) on delete cascade,
    is_primary boolean not null default false,
    position integer not null default 0,
    primary key (service_group_id, agent_id)
);
comment on table public.service_group_agents is 'Which agents serve a group, in order; exactly one is primary.';
create unique index service_group_agents_one_primary on public.service_group_agents (service_group_id)
where is_primary;
create index service_group_agents_agent_id_idx on public.service_group_agents (agent_id);

revoke all on public.tags, public.service_groups, public.busybro_agents, public.service_group_agents
from anon, authenticated;
grant select on public.tags, public.service_groups, public.busybro_agents, public.service_group_agents
to authenticated;
grant insert (name, emoji, instructions), update (name, emoji, instructions), delete on public.busybro_agents
to authenticated;

alter table public.tags enable row level security;
alter table public.service_groups enable row level security;
alter table public.busybro_agents enable row level security;
alter table public.service_group_agents enable row level security;

create policy "tags: select with tags:view" on public.tags
for select to authenticated using ((select private.has_capability('tags', 'view')));

create policy "service_groups: select with services:view" on public.service_groups
for select to authenticated using ((select private.has_capability('services', 'view')));

create policy "service_group_agents: select with services:view" on public.service_group_agents
for select to authenticated using ((select private.has_capability('services', 'view')));

create policy "busybro_agents: select with agents:view" on public.busybro_agents
for select to authenticated using ((select private.has_capability('agents', 'view')));

create policy "busybro_agents: insert with agents:edit" on public.busybro_agents
for insert to authenticated with check ((select private.has_capability('agents', 'edit')));

create policy "busybro_agents: update with agents:edit" on public.busybro_agents
for update to authenticated
using ((select private.has_capability('agents', 'edit')))
with check ((select private.has_capability('agents', 'edit')));

create policy "busybro_agents: delete with agents:edit" on public.busybro_agents
for delete to authenticated using ((select private.has_capability('agents', 'edit')));

create or replace function private.upsert_service_group(group_id uuid, group_name text, group_domains text[], group_icon text)
returns public.service_groups
language plpgsql
security definer
set search_path = ''
as $$
declare
    result public.service_groups;
begin
    -- A definer: users hold no write grant on service_groups; require_capability is the gate.
    perform private.require_capability('services', 'edit', 'change service groups');
    if group_id is null then
        insert into public.service_groups (name, domains, icon)
        values (btrim(group_name), coalesce(group_domains, '{}'), group_icon)
        returning * into result;
    else
        update public.service_groups
        set name = btrim(group_name), domains = coalesce(group_domains, domains), icon = coalesce(group_icon, icon)
        where id = group_id
        returning * into result;
        if result.id is null then
            raise exception using errcode = 'PT404', message = format('no service group %s', group_id);
        end if;
    end if;
    return result;
end;
$$;

create or replace function private.delete_catalog_row(kind text, row_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer for the same reason as upsert_service_group; `kind` picks one of two fixed statements.
    if kind = 'service_group' then
        perform private.require_capability('services', 'edit', 'delete service groups');
        delete from public.service_groups where id = row_id;
    else
        perform private.require_capability('tags', 'edit', 'delete tags');
        delete from public.tags where id = row_id;
    end if;
    if not found then
        raise exception using errcode = 'PT404', message = format('no %s %s', replace(kind, '_', ' '), row_id);
    end if;
end;
$$;

create or replace function private.set_service_group_agents(group_id uuid, agent_ids uuid[])
returns setof public.service_group_agents
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer for the same reason as upsert_service_group.
    perform private.require_capability('services', 'edit', 'change a group''s agents');
    if not exists (select from public.service_groups as g where g.id = group_id) then
        raise exception using errcode = 'PT404', message = format('no service group %s', group_id);
    end if;
    if cardinality(agent_ids) <> (select count(distinct a) from unnest(agent_ids) as a) or array_position(agent_ids, null) is not null then
        raise exception using errcode = '22023', message = 'agent_ids must not repeat an agent or hold null';
    end if;
    delete from public.service_group_agents as sga where sga.service_group_id = group_id;
    return query
    insert into public.service_group_agents (service_group_id, agent_id, is_primary, position)
    select group_id, a.agent_id, a.ord = 1, a.ord::integer - 1
    from unnest(coalesce(agent_ids, '{}')) with ordinality as a (agent_id, ord)
    order by a.ord
    returning *;
end;
$$;

create or replace function private.upsert_tag(tag_id uuid, tag_name text, tag_color text, patterns text[])
returns public.tags
language plpgsql
security definer
set search_path = ''
as $$
declare
    result public.tags;
begin
    -- A definer: users hold no write grant on tags; require_capability is the gate.
    perform private.require_capability('tags', 'edit', 'change tags');
    if tag_id is null then
        insert into public.tags (name, color, match_patterns)
        values (btrim(tag_name), coalesce(tag_color, '#888888'), coalesce(patterns, '{}'))
        returning * into result;
    else
        update public.tags
        set name = btrim(tag_name), color = coalesce(tag_color, color), match_patterns = coalesce(patterns, match_patterns)
        where id = tag_id
        returning * into result;
        if result.id is null then
            raise exception using errcode = 'PT404', message = format('no tag %s', tag_id);
        end if;
    end if;
    return result;
end;
$$;

revoke execute on function private.upsert_service_group(uuid, text, text[], text),
private.delete_catalog_row(text, uuid), private.set_service_group_agents(uuid, uuid[]),
private.upsert_tag(uuid, text, text, text[]) from public, anon;
grant execute on function private.upsert_service_group(uuid, text, text[], text),
private.delete_catalog_row(text, uuid), private.set_service_group_agents(uuid, uuid[]),
private.upsert_tag(uuid, text, text, text[]) to authenticated, service_role;

create function public.upsert_service_group(
    name text, domains text[] default null, icon text default null, id uuid default null
) returns public.service_groups
language sql as $$ select * from private.upsert_service_group(id, name, domains, icon) $$;
create function public.delete_service_group(id uuid) returns void
language sql as $$ select private.delete_catalog_row('service_group', id) $$;
create function public.set_service_group_agents(service_group_id uuid, agent_ids uuid[])
returns setof public.service_group_agents
language sql as $$ select * from private.set_service_group_agents(service_group_id, agent_ids) $$;
create function public.upsert_tag(
    name text, color text default null, match_patterns text[] default null, id uuid default null
) returns public.tags
language sql as $$ select * from private.upsert_tag(id, name, color, match_patterns) $$;
create function public.delete_tag(id uuid) returns void
language sql as $$ select private.delete_catalog_row('tag', id) $$;

comment on function public.upsert_service_group(text, text[], text, uuid) is
'Create a service group, or update the one with this id (services:edit).';
comment on function public.delete_service_group(uuid) is 'Delete a service group (services:edit).';
comment on function public.set_service_group_agents(uuid, uuid[]) is
'Replace a group''s agents; the first is primary, [] clears (services:edit).';
comment on function public.upsert_tag(text, text, text[], uuid) is 'Create a tag, or update the one with this id (tags:edit).';
comment on function public.delete_tag(uuid) is 'Delete a tag (tags:edit).';

revoke execute on function public.upsert_service_group(text, text[], text, uuid), public.delete_service_group(uuid),
public.set_service_group_agents(uuid, uuid[]), public.upsert_tag(text, text, text[], uuid), public.delete_tag(uuid)
from public, anon;
grant execute on function public.upsert_service_group(text, text[], text, uuid), public.delete_service_group(uuid),
public.set_service_group_agents(uuid, uuid[]), public.upsert_tag(text, text, text[], uuid), public.delete_tag(uuid)
to authenticated, service_role;
