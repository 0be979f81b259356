-- Purpose: writing settings: the global connection type (global:edit) and the raw JSON (admin).
-- Affects: private.* definers and public wrappers set_global_connection_type, set_global_settings,
-- set_device_settings.
-- Caveats: set_device_settings replaces the device's overrides; pass {} to clear them.

create or replace function private.set_global_settings(new_settings jsonb, only_connection_type text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    result jsonb;
begin
    -- A definer: users hold no write grant on settings_global; the checks are the gate.
    if only_connection_type is not null or new_settings is null then
        perform private.require_capability('global', 'edit', 'change the global connection type');
        if only_connection_type is null or only_connection_type not in ('vpn', 'pac', 'proxy', 'cdp') then
            raise exception using errcode = '22023', message = 'connection_type is one of vpn, pac, proxy, cdp';
        end if;
        new_settings := (select g.settings from public.settings_global as g)
            || jsonb_build_object('connection_type', only_connection_type);
    else
        perform private.require_admin('replace the global settings');
        if jsonb_typeof(new_settings) <> 'object' then
            raise exception using errcode = '22023', message = 'settings must be a JSON object';
        end if;
    end if;
    update public.settings_global set settings = new_settings, updated_at = now() returning settings into result;
    return result;
end;
$$;

create or replace function private.set_device_settings(target uuid, overrides jsonb)
returns public.settings_device
language plpgsql
security definer
set search_path = ''
as $$
declare
    result public.settings_device;
begin
    -- A definer for the same reason as set_global_settings.
    perform private.require_admin('change a device''s settings');
    if overrides is null or jsonb_typeof(overrides) <> 'object' then
        raise exception using errcode = '22023', message = 'overrides must be a JSON object';
    end if;
    if not exists (select from public.devices as d where d.uuid = target) then
        raise exception using errcode = 'PT404', message = format('no device %s', target);
    end if;
    insert into public.settings_device as s (device_uuid, overrides) values (target, overrides)
    on conflict (device_uuid) do update set overrides = excluded.overrides, updated_at = now()
    returning * into result;
    return result;
end;
$$;

revoke execute on function private.set_global_settings(jsonb, text), private.set_device_settings(uuid, jsonb)
from public, anon;
grant execute on function private.set_global_settings(jsonb, text), private.set_device_settings(uuid, jsonb)
to authenticated, service_role;

create function public.set_global_connection_type(connection_type text) returns jsonb
language sql as $$ select private.set_global_settings(null, connection_type) $$;
create function public.set_global_settings(settings jsonb) returns jsonb
language sql as $$ select private.set_global_settings(coalesce(settings, 'null'::jsonb), null) $$;
create function public.set_device_settings(device_uuid uuid, overrides jsonb) returns public.settings_device
language sql as $$ select * from private.set_device_settings(device_uuid, overrides) $$;

comment on function public.set_global_connection_type(text) is 'Set the default connection type (global:edit).';
comment on function public.set_global_settings(jsonb) is 'Replace the global settings JSON (admin).';
comment on function public.set_device_settings(uuid, jsonb) is 'Replace a device''s setting overrides (admin).';

revoke execute on function public.set_global_connection_type(text), public.set_global_settings(jsonb),
public.set_device_settings(uuid, jsonb) from public, anon;
grant execute on function public.set_global_connection_type(text), public.set_global_settings(jsonb),
public.set_device_settings(uuid, jsonb) to authenticated, service_role;
