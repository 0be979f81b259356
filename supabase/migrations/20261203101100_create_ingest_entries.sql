-- Purpose: ingest_entries(batch): a paired device's batch of captured flows, stored in one INSERT, with each
-- refused row found and reported with its reason.
-- Defines:
--   function private.entry_problem(jsonb)
--   function private.entry_rows(jsonb,integer,uuid,uuid,text)
--   function private.header_pairs(jsonb)
--   function private.store_entries(jsonb,integer)
--   function public.ingest_entries(jsonb)
-- Caveats: rows always carry the calling device and its workspace, taken from the credential, never from the
-- batch. The batch is read straight into typed columns by private.entry_rows() (a SQL function the planner
-- inlines) and the table's constraints do the checking; a size below the body's bytes is replaced by their
-- length. store_entries() (a definer: devices hold no insert grant) first tries a plain INSERT and only on a
-- unique_violation (a batch resent from a spool) runs it again with ON CONFLICT DO NOTHING, so duplicates are
-- skipped, not errors; it moves devices.last_seen_at at most every 30 s. When the INSERT fails on a bad value
-- (SQLSTATE classes 22 and 23), ingest_entries() splits the batch in halves, each in its own subtransaction,
-- left first, so the good rows land and each bad row is found in about log2(n) tries; entry_problem() puts the
-- reason in words. Any other error fails the whole call. Timestamps without a zone are taken as UTC.

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

