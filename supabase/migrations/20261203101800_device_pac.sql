-- Purpose: proxy auto-config (PAC) for proxy devices. /functions/v1/pac/<uuid> reads the device's proxy port
-- with the publishable key alone, since operating systems fetch PAC files without a token (the device's uuid is
-- the secret); and `open-sheet` for the `pac` sheet now carries the file's path and the port, the path for the
-- app to resolve against the API URL it was paired with (a device without a port: neither).
-- Defines:
--   function private.device_pac_port(uuid)
--   function public.device_pac_port(uuid)
-- Caveats: device_pac_port answers one integer, the port, and only for a proxy device that has one; any other
-- uuid (unknown, a phone, a bmc browser) is null, so the answer tells nothing else about devices. The database
-- does not know the API's public URL, so the sheet carries a path (`pac_path`), not a URL.

create or replace function private.device_pac_port(target uuid)
returns integer
language sql
stable
security definer
set search_path = ''
as $$
    -- A definer: anon reads no devices; this hands out the one column a PAC file needs, for proxy devices only.
    select d.proxy_port from public.devices as d
    where d.uuid = target and d.source = 'proxy' and d.proxy_port is not null
$$;
comment on function private.device_pac_port(uuid) is
'The proxy port of a proxy device by uuid, for its PAC file; null for any other uuid.';
revoke execute on function private.device_pac_port(uuid) from public;
grant execute on function private.device_pac_port(uuid) to anon, authenticated, device, service_role;

create function public.device_pac_port(device_uuid uuid) returns integer
language sql stable set search_path = '' as $$ select private.device_pac_port(device_uuid) $$;
comment on function public.device_pac_port(uuid) is
'The proxy port of a proxy device (its PAC file: /functions/v1/pac/<uuid>); null for any other uuid.';
revoke execute on function public.device_pac_port(uuid) from public;
grant execute on function public.device_pac_port(uuid) to anon, authenticated, device, service_role;

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
    perform realtime.send(
        jsonb_build_object('device_uuid', target, 'sheet', sheet)
        || case when sheet = 'pac' and private.device_pac_port(target) is not null then jsonb_build_object(
            'pac_path', '/functions/v1/pac/' || target::text, 'proxy_port', private.device_pac_port(target)
        ) else '{}'::jsonb end,
        'open-sheet', 'device:' || target
    );
end;
$$;
