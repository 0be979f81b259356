-- Purpose: tell subscribers when devices, service groups and settings change.
-- Affects: private.broadcast_change() and row triggers publishing to devices:all, service_groups:all,
-- settings:global and settings_device:all.
-- Caveats: the envelope is broadcast_changes' {record, old_record, operation, table, schema}, event = operation,
-- private. A device record leaves out credential_id, and a heartbeat that only moves last_seen_at is not news.

create or replace function private.broadcast_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer: these topics are "database only" (no insert policy lets a user send on them).
    perform realtime.send(
        jsonb_build_object(
            'old_record', case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) - 'credential_id' end,
            'record', case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) - 'credential_id' end,
            'operation', tg_op,
            'table', tg_table_name,
            'schema', tg_table_schema
        ),
        tg_op, tg_argv[0], true
    );
    return null;
end;
$$;
comment on function private.broadcast_change() is
'Row trigger: publish the change on the topic named by the trigger argument, in the broadcast_changes envelope.';
revoke execute on function private.broadcast_change() from public, anon;

create trigger devices_broadcast_insert_delete
after insert or delete on public.devices
for each row execute function private.broadcast_change('devices:all');

create trigger devices_broadcast_update
after update on public.devices
for each row
when ((to_jsonb(old) - 'last_seen_at') is distinct from (to_jsonb(new) - 'last_seen_at'))
execute function private.broadcast_change('devices:all');

create trigger service_groups_broadcast
after insert or update or delete on public.service_groups
for each row execute function private.broadcast_change('service_groups:all');

create trigger settings_global_broadcast
after update on public.settings_global
for each row execute function private.broadcast_change('settings:global');

create trigger settings_device_broadcast
after insert or update or delete on public.settings_device
for each row execute function private.broadcast_change('settings_device:all');
