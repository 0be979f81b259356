-- Purpose: the checks every write RPC starts with, so each says the same thing the same way.
-- Affects: private.require_capability(), require_admin(), can_see_device(), device_for_command().
-- Caveats: a device the caller cannot see is reported as not found (PT404, so HTTP 404), never as forbidden,
-- so RPCs do not reveal which uuids exist. Refusals are 42501 (HTTP 403 for users).

create or replace function private.require_capability(section text, action text, verb text)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    if not private.has_capability(section, action) then
        raise exception using
            errcode = '42501',
            message = format('you need the %s:%s capability to %s', section, action, verb),
            hint = 'Ask an admin to give your role this capability.';
    end if;
end;
$$;

create or replace function private.require_admin(verb text)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    if not private.is_admin() then
        raise exception using
            errcode = '42501', message = format('only an admin may %s', verb), hint = 'Ask an admin to do it.';
    end if;
end;
$$;

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

revoke execute on function private.require_capability(text, text, text), private.require_admin(text),
private.can_see_device(uuid, uuid), private.device_for_command(uuid, text) from public, anon;
grant execute on function private.require_capability(text, text, text), private.require_admin(text),
private.can_see_device(uuid, uuid), private.device_for_command(uuid, text) to authenticated, service_role;
