-- Purpose: ingest_entries past half the speed of COPY: no ON CONFLICT on the common path, a lighter firehose.
-- Affects: private.entry_rows() (new), private.store_entries(jsonb, integer), private.firehose_columns(),
-- private.publish_entries().
-- Caveats: store_entries first tries a plain INSERT, which costs about 11% less than ON CONFLICT's speculative
-- insertion; only when that raises unique_violation (a batch resent from a spool) is it run again with ON CONFLICT
-- DO NOTHING, so duplicates are still skipped, not errors. The rows are computed once, in private.entry_rows(), a
-- SQL function the planner inlines into either INSERT. A row that brings no id is given one before the INSERT, so
-- the ids are read back from the batch in order without a materialized CTE. The firehose drops port and
-- response_content_type from each row and keeps the rows in insertion order (the batch's order) when a statement
-- touched one workspace, instead of sorting them again.

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
        coalesce(i.request_body_size, length(b.request_raw), 0),
        coalesce(i.response_body_size, length(b.response_raw), 0),
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
    -- A definer: ON CONFLICT under RLS would need a select policy devices must not have. The device and workspace
    -- come from the caller's credential, nothing else; any value the types or constraints refuse raises.
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
    -- The ids as the database spells them, in the batch's order.
    select coalesce(jsonb_agg(x.id), '[]') into ids from jsonb_to_recordset(batch) as x (id uuid);
    return jsonb_build_object('stored', stored, 'ids', ids);
end;
$$;

create or replace function private.firehose_columns()
returns jsonb
language sql
immutable
parallel safe
set search_path = ''
as $$
    select '["id", "device_uuid", "captured_at", "method", "scheme", "host", "path", "query", "status",
      "response_size", "duration_ms", "error"]'::jsonb
$$;

create or replace function private.publish_entries()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    first_ws uuid := (select n.workspace_id from new_rows as n limit 1);
    single boolean := not exists (select from new_rows as n where n.workspace_id <> first_ws);
begin
    -- A definer: ws:<workspace_id> is written by the database only (no insert policy lets a device send there).
    insert into realtime.messages (id, topic, extension, event, private, payload)
    select
        m.id, 'ws:' || m.workspace_id::text, 'broadcast', 'INSERT', true,
        jsonb_build_object(
            'old_record', null, 'operation', 'INSERT', 'table', 'entries', 'schema', 'public', 'id', m.id,
            'record', case when m.count = 1 then (
                select jsonb_object_agg(c.name, m.rows -> 0 -> (c.ord::integer - 1))
                from jsonb_array_elements_text(private.firehose_columns()) with ordinality as c (name, ord)
            ) end,
            'columns', private.firehose_columns(), 'rows', m.rows, 'count', m.count
        )
    from (
        -- One workspace (a device's batch, the common case): no grouping, so the rows keep insertion order.
        select gen_random_uuid() as id, first_ws as workspace_id, count(*) as count,
            jsonb_agg(jsonb_build_array(
                n.id, n.device_uuid, n.captured_at, n.method, n.scheme, n.host, n.path, n.query, n.status,
                n.response_size, n.duration_ms, n.error
            )) as rows
        from new_rows as n
        where single
        having count(*) > 0
        union all
        -- Several workspaces: one message each, rows in capture order.
        select gen_random_uuid(), n.workspace_id, count(*),
            jsonb_agg(jsonb_build_array(
                n.id, n.device_uuid, n.captured_at, n.method, n.scheme, n.host, n.path, n.query, n.status,
                n.response_size, n.duration_ms, n.error
            ) order by n.captured_at, n.id)
        from new_rows as n
        where not single
        group by n.workspace_id
    ) as m;
    return null;
end;
$$;
