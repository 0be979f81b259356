-- Purpose: the device commands BusyBro, MCP and the CLI offer; each publishes its event on device:<uuid>.
-- Affects: private.* definers and their public wrappers: rename_device, set_live_activity_message,
-- vpn_on_device, vpn_off_device, open_device_sheet, set_device_connection_type.
-- Caveats: devices:edit plus ownership (or grants_all), checked by device_for_command. Definers because the
-- tables grant users no writes; the public wrappers are plain invokers PostgREST exposes.

create or replace function private.rename_device(target uuid, new_name text)
returns public.devices
language plpgsql
security definer
set search_path = ''
as $$
declare
    changed public.devices;
begin
    -- A definer: users hold no update grant on devices; the checks below are the gate.
    perform private.device_for_command(target, 'rename it');
    if new_name is null or length(btrim(new_name)) not between 1 and 100 then
        raise exception using errcode = '22023', message = 'a device name has 1 to 100 characters';
    end if;
    update public.devices set name = btrim(new_name) where uuid = target returning * into changed;
    return changed;
end;
$$;

create or replace function private.set_device_status(target uuid, verb text, vpn text, message text, event text)
returns public.device_status
language plpgsql
security definer
set search_path = ''
as $$
declare
    changed public.device_status;
begin
    -- A definer: users hold no write grant on device_status; device_for_command is the gate.
    perform private.device_for_command(target, verb);
    insert into public.device_status as s (device_uuid, vpn_state, live_activity_message)
    values (target, coalesce(vpn, 'unknown'), message)
    on conflict (device_uuid) do update
    set vpn_state = coalesce(vpn, s.vpn_state),
        live_activity_message = case when event = 'live-activity-message' then message else s.live_activity_message end
    returning * into changed;
    perform realtime.send(
        jsonb_build_object('device_uuid', target, 'vpn_state', changed.vpn_state, 'message', message),
        event, 'device:' || target, true
    );
    return changed;
end;
$$;

create or replace function private.open_device_sheet(target uuid, sheet text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer so the send is stored whatever the caller's channel policies say; the check is the gate.
    perform private.device_for_command(target, 'open a sheet on it');
    if sheet is null or sheet !~ '^[a-z][a-z0-9_-]{0,40}$' then
        raise exception using errcode = '22023', message = 'a sheet name is lowercase letters, digits, - or _';
    end if;
    perform realtime.send(jsonb_build_object('device_uuid', target, 'sheet', sheet), 'open-sheet', 'device:' || target);
end;
$$;

create or replace function private.set_device_connection_type(target uuid, kind text)
returns public.devices
language plpgsql
security definer
set search_path = ''
as $$
declare
    changed public.devices;
begin
    -- A definer for the same reason as rename_device.
    perform private.device_for_command(target, 'change its connection type');
    if kind is null or kind not in ('vpn', 'pac', 'proxy', 'cdp') then
        raise exception using errcode = '22023', message = 'connection_type is one of vpn, pac, proxy, cdp';
    end if;
    update public.devices set connection_type = kind where uuid = target returning * into changed;
    return changed;
end;
$$;

revoke execute on function private.rename_device(uuid, text),
private.set_device_status(uuid, text, text, text, text), private.open_device_sheet(uuid, text),
private.set_device_connection_type(uuid, text) from public, anon;
grant execute on function private.rename_device(uuid, text),
private.set_device_status(uuid, text, text, text, text), private.open_device_sheet(uuid, text),
private.set_device_connection_type(uuid, text) to authenticated, service_role;

create function public.rename_device(device_uuid uuid, name text) returns public.devices
language sql as $$ select * from private.rename_device(device_uuid, name) $$;
create function public.set_live_activity_message(device_uuid uuid, message text) returns public.device_status
language sql as $$
    select * from private.set_device_status(
        device_uuid, 'set its live activity message', null, message, 'live-activity-message'
    )
$$;
create function public.vpn_on_device(device_uuid uuid) returns public.device_status
language sql as $$ select * from private.set_device_status(device_uuid, 'turn its VPN on', 'requested-on', null, 'vpn-on') $$;
create function public.vpn_off_device(device_uuid uuid) returns public.device_status
language sql as $$
    select * from private.set_device_status(device_uuid, 'turn its VPN off', 'requested-off', null, 'vpn-off')
$$;
create function public.open_device_sheet(device_uuid uuid, sheet text) returns void
language sql as $$ select private.open_device_sheet(device_uuid, sheet) $$;
create function public.set_device_connection_type(device_uuid uuid, connection_type text) returns public.devices
language sql as $$ select * from private.set_device_connection_type(device_uuid, connection_type) $$;

comment on function public.rename_device(uuid, text) is 'Rename a device (devices:edit, owner or admin).';
comment on function public.set_live_activity_message(uuid, text) is
'Set the message on a device''s live activity and push it (devices:edit, owner or admin).';
comment on function public.vpn_on_device(uuid) is 'Ask a device to turn its VPN on (devices:edit, owner or admin).';
comment on function public.vpn_off_device(uuid) is 'Ask a device to turn its VPN off (devices:edit, owner or admin).';
comment on function public.open_device_sheet(uuid, text) is 'Open a sheet in the device''s app (devices:edit).';
comment on function public.set_device_connection_type(uuid, text) is
'Set how a device connects: vpn, pac, proxy or cdp (devices:edit, owner or admin).';

revoke execute on function public.rename_device(uuid, text), public.set_live_activity_message(uuid, text),
public.vpn_on_device(uuid), public.vpn_off_device(uuid), public.open_device_sheet(uuid, text),
public.set_device_connection_type(uuid, text) from public, anon;
grant execute on function public.rename_device(uuid, text), public.set_live_activity_message(uuid, text),
public.vpn_on_device(uuid), public.vpn_off_device(uuid), public.open_device_sheet(uuid, text),
public.set_device_connection_type(uuid, text) to authenticated, service_role;
