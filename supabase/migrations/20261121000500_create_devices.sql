-- Purpose: capture devices (proxy ports, bmc browsers, phones) and their live status.
-- Affects: public.devices (REPLICA IDENTITY FULL), public.device_status.
-- Caveats: a device reads only its own row and writes only its own status, and only while its JWT cred
-- equals devices.credential_id. Users see devices they own, or with devices:view in their workspaces.
-- Every other write goes through the device RPCs.

create table public.devices (
    uuid uuid primary key default gen_random_uuid(),
    workspace_id uuid not null references public.workspaces (id) on delete cascade,
    owner_user_id uuid references public.profiles (id) on delete set null,
    name text not null check (length(name) between 1 and 100),
    model text,
    os text,
    source text not null check (source in ('ios', 'proxy', 'bmc')),
    connection_type text not null default 'proxy' check (connection_type in ('vpn', 'pac', 'proxy', 'cdp')),
    app_build text,
    app_source text,
    country text check (country ~ '^[A-Z]{2}$'),
    proxy_port integer unique check (proxy_port between 1 and 65535),
    allowed_sources cidr[] not null default '{127.0.0.1/32,::1/128}',
    credential_id uuid,
    last_seen_at timestamptz,
    created_at timestamptz not null default now()
);
comment on table public.devices is 'A capture client. Its JWT is valid while the JWT''s cred equals credential_id.';
comment on column public.devices.credential_id is 'The current credential; unpairing clears it, which voids every JWT.';
comment on column public.devices.allowed_sources is 'Addresses the proxy accepts on this device''s port.';
alter table public.devices replica identity full;
create index devices_workspace_id_idx on public.devices (workspace_id);
create index devices_owner_user_id_idx on public.devices (owner_user_id);

create table public.device_status (
    device_uuid uuid primary key references public.devices (uuid) on delete cascade,
    online boolean not null default false,
    vpn_state text not null default 'unknown'
    check (vpn_state in ('unknown', 'on', 'off', 'requested-on', 'requested-off')),
    heartbeat_at timestamptz,
    ip inet,
    ip_country text check (ip_country ~ '^[A-Z]{2}$'),
    live_activity_message text check (length(live_activity_message) <= 500)
);
comment on table public.device_status is 'What a device last reported, and the message shown on its live activity.';

revoke all on public.devices, public.device_status from anon, authenticated;
grant select on public.devices, public.device_status to authenticated, device;
grant insert (device_uuid, online, vpn_state, heartbeat_at, ip, ip_country) on public.device_status to device;
grant update (online, vpn_state, heartbeat_at, ip, ip_country) on public.device_status to device;

alter table public.devices enable row level security;
alter table public.device_status enable row level security;

create policy "devices: select owned, or viewable in my workspaces" on public.devices
for select to authenticated
using (
    owner_user_id = (select auth.uid())
    or (select private.is_admin())
    or ((select private.has_capability('devices', 'view')) and workspace_id = any((select private.my_workspaces())::uuid[]))
);

create policy "devices: select itself" on public.devices
for select to device
using (uuid = (select private.current_device()));

create policy "device_status: select where the device is visible" on public.device_status
for select to authenticated
using (exists (select from public.devices as d where d.uuid = device_status.device_uuid));

create policy "device_status: select its own" on public.device_status
for select to device
using (device_uuid = (select private.current_device()));

create policy "device_status: insert its own" on public.device_status
for insert to device
with check (device_uuid = (select private.current_device()));

create policy "device_status: update its own" on public.device_status
for update to device
using (device_uuid = (select private.current_device()))
with check (device_uuid = (select private.current_device()));
