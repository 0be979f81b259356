-- Purpose: each entry says why its bodies are what they are: request_body_state and response_body_state, one of
-- captured (the whole body), truncated (cut by a cap), evicted (the browser dropped it before it could be read),
-- streamed (a stream: server-sent events, a download read in part), lost (lost on navigation), skipped (bodies
-- off by settings) or none (there was no body), so a reader can tell why a body is missing.
-- Defines:
--   function private.body_state(text,bytea,boolean)
-- Caveats: ingest_entries() takes both as optional fields of an entry. When a state is absent (or `captured`),
-- the database decides: truncated when the body was cut (the client's flag or the body cap), captured when a
-- body arrived, none otherwise; `truncated` sets the truncation flag. Other states are kept as sent, body or
-- not. Rows stored before this migration have null states (unknown). The firehose does not carry them. Only
-- entry_rows() and entry_problem() change: store_entries() and ingest_entries() already pass every column.

alter table public.entries
add column request_body_state text,
add column response_body_state text,
add constraint entries_body_states_check check (
    request_body_state in ('captured', 'truncated', 'evicted', 'streamed', 'lost', 'skipped', 'none')
    and response_body_state in ('captured', 'truncated', 'evicted', 'streamed', 'lost', 'skipped', 'none')
);
comment on column public.entries.request_body_state is
'Why request_body is what it is: captured, truncated, evicted, streamed, lost, skipped or none; null before body '
'states were kept.';
comment on column public.entries.response_body_state is
'Why response_body is what it is: captured, truncated, evicted, streamed, lost, skipped or none; null before '
'body states were kept.';

create or replace function private.body_state(sent text, raw bytea, cut boolean)
returns text
language sql
immutable
parallel safe
as $$
    -- No SET clause, so the planner inlines it into entry_rows()'s INSERT; every name is built in.
    select case when sent <> 'captured' then sent when cut then 'truncated'
        when raw is not null or sent is not null then 'captured' else 'none' end
$$;
comment on function private.body_state(text, bytea, boolean) is
'The body state an entry keeps: the one sent, unless absent or captured: truncated when cut, captured when a body '
'arrived, none otherwise.';
revoke execute on function private.body_state(text, bytea, boolean) from public, anon, authenticated;

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
        when r ->> 'request_body_state' not in ('captured', 'truncated', 'evicted', 'streamed', 'lost', 'skipped', 'none')
            then 'request_body_state is one of captured, truncated, evicted, streamed, lost, skipped, none'
        when r ->> 'response_body_state' not in ('captured', 'truncated', 'evicted', 'streamed', 'lost', 'skipped', 'none')
            then 'response_body_state is one of captured, truncated, evicted, streamed, lost, skipped, none'
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
        t.request_cut, t.response_cut,
        private.body_state(i.request_body_state, b.request_raw, t.request_cut),
        private.body_state(i.response_body_state, b.response_raw, t.response_cut)
    from jsonb_to_recordset(batch) as i (
        id uuid, captured_at timestamptz, method text, scheme text, host text, port integer, path text,
        query text, http_version text, status integer, request_content_type text, response_content_type text,
        request_size bigint, response_size bigint, duration_ms real, ttfb_ms real, error text,
        request_headers jsonb, response_headers jsonb, request_body_b64 text, response_body_b64 text,
        request_body_size bigint, response_body_size bigint, request_body_truncated boolean,
        response_body_truncated boolean, request_body_state text, response_body_state text
    )
    cross join lateral (
        -- OFFSET 0 keeps this a subquery, so each body is decoded once, not once per use (five uses now).
        select decode(i.request_body_b64, 'base64') as request_raw, decode(i.response_body_b64, 'base64') as response_raw
        offset 0
    ) as b
    cross join lateral (
        -- Cut: the client says so (a flag, or the state truncated), or the body is over the cap.
        select
            coalesce(i.request_body_truncated, false) or i.request_body_state is not distinct from 'truncated'
                or coalesce(length(b.request_raw), 0) > cap as request_cut,
            coalesce(i.response_body_truncated, false) or i.response_body_state is not distinct from 'truncated'
                or coalesce(length(b.response_raw), 0) > cap as response_cut
    ) as t
$$;
comment on function private.entry_rows(jsonb, integer, uuid, uuid, text) is
'A batch of captured flows as rows of public.entries, for one device; the table''s constraints check them.';
revoke execute on function private.entry_rows(jsonb, integer, uuid, uuid, text) from public, anon, authenticated;
