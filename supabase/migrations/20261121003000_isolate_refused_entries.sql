-- Purpose: ingest_entries(batch): the typed fast path for the whole batch, and bisection when a row is refused.
-- Affects: private.entry_problem(), public.ingest_entries(jsonb).
-- Caveats: see 20261121002900. Each half is stored in its own subtransaction, so a refused half leaves nothing
-- behind; halves are tried left first, so errors come out in index order. Only bad values (SQLSTATE classes 22
-- and 23) send a batch down that path: any other error (a read-only transaction, a revoked credential, a timeout)
-- fails the whole call.

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
