-- Purpose: global settings (one row) and per-device overrides, merged by effective_settings(), and the admin
-- RPCs that write them.
-- Defines:
--   table public.settings_device
--   table public.settings_global
--   function private.set_device_settings(uuid,jsonb)
--   function private.set_global_settings(jsonb,text)
--   function public.effective_settings(uuid)
--   function public.set_device_settings(uuid,jsonb)
--   function public.set_global_connection_type(text)
--   function public.set_global_settings(jsonb)
--   policy "settings_device: select its own" on public.settings_device
--   policy "settings_device: select where the device is visible" on public.settings_device
--   policy "settings_global: select paired devices" on public.settings_global
--   policy "settings_global: select signed-in users" on public.settings_global
-- Caveats: every signed-in user and paired device reads the global row; overrides are read by whoever can see
-- the device. Writes go through the admin RPCs.

create table public.settings_global (
    id boolean primary key default true check (id),
    settings jsonb not null default '{"connection_type": "proxy"}' check (jsonb_typeof(settings) = 'object'),
    updated_at timestamptz not null default now()
);
comment on table public.settings_global is 'The one row of settings every device starts from.';
insert into public.settings_global (id) values (true) on conflict (id) do nothing;

create table public.settings_device (
    device_uuid uuid primary key references public.devices (uuid) on delete cascade,
    overrides jsonb not null default '{}' check (jsonb_typeof(overrides) = 'object'),
    updated_at timestamptz not null default now()
);
comment on table public.settings_device is 'Per-device overrides, laid over settings_global by effective_settings().';

revoke all on public.settings_global, public.settings_device from anon, authenticated;
grant select on public.settings_global, public.settings_device to authenticated, device;

alter table public.settings_global enable row level security;
alter table public.settings_device enable row level security;

create policy "settings_global: select signed-in users" on public.settings_global
for select to authenticated
using (true);

create policy "settings_global: select paired devices" on public.settings_global
for select to device
using ((select private.current_device()) is not null);

create policy "settings_device: select where the device is visible" on public.settings_device
for select to authenticated
using (exists (select from public.devices as d where d.uuid = settings_device.device_uuid));

create policy "settings_device: select its own" on public.settings_device
for select to device
using (device_uuid = (select private.current_device()));

create or replace function public.effective_settings(device_uuid uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
    -- Invoker: row-level security decides whether the caller may see this device at all.
    select coalesce((select g.settings from public.settings_global as g), '{}')
        || coalesce((select s.overrides from public.settings_device as s where s.device_uuid = d.uuid), '{}')
    from public.devices as d
    where d.uuid = effective_settings.device_uuid
$$;
comment on function public.effective_settings(uuid) is
'The device''s settings: its overrides over the global settings; null when the caller cannot see the device.';
revoke execute on function public.effective_settings(uuid) from public, anon;
grant execute on function public.effective_settings(uuid) to authenticated, device, service_role;

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
