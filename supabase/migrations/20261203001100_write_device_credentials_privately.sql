-- Purpose: the device lifecycle writes the credential in private.device_credentials, and the tools that mint
-- device tokens (`busymate proxy run`, `busymate token --device`) ask for it through one narrow function.
-- Affects: private.create_device(), private.unpair_device(), private.pair_device(), device_credentials(uuid[]).
-- Caveats: device_credentials answers admins for any device and a device's owner (with devices:edit) for their
-- own; other requested devices are left out of the answer, so a proxy lists what it may serve in one call. An
-- unpaired device the caller may have comes back with a null credential. Signatures and grants stay as shipped.

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

create or replace function private.pair_device(activation_code text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    normalized constant text := upper(regexp_replace(coalesce(activation_code, ''), '[[:space:]-]', '', 'g'));
    used private.device_activations;
    issued private.device_credentials;
    paired public.devices;
begin
    -- A definer: the caller holds nothing but the code; the code is the proof.
    delete from private.device_activations as a
    where a.code_hash = extensions.digest(normalized, 'sha256')
    returning a.* into used;
    if used.device_uuid is null or used.expires_at < now() then
        raise exception using
            errcode = 'PT400', message = 'invalid or expired activation code',
            hint = 'Ask an admin for a new code: busymate devices pair <device>';
    end if;
    insert into private.device_credentials as c (device_uuid, credential_id, issued_at)
    values (used.device_uuid, gen_random_uuid(), clock_timestamp())
    on conflict (device_uuid) do update set credential_id = excluded.credential_id, issued_at = excluded.issued_at
    returning c.* into issued;
    select * into paired from public.devices as d where d.uuid = used.device_uuid;
    -- Realtime hears it and closes channels still held with an earlier credential of this device.
    perform realtime.send(jsonb_build_object('device_uuid', paired.uuid), 'paired', 'device:' || paired.uuid);
    return jsonb_build_object(
        'device_uuid', paired.uuid, 'workspace_id', paired.workspace_id, 'credential_id', issued.credential_id,
        'name', paired.name, 'source', paired.source, 'proxy_port', paired.proxy_port
    );
end;
$$;

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
