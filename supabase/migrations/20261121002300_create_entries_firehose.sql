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
    select m.id, m.topic, 'broadcast', 'INSERT', true, m.envelope || jsonb_build_object('id', m.id)
    from (
        -- gen_random_uuid() in the select list runs once per row (a lateral subquery would run once in all).
        select
            gen_random_uuid() as id, 'ws:' || n.workspace_id::text as topic, n.captured_at, n.id as entry_id,
            jsonb_build_object(
                'old_record', null,
                'record', to_jsonb(n) - array['request_headers', 'response_headers', 'request_body', 'response_body'],
                'operation', 'INSERT', 'table', 'entries', 'schema', 'public'
            ) as envelope
        from new_rows as n
    ) as m
    order by m.captured_at, m.entry_id;
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
