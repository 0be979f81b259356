-- Purpose: captured traffic, one row per request/response pair, in daily partitions.
-- Affects: public.entries (partitioned by captured_at), private.entries_default, private.entry_workspaces().
-- Caveats: partitions live in `private`, so they cannot be reached around the parent's policies. No foreign keys:
-- a per-row check would tax ingest, and history outlives a deleted device. Headers are JSON arrays of
-- [name, value] pairs (order and repeats kept); bodies are bytea, capped, with the original size and a flag.

create table public.entries (
    id uuid not null default gen_random_uuid(),
    workspace_id uuid not null,
    device_uuid uuid not null,
    source text not null check (source in ('ios', 'proxy', 'bmc')),
    captured_at timestamptz not null default now(),
    method text not null check (length(method) between 1 and 32),
    scheme text not null default 'https' check (scheme in ('http', 'https', 'ws', 'wss')),
    host text not null check (length(host) between 1 and 253),
    port integer check (port between 1 and 65535),
    path text not null default '/' check (length(path) <= 8192),
    query text check (length(query) <= 16384),
    http_version text,
    status integer check (status between 0 and 999),
    request_content_type text,
    response_content_type text,
    request_size bigint check (request_size >= 0),
    response_size bigint check (response_size >= 0),
    duration_ms real check (duration_ms >= 0),
    ttfb_ms real check (ttfb_ms >= 0),
    error text,
    request_headers jsonb not null default '[]' check (jsonb_typeof(request_headers) = 'array'),
    response_headers jsonb not null default '[]' check (jsonb_typeof(response_headers) = 'array'),
    request_body bytea,
    response_body bytea,
    request_body_size bigint not null default 0,
    response_body_size bigint not null default 0,
    request_body_truncated boolean not null default false,
    response_body_truncated boolean not null default false,
    primary key (id, captured_at)
) partition by range (captured_at);
comment on table public.entries is 'Captured traffic: one request/response pair per row, partitioned by day.';
comment on column public.entries.request_headers is 'JSON array of [name, value] pairs, in the order sent.';
comment on column public.entries.request_body_size is 'The body''s size before the cap; request_body may be shorter.';

create table private.entries_default partition of public.entries default;
comment on table private.entries_default is 'Rows for a day without a partition yet; maintenance moves them out.';

create index entries_workspace_host_idx on public.entries (workspace_id, host, captured_at desc);
create index entries_workspace_captured_idx on public.entries (workspace_id, captured_at desc);
create index entries_device_captured_idx on public.entries (device_uuid, captured_at desc);

create or replace function private.entry_workspaces()
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- A definer: admins see every workspace's traffic, which they may not otherwise list.
    if private.is_admin() then
        return coalesce((select array_agg(w.id) from public.workspaces as w), '{}');
    elsif private.has_capability('entries', 'view') then
        return private.my_workspaces();
    end if;
    return '{}';
end;
$$;
comment on function private.entry_workspaces() is
'Workspaces whose traffic the caller may read: all for admins, their own with entries:view, else none.';
revoke execute on function private.entry_workspaces() from public, anon;
grant execute on function private.entry_workspaces() to authenticated, device, service_role;

create or replace function private.current_device_workspace()
returns uuid
language sql
stable
security definer
set search_path = ''
as $$
    -- A definer: a device cannot list workspaces; this is its own, while its credential holds.
    select d.workspace_id from public.devices as d where d.uuid = private.current_device()
$$;
revoke execute on function private.current_device_workspace() from public, anon;
grant execute on function private.current_device_workspace() to device, service_role;

revoke all on public.entries from anon, authenticated;
grant select on public.entries to authenticated;
grant insert on public.entries to device;
revoke all on private.entries_default from public, anon, authenticated;

alter table public.entries enable row level security;

create policy "entries: select in readable workspaces" on public.entries
for select to authenticated
using (workspace_id = any((select private.entry_workspaces())::uuid[]));

create policy "entries: insert by the capturing device" on public.entries
for insert to device
with check (
    device_uuid = (select private.current_device())
    and workspace_id = (select private.current_device_workspace())
);
