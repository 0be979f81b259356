-- Purpose: a stored entry's body size never contradicts its body (issue 15, item 6).
-- Affects: private.entry_rows(jsonb, integer, uuid, uuid, text), which ingest_entries' store_entries inlines.
-- Caveats: a client may still report a body larger than what it sent (it truncated before sending: the flag
-- says so); a size below the bytes that arrived is replaced by their length, so `response_body_size = 1` beside
-- a 5 MB body cannot be stored. greatest() skips nulls, so a row without a claimed size keeps the body's
-- length, and a negative size without a body still reaches the table's check.

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
