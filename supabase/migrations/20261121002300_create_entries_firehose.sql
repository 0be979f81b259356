-- Purpose: the live firehose: every new entry is published on ws:<workspace_id>.
-- Affects: private.publish_entries() and a statement-level trigger on public.entries.
-- Caveats: one INSERT into realtime.messages per statement, whatever the batch size, with one message per entry
-- in the broadcast_changes envelope (event INSERT, private), so subscribers write the usual
-- .on('broadcast', {event: 'INSERT'}). Records leave out headers and bodies to keep messages small.

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
        m.id, 'ws:' || n.workspace_id::text, 'broadcast', 'INSERT', true,
        jsonb_build_object(
            'old_record', null,
            'record', to_jsonb(n) - array['request_headers', 'response_headers', 'request_body', 'response_body'],
            'operation', 'INSERT', 'table', 'entries', 'schema', 'public', 'id', m.id
        )
    from new_rows as n
    cross join lateral (select gen_random_uuid() as id) as m
    order by n.captured_at, n.id;
    return null;
end;
$$;
comment on function private.publish_entries() is
'Statement trigger: one realtime.messages insert per statement, one private INSERT message per new entry.';
revoke execute on function private.publish_entries() from public, anon;

create trigger entries_firehose
after insert on public.entries
referencing new table as new_rows
for each statement execute function private.publish_entries();
