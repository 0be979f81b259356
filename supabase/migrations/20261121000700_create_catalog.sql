-- Purpose: the catalog the viewer and BusyBro use: tags, service groups ("apps"), agents and their pairing.
-- Affects: public.tags, public.service_groups, public.busybro_agents, public.service_group_agents.
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
