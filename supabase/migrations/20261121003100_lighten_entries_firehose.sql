-- Purpose: a cheaper firehose: the new entries travel as rows of values under one list of column names.
-- Affects: private.publish_entries().
-- Caveats: the payload keeps the broadcast_changes envelope and `count`; `records` (one JSON object per entry) is
-- replaced by `columns` (the names, once) and `rows` (one array of values per entry, in that order). Building 500
-- JSON objects cost about 5 ms per batch, because every object's keys are sorted and checked; arrays cost about
-- 2 ms, and the message is a third smaller. `record` is still the entry as an object when the statement inserted
-- exactly one.

create or replace function private.firehose_columns()
returns jsonb
language sql
immutable
parallel safe
set search_path = ''
as $$
    select '["id", "device_uuid", "captured_at", "method", "scheme", "host", "port", "path", "query", "status",
      "response_content_type", "response_size", "duration_ms", "error"]'::jsonb
$$;
comment on function private.firehose_columns() is 'The names of the values in each row of a firehose message.';

create or replace function private.publish_entries()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
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
        select
            gen_random_uuid() as id, n.workspace_id, count(*) as count,
            jsonb_agg(
                jsonb_build_array(
                    n.id, n.device_uuid, n.captured_at, n.method, n.scheme, n.host, n.port, n.path, n.query, n.status,
                    n.response_content_type, n.response_size, n.duration_ms, n.error
                ) order by n.captured_at, n.id
            ) as rows
        from new_rows as n
        group by n.workspace_id
    ) as m;
    return null;
end;
$$;
comment on function private.publish_entries() is
'Statement trigger: one private INSERT message per statement and workspace: columns plus one row per new entry.';
revoke execute on function private.publish_entries() from public, anon;
