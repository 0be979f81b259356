-- Purpose: the live firehose: every new entry is published on ws:<workspace_id>.
-- Affects: private.publish_entries() and a statement-level trigger on public.entries.
-- Caveats: one message per insert statement (per workspace it touched), not per row, so a batch of 500 costs one
-- small write. The payload keeps the broadcast_changes envelope ({record, old_record, operation, table, schema},
-- event INSERT, private) and adds `records` (every new entry, in capture order) and `count`; `record` is the
-- entry itself when the statement inserted exactly one, else null. Records carry the metadata a list view needs,
-- never headers or bodies (they are built from those columns, so bodies are never even serialised).

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
            'old_record', null, 'record', case when m.count = 1 then m.records -> 0 end, 'records', m.records,
            'count', m.count, 'operation', 'INSERT', 'table', 'entries', 'schema', 'public', 'id', m.id
        )
    from (
        select
            gen_random_uuid() as id, n.workspace_id, count(*) as count,
            jsonb_agg(
                jsonb_build_object(
                    'id', n.id, 'device_uuid', n.device_uuid, 'captured_at', n.captured_at, 'method', n.method,
                    'scheme', n.scheme, 'host', n.host, 'port', n.port, 'path', n.path, 'query', n.query,
                    'status', n.status, 'response_content_type', n.response_content_type,
                    'response_size', n.response_size, 'duration_ms', n.duration_ms, 'error', n.error
                ) order by n.captured_at, n.id
            ) as records
        from new_rows as n
        group by n.workspace_id
    ) as m;
    return null;
end;
$$;
comment on function private.publish_entries() is
'Statement trigger: one private INSERT message per statement and workspace, carrying every new entry in records.';
revoke execute on function private.publish_entries() from public, anon;

create trigger entries_firehose
after insert on public.entries
referencing new table as new_rows
for each statement execute function private.publish_entries();
