-- Purpose: ingest_entries(batch): a device's batch of captured flows, validated row by row.
-- Affects: private.header_pairs(), private.ingest_batch(), public.ingest_entries(jsonb).
-- Caveats: only a paired device may call it, and its rows always carry that device and its workspace, taken from
-- the credential, never from the batch. Each row is read once (jsonb_to_record, every field as text so nothing
-- can fail there), checked, and the good rows land in one INSERT (one firehose statement); bad rows are reported
-- with the reason. A row's `id` makes a retry idempotent (a spool may send a batch twice): that needs ON
-- CONFLICT, which row-level security would check against a select policy devices must not have, so the insert
-- is a definer. Only when that one INSERT fails anyway (a value the checks could not foresee, such as
-- 2026-02-30) are rows tried one by one to find the culprit.

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

create or replace function private.ingest_batch(batch jsonb, cap integer, first_index integer)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    dev uuid := private.current_device();
    ws uuid;
    src text;
    result jsonb;
begin
    -- A definer (see the header). The device and workspace come from the caller's credential, nothing else.
    select d.workspace_id, d.source into ws, src from public.devices as d where d.uuid = dev;
    if dev is null or ws is null then
        raise exception using errcode = '42501', message = 'only a paired device stores entries';
    end if;
    with input as materialized (
        select
            t.ord::integer - 1 + first_index as idx, x.*,
            case
                when jsonb_typeof(t.r) is distinct from 'object' then 'an entry is a JSON object'
                when x.id is not null and x.id !~ '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$' then 'id must be a uuid'
                when jsonb_typeof(t.r -> 'method') is distinct from 'string' or length(x.method) not between 1 and 32
                    then 'method is required: a string of 1 to 32 characters'
                when jsonb_typeof(t.r -> 'host') is distinct from 'string' or length(x.host) not between 1 and 253
                    then 'host is required: a string of 1 to 253 characters'
                when x.captured_at !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$'
                    then 'captured_at must be an ISO 8601 timestamp with a time zone'
                when x.scheme not in ('http', 'https', 'ws', 'wss') then 'scheme is one of http, https, ws, wss'
                when x.status !~ '^\d{1,3}$' then 'status must be a whole number from 0 to 999'
                when x.port !~ '^\d{1,5}$' or x.port::integer not between 1 and 65535
                    then 'port must be a whole number from 1 to 65535'
                when x.request_size !~ '^\d{1,15}$' or x.response_size !~ '^\d{1,15}$'
                    or x.request_body_size !~ '^\d{1,15}$' or x.response_body_size !~ '^\d{1,15}$'
                    then 'sizes must be whole numbers of bytes'
                when x.duration_ms !~ '^\d{1,12}(\.\d+)?([eE][+-]?\d+)?$' or x.ttfb_ms !~ '^\d{1,12}(\.\d+)?([eE][+-]?\d+)?$'
                    then 'timings must be non-negative numbers of milliseconds'
                when jsonb_typeof(x.request_headers) not in ('object', 'array')
                    or jsonb_typeof(x.response_headers) not in ('object', 'array')
                    then 'headers are an object or an array of [name, value] pairs'
                when x.request_body_b64 !~ '^[A-Za-z0-9+/]*={0,2}$' or length(x.request_body_b64) % 4 <> 0
                    or x.response_body_b64 !~ '^[A-Za-z0-9+/]*={0,2}$' or length(x.response_body_b64) % 4 <> 0
                    then 'bodies are base64 strings'
                when x.request_body_truncated not in ('true', 'false') or x.response_body_truncated not in ('true', 'false')
                    then 'truncation flags are true or false'
                when length(x.path) > 8192 then 'path is longer than 8192 characters'
                when length(x.query) > 16384 then 'query is longer than 16384 characters'
            end as problem
        from jsonb_array_elements(batch) with ordinality as t (r, ord)
        cross join lateral jsonb_to_record(case when jsonb_typeof(t.r) = 'object' then t.r else '{}' end) as x (
            id text, captured_at text, method text, scheme text, host text, port text, path text, query text,
            http_version text, status text, request_content_type text, response_content_type text, request_size text,
            response_size text, duration_ms text, ttfb_ms text, error text, request_headers jsonb,
            response_headers jsonb, request_body_b64 text, response_body_b64 text, request_body_size text,
            response_body_size text, request_body_truncated text, response_body_truncated text
        )
    ),
    keyed as materialized (
        select i.*, coalesce(i.id::uuid, gen_random_uuid()) as entry_id from input as i where i.problem is null
    ),
    stored as (
        insert into public.entries (
            id, workspace_id, device_uuid, source, captured_at, method, scheme, host, port, path, query, http_version,
            status, request_content_type, response_content_type, request_size, response_size, duration_ms, ttfb_ms,
            error, request_headers, response_headers, request_body, response_body, request_body_size,
            response_body_size, request_body_truncated, response_body_truncated
        )
        select
            k.entry_id, ws, dev, src, coalesce(k.captured_at::timestamptz, now()), upper(k.method),
            coalesce(k.scheme, 'https'), lower(k.host), k.port::integer, coalesce(nullif(k.path, ''), '/'), k.query,
            k.http_version, k.status::integer, k.request_content_type, k.response_content_type,
            k.request_size::bigint, k.response_size::bigint, k.duration_ms::real, k.ttfb_ms::real, left(k.error, 2000),
            -- Arrays (what capture clients send) pass as they are, without a function call per row.
            case when jsonb_typeof(k.request_headers) = 'array' then k.request_headers
                else private.header_pairs(k.request_headers) end,
            case when jsonb_typeof(k.response_headers) = 'array' then k.response_headers
                else private.header_pairs(k.response_headers) end,
            substring(b.request_raw from 1 for cap), substring(b.response_raw from 1 for cap),
            coalesce(k.request_body_size::bigint, length(b.request_raw), 0),
            coalesce(k.response_body_size::bigint, length(b.response_raw), 0),
            coalesce(k.request_body_truncated::boolean, false) or coalesce(length(b.request_raw), 0) > cap,
            coalesce(k.response_body_truncated::boolean, false) or coalesce(length(b.response_raw), 0) > cap
        from keyed as k
        cross join lateral (
            select decode(k.request_body_b64, 'base64') as request_raw, decode(k.response_body_b64, 'base64') as response_raw
        ) as b
        on conflict (id, captured_at) do nothing
        returning 1
    )
    select jsonb_build_object(
        'stored', (select count(*) from stored),
        'valid', (select count(*) from keyed),
        'ids', (select coalesce(jsonb_agg(k.entry_id order by i.idx), '[]') from input as i left join keyed as k on k.idx = i.idx),
        'errors', (
            select coalesce(jsonb_agg(jsonb_build_object('index', i.idx, 'error', i.problem) order by i.idx), '[]')
            from input as i where i.problem is not null
        )
    ) into result;
    return result;
