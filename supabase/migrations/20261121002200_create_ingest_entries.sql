-- Purpose: ingest_entries(batch): a device's batch of captured flows, validated row by row.
-- Affects: private.entry_problem(), private.header_pairs(), public.ingest_entries(jsonb).
-- Caveats: only a paired device may call it, and its rows always carry that device and its workspace, taken from
-- the credential, never from the batch. Good rows land in one INSERT (one firehose statement); bad rows are
-- reported with the reason and skipped. A row's `id` makes a retry idempotent (a spool may send a batch twice):
-- that needs ON CONFLICT, which row-level security would check against a select policy devices must not have,
-- so the insert itself is a definer. Only when that one INSERT fails anyway (a value the checks could not
-- foresee, such as 2026-02-30) are rows tried one by one to find the culprit.

create or replace function private.entry_problem(r jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
    select case
        when jsonb_typeof(r) is distinct from 'object' then 'an entry is a JSON object'
        when r ? 'id' and coalesce(r ->> 'id', '') !~ '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$'
            then 'id must be a uuid'
        when jsonb_typeof(r -> 'method') is distinct from 'string' or length(r ->> 'method') not between 1 and 32
            then 'method is required: a string of 1 to 32 characters'
        when jsonb_typeof(r -> 'host') is distinct from 'string' or length(r ->> 'host') not between 1 and 253
            then 'host is required: a string of 1 to 253 characters'
        when r ? 'captured_at' and coalesce(r ->> 'captured_at', '')
            !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$'
            then 'captured_at must be an ISO 8601 timestamp with a time zone'
        when r ? 'scheme' and coalesce(r ->> 'scheme', '') not in ('http', 'https', 'ws', 'wss')
            then 'scheme is one of http, https, ws, wss'
        when r ? 'status' and jsonb_typeof(r -> 'status') <> 'null' and coalesce(r ->> 'status', '') !~ '^\d{1,3}$'
            then 'status must be a whole number from 0 to 999'
        when r ? 'port' and jsonb_typeof(r -> 'port') <> 'null'
            and (coalesce(r ->> 'port', '') !~ '^\d{1,5}$' or (r ->> 'port')::integer not between 1 and 65535)
            then 'port must be a whole number from 1 to 65535'
        when exists (
            select from unnest(array['request_size', 'response_size', 'request_body_size', 'response_body_size']) as k
            where r ? k and jsonb_typeof(r -> k) <> 'null' and coalesce(r ->> k, '') !~ '^\d{1,15}$'
        ) then 'sizes must be whole numbers of bytes'
        when exists (
            select from unnest(array['duration_ms', 'ttfb_ms']) as k
            where r ? k and jsonb_typeof(r -> k) <> 'null' and coalesce(r ->> k, '') !~ '^\d{1,12}(\.\d+)?([eE][+-]?\d+)?$'
        ) then 'timings must be non-negative numbers of milliseconds'
        when exists (
            select from unnest(array['request_headers', 'response_headers']) as k
            where r ? k and jsonb_typeof(r -> k) not in ('object', 'array', 'null')
        ) then 'headers are an object or an array of [name, value] pairs'
        when exists (
            select from unnest(array['request_body_b64', 'response_body_b64']) as k
            where r ? k and jsonb_typeof(r -> k) <> 'null'
                and (coalesce(r ->> k, '') !~ '^[A-Za-z0-9+/]*={0,2}$' or length(r ->> k) % 4 <> 0)
        ) then 'bodies are base64 strings'
        when length(coalesce(r ->> 'path', '')) > 8192 then 'path is longer than 8192 characters'
        when length(coalesce(r ->> 'query', '')) > 16384 then 'query is longer than 16384 characters'
    end
$$;
comment on function private.entry_problem(jsonb) is 'Why an ingested entry cannot be stored, or null when it can.';

create or replace function private.header_pairs(headers jsonb)
returns jsonb
language sql
immutable
set search_path = ''
as $$
    select case jsonb_typeof(headers)
        when 'array' then headers
        when 'object' then (
            select coalesce(jsonb_agg(jsonb_build_array(e.key, e.value) order by e.key), '[]') from jsonb_each_text(headers) as e
        )
        else '[]'::jsonb
    end
$$;
comment on function private.header_pairs(jsonb) is 'Headers as a JSON array of [name, value] pairs.';
grant execute on function private.entry_problem(jsonb), private.header_pairs(jsonb) to device, service_role;

create or replace function private.store_entries(checked jsonb, cap integer)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
    stored bigint;
    dev uuid := private.current_device();
    ws uuid;
    src text;
begin
    -- A definer (see the header). The device and workspace come from the caller's credential, nothing else.
    select d.workspace_id, d.source into ws, src from public.devices as d where d.uuid = dev;
    if dev is null or ws is null then
        raise exception using errcode = '42501', message = 'only a paired device stores entries';
    end if;
    insert into public.entries (
        id, workspace_id, device_uuid, source, captured_at, method, scheme, host, port, path, query, http_version,
        status, request_content_type, response_content_type, request_size, response_size, duration_ms, ttfb_ms,
        error, request_headers, response_headers, request_body, response_body, request_body_size, response_body_size,
        request_body_truncated, response_body_truncated
    )
    select
        (e.c ->> 'id')::uuid, ws, dev, src, coalesce((x.r ->> 'captured_at')::timestamptz, now()),
        upper(x.r ->> 'method'), coalesce(x.r ->> 'scheme', 'https'), lower(x.r ->> 'host'), (x.r ->> 'port')::integer,
        coalesce(nullif(x.r ->> 'path', ''), '/'), x.r ->> 'query', x.r ->> 'http_version', (x.r ->> 'status')::integer,
        x.r ->> 'request_content_type', x.r ->> 'response_content_type', (x.r ->> 'request_size')::bigint,
        (x.r ->> 'response_size')::bigint, (x.r ->> 'duration_ms')::real, (x.r ->> 'ttfb_ms')::real,
        left(x.r ->> 'error', 2000),
        private.header_pairs(x.r -> 'request_headers'), private.header_pairs(x.r -> 'response_headers'),
        substring(qb.raw from 1 for cap), substring(sb.raw from 1 for cap),
        coalesce((x.r ->> 'request_body_size')::bigint, length(qb.raw), 0),
        coalesce((x.r ->> 'response_body_size')::bigint, length(sb.raw), 0),
        coalesce((x.r ->> 'request_body_truncated')::boolean, false) or coalesce(length(qb.raw), 0) > cap,
        coalesce((x.r ->> 'response_body_truncated')::boolean, false) or coalesce(length(sb.raw), 0) > cap
    from jsonb_array_elements(checked) as e (c)
    cross join lateral (select e.c -> 'r' as r) as x
    cross join lateral (select decode(x.r ->> 'request_body_b64', 'base64') as raw) as qb
    cross join lateral (select decode(x.r ->> 'response_body_b64', 'base64') as raw) as sb
    where e.c ->> 'problem' is null
    on conflict (id, captured_at) do nothing;
    get diagnostics stored = row_count;
    return stored;
end;
$$;
revoke execute on function private.store_entries(jsonb, integer) from public, anon, authenticated;
grant execute on function private.store_entries(jsonb, integer) to device;

create or replace function public.ingest_entries(batch jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    me uuid := private.current_device();
    cap integer;
    checked jsonb;
    item jsonb;
    valid integer;
    stored bigint := 0;
begin
    if me is null then
        raise exception using errcode = '42501', message = 'ingest_entries takes the token of a paired device',
            hint = 'Pair the device again: its credential was revoked, or this is not a device token.';
    end if;
    if jsonb_typeof(batch) is distinct from 'array' then
        raise exception using errcode = '22023', message = 'the batch is a JSON array of entries';
    end if;
    if jsonb_array_length(batch) > 1000 then
        raise exception using errcode = '22023', message = 'a batch holds at most 1000 entries',
            hint = 'Split it into several calls.';
    end if;
    cap := coalesce(
        (select (g.settings ->> 'body_cap_bytes')::integer from public.settings_global as g
         where g.settings ->> 'body_cap_bytes' ~ '^\d{1,9}$'),
        1048576
    );
    select coalesce(jsonb_agg(
        jsonb_build_object(
            'index', t.ord - 1, 'problem', p.problem, 'r', t.r,
            'id', case when p.problem is null then coalesce(t.r ->> 'id', gen_random_uuid()::text) end
        ) order by t.ord
    ), '[]')
    into checked
    from jsonb_array_elements(batch) with ordinality as t (r, ord)
    cross join lateral (select private.entry_problem(t.r) as problem) as p;
    valid := (select count(*) from jsonb_array_elements(checked) as c where c ->> 'problem' is null);

    begin
        stored := private.store_entries(checked, cap);
    exception when others then
        -- Something the checks could not foresee: find the culprits one row at a time.
        stored := 0;
        for item in select c from jsonb_array_elements(checked) as c where c ->> 'problem' is null loop
            begin
                stored := stored + private.store_entries(jsonb_build_array(item), cap);
            exception when others then
                checked := jsonb_set(checked, array[item ->> 'index'], item || jsonb_build_object('problem', sqlerrm));
                valid := valid - 1;
            end;
        end loop;
    end;

    return jsonb_build_object(
        'inserted', stored,
        'duplicates', valid - stored,
        'rejected', jsonb_array_length(checked) - valid,
        'results', (
            select coalesce(jsonb_agg(
                case when c ->> 'problem' is null
                    then jsonb_build_object('index', c -> 'index', 'ok', true, 'id', c -> 'id')
                    else jsonb_build_object('index', c -> 'index', 'ok', false, 'error', c -> 'problem')
                end order by (c ->> 'index')::integer
            ), '[]')
            from jsonb_array_elements(checked) as c
        )
    );
end;
$$;
comment on function public.ingest_entries(jsonb) is
'Store a paired device''s batch of captured flows (at most 1000); returns inserted, duplicates, rejected and '
'one result per row: {index, ok, id} or {index, ok: false, error}.';
revoke execute on function public.ingest_entries(jsonb) from public, anon, authenticated;
grant execute on function public.ingest_entries(jsonb) to device;
