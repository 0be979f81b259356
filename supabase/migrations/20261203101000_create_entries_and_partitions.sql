-- Purpose: captured traffic (public.entries, partitioned by day) and who may read it; its daily partitions,
-- made ahead of time; and its retention: maintain_entries(), a trigger that removes a deleted workspace's
-- traffic, and an hourly pg_cron job where pg_cron runs in this database.
-- Defines:
--   table private.entries_default
--   table public.entries
--   function private.current_device_workspace()
--   function private.ensure_entry_partitions(date,date)
--   function private.entry_workspaces()
--   function private.forget_workspace_entries()
--   function private.maintain_entries(integer)
--   trigger workspaces_forget_entries on public.workspaces
--   policy "entries: select in readable workspaces" on public.entries
-- Caveats: no API role may insert: entries arrive only through ingest_entries() (next file). Partitions are made
-- for yesterday to a week ahead (private.entries_<yyyymmdd>); rows that landed in the default partition for a
-- day move into that day's partition when it is made, under a short lock on the default. Whole partitions are
-- dropped once past every workspace's retention; within the rest, rows of workspaces with a shorter retention
-- are deleted. Where there is no pg_cron, the local stack calls private.maintain_entries() on its own schedule.

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
    primary key (id, captured_at),
    constraint entries_body_sizes_check check (request_body_size >= 0 and response_body_size >= 0)
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
revoke all on private.entries_default from public, anon, authenticated;

alter table public.entries enable row level security;

create policy "entries: select in readable workspaces" on public.entries
for select to authenticated
using (workspace_id = any((select private.entry_workspaces())::uuid[]));

create or replace function private.ensure_entry_partitions(first_day date, last_day date)
returns setof text
language plpgsql
set search_path = ''
as $$
declare
    day date;
    part text;
    lower_bound timestamptz;
    upper_bound timestamptz;
begin
    for day in select d::date from generate_series(first_day, last_day, interval '1 day') as d loop
        part := 'entries_' || to_char(day, 'YYYYMMDD');
        continue when to_regclass('private.' || part) is not null;
        lower_bound := day::timestamp at time zone 'UTC';
        upper_bound := (day + 1)::timestamp at time zone 'UTC';
        lock table private.entries_default in exclusive mode;
        execute format(
            'create table private.%I (like public.entries including defaults including constraints)', part
        );
        execute format(
            'with moved as (delete from private.entries_default where captured_at >= %L::timestamptz '
            'and captured_at < %L::timestamptz returning *) insert into private.%I select * from moved',
            lower_bound, upper_bound, part
        );
        execute format(
            'alter table public.entries attach partition private.%I for values from (%L) to (%L)',
            part, lower_bound, upper_bound
        );
        execute format('revoke all on private.%I from public, anon, authenticated', part);
        return next part;
    end loop;
end;
$$;
comment on function private.ensure_entry_partitions(date, date) is
'Make the daily partitions of entries from first_day to last_day (UTC days) that do not exist yet.';
revoke execute on function private.ensure_entry_partitions(date, date) from public, anon, authenticated;

-- Days are UTC days, whatever the session's time zone.
select count(*) from private.ensure_entry_partitions(
    (now() at time zone 'UTC')::date - 1, (now() at time zone 'UTC')::date + 7
);

create or replace function private.maintain_entries(days_ahead integer default 7)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    today date := (now() at time zone 'UTC')::date;
    longest integer := coalesce((select max(w.retention_days) from public.workspaces as w), 7);
    horizon timestamptz := now() - make_interval(days => longest);
    created text [];
    dropped text [] := '{}';
    deleted bigint := 0;
    n bigint;
    part text;
    ws record;
begin
    created := array(select private.ensure_entry_partitions(today - 1, today + days_ahead));
    for part in
        select c.relname from pg_catalog.pg_inherits as i
        inner join pg_catalog.pg_class as c on c.oid = i.inhrelid
        where i.inhparent = 'public.entries'::regclass and c.relname ~ '^entries_\d{8}$'
        order by c.relname
    loop
        if (to_date(substr(part, 9), 'YYYYMMDD') + 1)::timestamp at time zone 'UTC' <= horizon then
            execute format('drop table private.%I', part);
            dropped := dropped || part;
        end if;
    end loop;
    for ws in select w.id, w.retention_days from public.workspaces as w where w.retention_days < longest loop
        delete from public.entries as e
        where e.workspace_id = ws.id and e.captured_at < now() - make_interval(days => ws.retention_days);
        get diagnostics n = row_count;
        deleted := deleted + n;
    end loop;
    delete from private.entries_default as e where e.captured_at < horizon;
    get diagnostics n = row_count;
    deleted := deleted + n;
    return jsonb_build_object(
        'created_partitions', to_jsonb(created), 'dropped_partitions', to_jsonb(dropped),
        'deleted_rows', deleted, 'kept_since', horizon
    );
end;
$$;
comment on function private.maintain_entries(integer) is
'Make partitions ahead, drop those past every workspace''s retention, delete older rows of shorter retentions; '
'returns what it did.';
revoke execute on function private.maintain_entries(integer) from public, anon, authenticated;

create or replace function private.forget_workspace_entries()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer: entries carry no foreign key (see create_entries), so a deleted workspace's traffic goes here.
    delete from public.entries as e where e.workspace_id = old.id;
    return null;
end;
$$;
revoke execute on function private.forget_workspace_entries() from public, anon;

create trigger workspaces_forget_entries
after delete on public.workspaces
for each row execute function private.forget_workspace_entries();

do $cron$
begin
    if exists (select from pg_catalog.pg_extension where extname = 'pg_cron') then
        perform cron.schedule('busymate-entries-maintenance', '17 * * * *', 'select private.maintain_entries()');
    end if;
end
$cron$;
