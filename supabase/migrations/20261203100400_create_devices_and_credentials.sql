-- Purpose: capture devices (proxy ports, bmc browsers, phones), their live status, their credentials, the
-- command helpers, and the RPCs that rename, command, create, unpair and delete devices.
-- Defines:
--   table private.device_credentials
--   table public.device_status
--   table public.devices
--   function private.can_see_device(uuid,uuid)
--   function private.create_device(uuid,text,text,uuid,cidr[],integer)
--   function private.current_device()
--   function private.delete_device(uuid)
--   function private.device_credentials(uuid[])
--   function private.device_for_command(uuid,text)
--   function private.open_device_sheet(uuid,text)
--   function private.rename_device(uuid,text)
--   function private.set_device_connection_type(uuid,text)
--   function private.set_device_status(uuid,text,text,text,text)
--   function private.sync_device_paired()
--   function private.unpair_device(uuid)
--   function public.create_device(uuid,text,text,uuid,cidr[],integer)
--   function public.delete_device(uuid)
--   function public.device_credentials(uuid[])
--   function public.open_device_sheet(uuid,text)
--   function public.rename_device(uuid,text)
--   function public.set_device_connection_type(uuid,text)
--   function public.set_live_activity_message(uuid,text)
--   function public.unpair_device(uuid)
--   function public.vpn_off_device(uuid)
--   function public.vpn_on_device(uuid)
--   trigger device_credentials_sync_paired on private.device_credentials
--   policy "device_status: insert its own" on public.device_status
--   policy "device_status: select its own" on public.device_status
--   policy "device_status: select where the device is visible" on public.device_status
--   policy "device_status: update its own" on public.device_status
--   policy "devices: select itself" on public.devices
--   policy "devices: select owned, or viewable in my workspaces" on public.devices
-- Caveats: no API reader sees a credential: it lives in private.device_credentials, which only security-definer
-- functions read (a column privilege would break PostgREST's `select=*`). public.devices keeps `paired` and
-- `paired_at` (when the current credential was issued), which a trigger keeps in step with the credential, so
-- every writer only writes the credential. A device's JWT counts while its `cred` is that credential
-- (private.current_device()); the device then reads only its own row and writes only its own status. Users see
-- devices they own, or with devices:view in their workspaces; every other write goes through the RPCs.

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
    last_seen_at timestamptz,
    created_at timestamptz not null default now(),
    paired boolean not null default false,
    paired_at timestamptz,
    constraint devices_paired_when_issued check (paired = (paired_at is not null))
);
comment on table public.devices is
'A capture client. Its JWT counts while the JWT''s cred is its current credential (see paired, paired_at).';
comment on column public.devices.allowed_sources is 'Addresses the proxy accepts on this device''s port.';
comment on column public.devices.paired is 'Whether the device holds a credential (unpairing clears it).';
comment on column public.devices.paired_at is 'When the current credential was issued; null while unpaired.';
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

create table private.device_credentials (
    device_uuid uuid primary key references public.devices (uuid) on delete cascade,
    credential_id uuid not null default gen_random_uuid(),
    issued_at timestamptz not null default now()
);
comment on table private.device_credentials is
'A device''s current credential: its JWT counts while the JWT''s cred equals credential_id. No API role reads it.';
revoke all on private.device_credentials from public, anon, authenticated, service_role, device;
alter table private.device_credentials enable row level security;

create or replace function private.sync_device_paired()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer: users hold no update grant on devices; the credential row is the only thing that decides.
    update public.devices as d
    set paired = tg_op <> 'DELETE', paired_at = case when tg_op <> 'DELETE' then new.issued_at end
    where d.uuid = coalesce(new.device_uuid, old.device_uuid);
    return null;
end;
$$;
comment on function private.sync_device_paired() is
'Row trigger on private.device_credentials: devices.paired and paired_at follow the credential.';
revoke execute on function private.sync_device_paired() from public, anon;

create trigger device_credentials_sync_paired
after insert or update or delete on private.device_credentials
for each row execute function private.sync_device_paired();

create or replace function private.current_device()
returns uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    found uuid;
begin
    -- A definer: a device's credential is checked against a table no API role may read.
    if private.caller_role() <> 'device' then
        return null;
    end if;
    select d.uuid into found
    from public.devices as d inner join private.device_credentials as c on c.device_uuid = d.uuid
    where d.uuid = auth.uid()
        and c.credential_id = private.try_uuid(auth.jwt() ->> 'cred')
        and d.workspace_id = private.try_uuid(auth.jwt() ->> 'workspace_id');
    return found;
end;
$$;
comment on function private.current_device() is
'The calling device''s uuid while its JWT cred is its current credential; null otherwise (unpaired, forged).';
revoke execute on function private.current_device() from public, anon;
grant execute on function private.current_device() to authenticated, device, service_role;

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

create or replace function private.can_see_device(workspace uuid, owner uuid)
returns boolean
language sql
stable
set search_path = ''
as $$
    select owner = auth.uid()
        or private.is_admin()
        or (private.has_capability('devices', 'view') and workspace = any(private.my_workspaces()))
$$;

create or replace function private.device_for_command(target uuid, verb text)
returns public.devices
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    found public.devices;
begin
    -- A definer: it reads the device whatever the caller's row-level security would show, then decides.
    select * into found from public.devices as d where d.uuid = target;
    if found.uuid is null or not coalesce(private.can_see_device(found.workspace_id, found.owner_user_id), false) then
        raise exception using
            errcode = 'PT404', message = format('no device %s', coalesce(target::text, 'null')),
            hint = 'Pass the uuid of a device you can see (select uuid from devices).';
    end if;
    perform private.require_capability('devices', 'edit', verb);
    if not (private.is_admin() or found.owner_user_id = auth.uid()) then
        raise exception using
            errcode = '42501', message = format('only the device''s owner or an admin may %s', verb),
            hint = 'Ask the owner of the device, or an admin.';
    end if;
    return found;