end;
$$;
comment on function private.ingest_batch(jsonb, integer, integer) is
'Check and store a batch for the calling device in one statement; {stored, valid, ids, errors}.';
revoke execute on function private.ingest_batch(jsonb, integer, integer) from public, anon, authenticated;
grant execute on function private.ingest_batch(jsonb, integer, integer) to device;

create or replace function public.ingest_entries(batch jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    cap integer;
    outcome jsonb;
    one jsonb;
    i integer;
begin
    if private.current_device() is null then
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
    begin
        outcome := private.ingest_batch(batch, cap, 0);
    exception when others then
        -- Something the checks could not foresee: find the culprits one row at a time.
        outcome := jsonb_build_object('stored', 0, 'valid', 0, 'ids', '[]'::jsonb, 'errors', '[]'::jsonb);
        for i in 0 .. jsonb_array_length(batch) - 1 loop
            begin
                one := private.ingest_batch(jsonb_build_array(batch -> i), cap, i);
            exception when others then
                one := jsonb_build_object(
                    'stored', 0, 'valid', 0, 'ids', jsonb_build_array(null),
                    'errors', jsonb_build_array(jsonb_build_object('index', i, 'error', sqlerrm))
                );
            end;
            outcome := jsonb_build_object(
                'stored', (outcome ->> 'stored')::bigint + (one ->> 'stored')::bigint,
                'valid', (outcome ->> 'valid')::bigint + (one ->> 'valid')::bigint,
                'ids', (outcome -> 'ids') || (one -> 'ids'),
                'errors', (outcome -> 'errors') || (one -> 'errors')
            );
        end loop;
    end;
    return jsonb_build_object(
        'inserted', (outcome ->> 'stored')::bigint,
        'duplicates', (outcome ->> 'valid')::bigint - (outcome ->> 'stored')::bigint,
        'rejected', jsonb_array_length(batch) - (outcome ->> 'valid')::bigint,
        'ids', outcome -> 'ids',
        'errors', outcome -> 'errors'
    );
end;
$$;
comment on function public.ingest_entries(jsonb) is
'Store a paired device''s batch of captured flows (at most 1000). Returns {inserted, duplicates, rejected, ids, '
'errors}: ids has one entry per row (the stored id, or null when the row was rejected) and errors one '
'{index, error} per rejected row.';
revoke execute on function public.ingest_entries(jsonb) from public, anon, authenticated;
grant execute on function public.ingest_entries(jsonb) to device;