create or replace function private.entry_problem(r jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
    -- Only explains a row that was already refused; it never decides.
    select case
        when jsonb_typeof(r) is distinct from 'object' then 'an entry is a JSON object'
        when r ->> 'id' !~ '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$' then 'id must be a uuid'
        when length(r ->> 'method') is null or length(r ->> 'method') > 32
            then 'method is required: a string of 1 to 32 characters'
        when length(r ->> 'host') is null or length(r ->> 'host') > 253
            then 'host is required: a string of 1 to 253 characters'
        when r ->> 'captured_at' !~ '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$'
            then 'captured_at must be an ISO 8601 timestamp'
        when r ->> 'scheme' not in ('http', 'https', 'ws', 'wss') then 'scheme is one of http, https, ws, wss'
        when r ->> 'status' !~ '^\d{1,3}$' then 'status must be a whole number from 0 to 999'
        when r ->> 'port' !~ '^\d{1,5}$' or (r ->> 'port')::integer not between 1 and 65535
            then 'port must be a whole number from 1 to 65535'
        when r ->> 'request_size' !~ '^\d{1,15}$' or r ->> 'response_size' !~ '^\d{1,15}$'
            or r ->> 'request_body_size' !~ '^\d{1,15}$' or r ->> 'response_body_size' !~ '^\d{1,15}$'
            then 'sizes must be whole numbers of bytes'
        when r ->> 'duration_ms' !~ '^\d{1,12}(\.\d+)?([eE][+-]?\d+)?$' or r ->> 'ttfb_ms' !~ '^\d{1,12}(\.\d+)?([eE][+-]?\d+)?$'
            then 'timings must be non-negative numbers of milliseconds'
        when jsonb_typeof(r -> 'request_headers') not in ('object', 'array', 'null')
            or jsonb_typeof(r -> 'response_headers') not in ('object', 'array', 'null')
            then 'headers are an object or an array of [name, value] pairs'
        when r ->> 'request_body_b64' !~ '^[A-Za-z0-9+/]*={0,2}$' or length(r ->> 'request_body_b64') % 4 <> 0
            or r ->> 'response_body_b64' !~ '^[A-Za-z0-9+/]*={0,2}$' or length(r ->> 'response_body_b64') % 4 <> 0
            then 'bodies are base64 strings'
        when r ->> 'request_body_truncated' not in ('true', 'false') or r ->> 'response_body_truncated' not in ('true', 'false')
            then 'truncation flags are true or false'
        when length(r ->> 'path') > 8192 then 'path is longer than 8192 characters'
        when length(r ->> 'query') > 16384 then 'query is longer than 16384 characters'
    end
$$;
comment on function private.entry_problem(jsonb) is 'Why a refused entry was refused, in words; null when no rule names it.';

create or replace function private.entry_rows(batch jsonb, cap integer, ws uuid, dev uuid, src text)
returns setof public.entries
language sql
stable
as $$
    -- No SET clause: the planner inlines this into the caller's INSERT only without one. Every name is qualified,
    -- and the caller (store_entries) runs with search_path ''.
    select
        i.id, ws, dev, src, coalesce(i.captured_at, now()), upper(i.method), coalesce(i.scheme, 'https'),
        lower(i.host), i.port, coalesce(nullif(i.path, ''), '/'), i.query, i.http_version, i.status,
        i.request_content_type, i.response_content_type, i.request_size, i.response_size, i.duration_ms,
        i.ttfb_ms, left(i.error, 2000),
        -- Arrays (what capture clients send) pass as they are; anything but an object, an array or nothing
        -- is kept as it is so that the table's check refuses it.
        case jsonb_typeof(i.request_headers) when 'object' then private.header_pairs(i.request_headers)
            else coalesce(i.request_headers, '[]') end,
        case jsonb_typeof(i.response_headers) when 'object' then private.header_pairs(i.response_headers)
            else coalesce(i.response_headers, '[]') end,
        substring(b.request_raw from 1 for cap), substring(b.response_raw from 1 for cap),
        -- A body's size is at least what arrived: a client may say it was larger (it truncated), never smaller.
        coalesce(greatest(i.request_body_size, length(b.request_raw)), 0),
        coalesce(greatest(i.response_body_size, length(b.response_raw)), 0),
        coalesce(i.request_body_truncated, false) or coalesce(length(b.request_raw), 0) > cap,
        coalesce(i.response_body_truncated, false) or coalesce(length(b.response_raw), 0) > cap
    from jsonb_to_recordset(batch) as i (
        id uuid, captured_at timestamptz, method text, scheme text, host text, port integer, path text,
        query text, http_version text, status integer, request_content_type text, response_content_type text,
        request_size bigint, response_size bigint, duration_ms real, ttfb_ms real, error text,
        request_headers jsonb, response_headers jsonb, request_body_b64 text, response_body_b64 text,
        request_body_size bigint, response_body_size bigint, request_body_truncated boolean,
        response_body_truncated boolean
    )
    cross join lateral (
        select decode(i.request_body_b64, 'base64') as request_raw, decode(i.response_body_b64, 'base64') as response_raw
    ) as b
$$;
comment on function private.entry_rows(jsonb, integer, uuid, uuid, text) is
'A batch of captured flows as rows of public.entries, for one device; the table''s constraints check them.';
revoke execute on function private.entry_rows(jsonb, integer, uuid, uuid, text) from public, anon, authenticated;

create or replace function private.store_entries(batch jsonb, cap integer)
returns jsonb
language plpgsql
security definer
set search_path = ''
set timezone = 'UTC'
as $$
declare
    dev uuid := private.current_device();
    ws uuid;
    src text;
    stored bigint;
    ids jsonb;
begin
    -- A definer: ON CONFLICT under RLS would need a select policy devices must not have, and a device holds no
    -- update grant on devices for last_seen_at. The device and workspace come from the caller's credential,
    -- nothing else; any value the types or constraints refuse raises.
    select d.workspace_id, d.source into ws, src from public.devices as d where d.uuid = dev;
    if dev is null or ws is null then
        raise exception using errcode = '42501', message = 'only a paired device stores entries';
    end if;
    if jsonb_path_exists(batch, '$[*] ? (!exists(@.id) || @.id == null)') then
        -- Capture clients send ids (so a resent batch is recognised); give one to each row that has none.
        select jsonb_agg(
            case when jsonb_typeof(a.e) = 'object' and coalesce(a.e -> 'id', 'null') = 'null'
                then a.e || jsonb_build_object('id', gen_random_uuid()) else a.e end
            order by a.k
        )
        into batch
        from jsonb_array_elements(batch) with ordinality as a (e, k);
    end if;
    begin
        insert into public.entries select * from private.entry_rows(batch, cap, ws, dev, src);
        get diagnostics stored = row_count;
    exception when unique_violation then
        -- Some rows are already stored (a resent batch): they are duplicates, not errors.
        insert into public.entries select * from private.entry_rows(batch, cap, ws, dev, src)
        on conflict (id, captured_at) do nothing;
        get diagnostics stored = row_count;
    end;
    -- Seen: at most once per 30 s per device (see the header).
    update public.devices as d set last_seen_at = now()
    where d.uuid = dev and (d.last_seen_at is null or d.last_seen_at < now() - interval '30 seconds');
    -- The ids as the database spells them, in the batch's order.
    select coalesce(jsonb_agg(x.id), '[]') into ids from jsonb_to_recordset(batch) as x (id uuid);
    return jsonb_build_object('stored', stored, 'ids', ids);
end;
$$;
comment on function private.store_entries(jsonb, integer) is
'Store a batch for the calling device in one INSERT, or raise: {stored, ids}.';
revoke execute on function private.store_entries(jsonb, integer) from public, anon, authenticated;
grant execute on function private.store_entries(jsonb, integer) to device;

create or replace function public.ingest_entries(batch jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    cap integer;
    n integer;
    stored bigint := 0;
    ids jsonb[];
    errors jsonb := '[]';
    pending int4range[];
    span int4range;
    one jsonb;
begin
    if private.current_device() is null then
        raise exception using errcode = '42501', message = 'ingest_entries takes the token of a paired device',
            hint = 'Pair the device again: its credential was revoked, or this is not a device token.';
    end if;
    if jsonb_typeof(batch) is distinct from 'array' then
        raise exception using errcode = '22023', message = 'the batch is a JSON array of entries';
    end if;
    n := jsonb_array_length(batch);
    if n > 1000 then
        raise exception using errcode = '22023', message = 'a batch holds at most 1000 entries',
            hint = 'Split it into several calls.';
    end if;
    if n = 0 then
        return jsonb_build_object('inserted', 0, 'duplicates', 0, 'rejected', 0, 'ids', '[]'::jsonb, 'errors', '[]'::jsonb);
    end if;
    cap := coalesce(
        (select (g.settings ->> 'body_cap_bytes')::integer from public.settings_global as g
         where g.settings ->> 'body_cap_bytes' ~ '^\d{1,9}$'),
        1048576
    );
    begin
        -- The common case: every row is fine, one INSERT.
        one := private.store_entries(batch, cap);
        return jsonb_build_object(
            'inserted', one -> 'stored', 'duplicates', n - (one ->> 'stored')::bigint, 'rejected', 0,
            'ids', one -> 'ids', 'errors', '[]'::jsonb
        );
    exception when others then
        if left(sqlstate, 2) not in ('22', '23') then
            raise;  -- not a bad value (a read-only transaction, a revoked credential, a timeout): nothing can land
        elsif n = 1 then
            return jsonb_build_object(
                'inserted', 0, 'duplicates', 0, 'rejected', 1, 'ids', '[null]'::jsonb, 'errors', jsonb_build_array(
                    jsonb_build_object('index', 0, 'error', coalesce(private.entry_problem(batch -> 0), sqlerrm))
                )
            );
        end if;
    end;
    ids := array_fill(null::jsonb, array[n]);
    -- Some row was refused: a stack of index ranges still to store, the leftmost on top.
    pending := array[int4range(n / 2, n), int4range(0, n / 2)];
    while cardinality(pending) > 0 loop
        span := pending[cardinality(pending)];
        pending := pending[1:cardinality(pending) - 1];
        begin
            one := private.store_entries(
                jsonb_path_query_array(batch, '$[$lo to $hi]', jsonb_build_object('lo', lower(span), 'hi', upper(span) - 1)),
                cap
            );
            stored := stored + (one ->> 'stored')::bigint;
            for i in 0 .. upper(span) - lower(span) - 1 loop
                ids[lower(span) + i + 1] := one -> 'ids' -> i;
            end loop;
        exception when others then
            if left(sqlstate, 2) not in ('22', '23') then
                raise;
            elsif upper(span) - lower(span) = 1 then
                errors := errors || jsonb_build_object(
                    'index', lower(span), 'error', coalesce(private.entry_problem(batch -> lower(span)), sqlerrm)
                );
            else
                pending := pending || int4range((lower(span) + upper(span)) / 2, upper(span))
                    || int4range(lower(span), (lower(span) + upper(span)) / 2);
            end if;
        end;
    end loop;
    return jsonb_build_object(
        'inserted', stored,
        'duplicates', n - jsonb_array_length(errors) - stored,
        'rejected', jsonb_array_length(errors),
        'ids', coalesce(to_jsonb(ids), '[]'),
        'errors', errors
    );
end;
$$;
comment on function public.ingest_entries(jsonb) is
'Store a paired device''s batch of captured flows (at most 1000). Returns {inserted, duplicates, rejected, ids, '
'errors}: ids has one entry per row (the stored id, or null when the row was refused) and errors one '
'{index, error} per refused row.';
revoke execute on function public.ingest_entries(jsonb) from public, anon, authenticated;
grant execute on function public.ingest_entries(jsonb) to device;
