-- Purpose: a device's row and its settings override reach only people who may read that device. Each change is
-- published on devices:<workspace_id> and settings_device:<workspace_id>, which that workspace's members with
-- devices:view receive (admins: every workspace); devices:all and settings_device:all keep carrying every
-- workspace's changes, to admins only. Before this, anyone with devices:view heard other workspaces' devices.
-- Commands on device:<uuid> now need devices:edit as well as owning the device (as the device RPCs already do).
-- The same rule admits breakpoints:<workspace_id> (breakpoints:view there), which the next migration publishes.
-- Defines:
--   function private.broadcast_workspace_change()
--   trigger devices_broadcast_workspace_insert_delete on public.devices
--   trigger devices_broadcast_workspace_update on public.devices
--   trigger settings_device_broadcast_workspace on public.settings_device
-- Caveats: a device moved to another workspace is announced on both (DELETE on the old one's topic, INSERT on
-- the new one's), so each audience sees it leave or arrive. An override deleted by the cascade of its device's
-- deletion has no workspace left to name; devices:<workspace_id> already said the device is gone.

create or replace function private.broadcast_workspace_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    prefix text := tg_argv[0];
    old_ws uuid;
    new_ws uuid;
    envelope jsonb;
begin
    -- A definer: these topics are "database only", and an override's workspace is read from its device.
    if tg_table_name <> 'settings_device' then  -- a row with its own workspace_id
        old_ws := case when tg_op in ('UPDATE', 'DELETE') then (to_jsonb(old) ->> 'workspace_id')::uuid end;
        new_ws := case when tg_op in ('INSERT', 'UPDATE') then (to_jsonb(new) ->> 'workspace_id')::uuid end;
    else
        if tg_op in ('UPDATE', 'DELETE') then
            select d.workspace_id into old_ws from public.devices as d where d.uuid = old.device_uuid;
        end if;
        if tg_op in ('INSERT', 'UPDATE') then
            select d.workspace_id into new_ws from public.devices as d where d.uuid = new.device_uuid;
        end if;
    end if;
    envelope := jsonb_build_object(
        'old_record', case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end,
        'record', case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) end,
        'operation', tg_op,
        'table', tg_table_name,
        'schema', tg_table_schema
    );
    if old_ws is not null and new_ws is not null and old_ws <> new_ws then
        -- moved: the old workspace sees it leave, the new one sees it arrive
        perform realtime.send(
            envelope || jsonb_build_object('operation', 'DELETE', 'record', null),
            'DELETE', prefix || ':' || old_ws::text, true
        );
        perform realtime.send(
            envelope || jsonb_build_object('operation', 'INSERT', 'old_record', null),
            'INSERT', prefix || ':' || new_ws::text, true
        );
    elsif coalesce(new_ws, old_ws) is not null then
        perform realtime.send(envelope, tg_op, prefix || ':' || coalesce(new_ws, old_ws)::text, true);
    end if;
    return null;
end;
$$;
comment on function private.broadcast_workspace_change() is
'Row trigger: publish the change on <prefix>:<workspace_id> (prefix = the trigger argument) of the row''s '
'workspace (its workspace_id; for settings_device, its device''s), in the broadcast_changes envelope; a move '
'is a DELETE on the old workspace and an INSERT on the new.';
revoke execute on function private.broadcast_workspace_change() from public, anon;

create trigger devices_broadcast_workspace_insert_delete
after insert or delete on public.devices
for each row execute function private.broadcast_workspace_change('devices');

create trigger devices_broadcast_workspace_update
after update on public.devices
for each row
when ((to_jsonb(old) - 'last_seen_at') is distinct from (to_jsonb(new) - 'last_seen_at'))
execute function private.broadcast_workspace_change('devices');

create trigger settings_device_broadcast_workspace
after insert or update or delete on public.settings_device
for each row execute function private.broadcast_workspace_change('settings_device');

create or replace function private.can_receive_topic(topic text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    caller text := private.caller_role();
    me uuid := private.current_device();
    kind text := split_part(topic, ':', 1);
    target uuid := private.try_uuid(nullif(substr(topic, length(split_part(topic, ':', 1)) + 2), ''));
begin
    -- A definer: it reads memberships and devices whatever the caller may list.
    if topic is null then
        return false;
    elsif caller = 'service_role' then
        return true;
    elsif topic = 'proxy-control' then
        return false;  -- retired: nobody listens there any more, so nobody may
    elsif caller = 'device' then
        return me is not null and (
            topic = 'settings:global'
            or topic = 'device:' || me::text
            or (
                kind = 'proxy-control' and target is not null and topic = kind || ':' || target::text
                and exists (
                    select from public.devices as d where d.uuid = me and d.source = 'proxy' and d.workspace_id = target
                )
            )
        );
    elsif caller <> 'authenticated' or auth.uid() is null then
        return false;
    elsif topic = 'settings:global' then
        return true;
    elsif topic in ('devices:all', 'settings_device:all') then
        return private.is_admin();  -- every workspace's devices: only whoever may read them all
    elsif topic = 'service_groups:all' then
        return private.has_capability('services', 'view');
    elsif target is null or topic <> kind || ':' || target::text then
        return false;
    elsif kind = 'ws' then
        return private.is_admin()
            or (target = any(private.my_workspaces()) and private.has_capability('entries', 'view'));
    elsif kind in ('devices', 'settings_device') then
        return private.is_admin()
            or (target = any(private.my_workspaces()) and private.has_capability('devices', 'view'));
    elsif kind = 'breakpoints' then  -- rules, published by 20261203101600
        return private.is_admin()
            or (target = any(private.my_workspaces()) and private.has_capability('breakpoints', 'view'));
    elsif kind = 'device' then
        return private.is_admin()
            or exists (select from public.devices as d where d.uuid = target and d.owner_user_id = auth.uid());
    elsif kind = 'proxy-control' then
        return target = any(private.workspaces_with('breakpoints', 'edit'));
    end if;
    return false;
end;
$$;

create or replace function private.can_send_topic(topic text, event text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    caller text := private.caller_role();
    me uuid := private.current_device();
    kind text := split_part(topic, ':', 1);
    target uuid := private.try_uuid(nullif(substr(topic, length(split_part(topic, ':', 1)) + 2), ''));
begin
    -- A definer for the same reason as can_receive_topic.
    if topic is null then
        return false;
    elsif caller = 'service_role' then
        return true;
    elsif topic = 'proxy-control' then
        return false;  -- retired: nobody listens there any more, so nobody may
    elsif caller = 'device' then
        return me is not null and topic = 'device:' || me::text and event = 'cdp-result';
    elsif caller <> 'authenticated' or auth.uid() is null then
        return false;
    elsif target is null or topic <> kind || ':' || target::text then
        return false;
    elsif kind = 'proxy-control' then
        return target = any(private.workspaces_with('breakpoints', 'edit'));
    elsif kind = 'device' then
        -- a command to a device is an edit of it: its owner with devices:edit, or an admin
        return private.is_admin()
            or (
                private.has_capability('devices', 'edit')
                and exists (select from public.devices as d where d.uuid = target and d.owner_user_id = auth.uid())
            );
    end if;
    return false;
end;
$$;