end;
$$;
revoke execute on function private.can_see_device(uuid, uuid), private.device_for_command(uuid, text)
from public, anon;
grant execute on function private.can_see_device(uuid, uuid), private.device_for_command(uuid, text)
to authenticated, service_role;

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

create or replace function private.create_device(
    workspace uuid, device_name text, device_source text, owner uuid, sources cidr[], port integer
)
returns public.devices
language plpgsql
security definer
set search_path = ''
as $$
declare
    created public.devices;
begin
    -- A definer: users hold no insert grant on devices; require_admin is the gate.
    perform private.require_admin('add a device');
    insert into public.devices (workspace_id, name, source, owner_user_id, allowed_sources, proxy_port)
    values (
        workspace, btrim(device_name), device_source, coalesce(owner, auth.uid()),
        coalesce(sources, '{127.0.0.1/32,::1/128}'), port
    )
    returning * into created;
    insert into public.device_status (device_uuid) values (created.uuid);
    insert into private.device_credentials (device_uuid) values (created.uuid);
    select * into created from public.devices as d where d.uuid = created.uuid;
    return created;
end;
$$;

create or replace function private.unpair_device(target uuid)
returns public.devices
language plpgsql
security definer
set search_path = ''
as $$
declare
    changed public.devices;
begin
    -- A definer for the same reason as create_device.
    perform private.require_admin('unpair a device');
    delete from private.device_credentials as c where c.device_uuid = target;
    select * into changed from public.devices as d where d.uuid = target;
    if changed.uuid is null then
        raise exception using errcode = 'PT404', message = format('no device %s', target);
    end if;
    update public.device_status set online = false where device_uuid = target;
    perform realtime.send(jsonb_build_object('device_uuid', target), 'unpair', 'device:' || target);
    return changed;
end;
$$;

create or replace function private.delete_device(target uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer for the same reason as create_device.
    perform private.require_admin('delete a device');
    perform realtime.send(jsonb_build_object('device_uuid', target), 'unpair', 'device:' || target);
    delete from public.devices where uuid = target;
    if not found then
        raise exception using errcode = 'PT404', message = format('no device %s', target);
    end if;
end;
$$;

revoke execute on function private.create_device(uuid, text, text, uuid, cidr[], integer),
private.unpair_device(uuid), private.delete_device(uuid) from public, anon;
grant execute on function private.create_device(uuid, text, text, uuid, cidr[], integer),
private.unpair_device(uuid), private.delete_device(uuid) to authenticated, service_role;

create function public.create_device(
    workspace_id uuid, name text, source text,
    owner_user_id uuid default null, allowed_sources cidr[] default null, proxy_port integer default null
) returns public.devices
language sql as $$
    select * from private.create_device(workspace_id, name, source, owner_user_id, allowed_sources, proxy_port)
$$;
create function public.unpair_device(device_uuid uuid) returns public.devices
language sql as $$ select * from private.unpair_device(device_uuid) $$;
create function public.delete_device(device_uuid uuid) returns void
language sql as $$ select private.delete_device(device_uuid) $$;

comment on function public.create_device(uuid, text, text, uuid, cidr[], integer) is
'Add a device with a fresh credential (admin). The owner defaults to the caller.';
comment on function public.unpair_device(uuid) is 'Void a device''s credential at once and tell it (admin).';
comment on function public.delete_device(uuid) is 'Remove a device and everything that hangs off it (admin).';

revoke execute on function public.create_device(uuid, text, text, uuid, cidr[], integer),
public.unpair_device(uuid), public.delete_device(uuid) from public, anon;
grant execute on function public.create_device(uuid, text, text, uuid, cidr[], integer),
public.unpair_device(uuid), public.delete_device(uuid) to authenticated, service_role;

create or replace function private.device_credentials(devices uuid[])
returns table (device_uuid uuid, credential_id uuid)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- A definer: credentials live where no API role reads them; this is the one way out, and it checks itself.
    perform private.require_capability('devices', 'edit', 'mint device tokens');
    if cardinality(devices) > 1000 then
        raise exception using errcode = '22023', message = 'ask for at most 1000 devices at a time';
    end if;
    return query
    select d.uuid, c.credential_id
    from public.devices as d left join private.device_credentials as c on c.device_uuid = d.uuid
    where d.uuid = any(devices) and (private.is_admin() or d.owner_user_id = auth.uid());
end;
$$;
comment on function private.device_credentials(uuid[]) is
'The current credentials of the given devices the caller may mint tokens for (admins: all; owners: their own).';
revoke execute on function private.device_credentials(uuid[]) from public, anon;
grant execute on function private.device_credentials(uuid[]) to authenticated, service_role;

create function public.device_credentials(device_uuids uuid[])
returns table (device_uuid uuid, credential_id uuid)
language sql
stable
as $$ select * from private.device_credentials(device_uuids) $$;
comment on function public.device_credentials(uuid[]) is
'Credentials to sign device tokens with: admins get any device''s, owners with devices:edit their own; others '
'are left out. A null credential_id means unpaired.';
revoke execute on function public.device_credentials(uuid[]) from public, anon;
grant execute on function public.device_credentials(uuid[]) to authenticated, service_role;
