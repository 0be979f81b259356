-- Purpose: admin-only device lifecycle: create (with a fresh credential), unpair, delete.
-- Affects: private.create_device, unpair_device, delete_device and their public wrappers.
-- Caveats: unpairing clears credential_id, so the device's next request fails at once (no token blacklist),
-- and publishes `unpair` on device:<uuid>. Deleting publishes `unpair` first, so the device hears it.

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
    insert into public.devices (workspace_id, name, source, owner_user_id, allowed_sources, proxy_port, credential_id)
    values (
        workspace, btrim(device_name), device_source, coalesce(owner, auth.uid()),
        coalesce(sources, '{127.0.0.1/32,::1/128}'), port, gen_random_uuid()
    )
    returning * into created;
    insert into public.device_status (device_uuid) values (created.uuid);
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
    update public.devices set credential_id = null where uuid = target returning * into changed;
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
