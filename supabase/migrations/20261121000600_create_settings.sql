-- Purpose: global settings (one row) and per-device overrides, merged by effective_settings().
-- Affects: public.settings_global, public.settings_device, public.effective_settings(uuid).
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
