-- Purpose: pair a capture device with a one-time activation code, and refuse a voided device credential with
-- 401 on every REST request (PostgREST's db-pre-request hook, set on the authenticator role).
-- Defines:
--   table private.device_activations
--   function private.check_request()
--   function private.issue_device_activation(uuid,interval)
--   function private.pair_device(text)
--   function public.issue_device_activation(uuid,interval)
--   function public.pair_device(text)
-- Caveats: codes are 10 characters from a 32-letter alphabet (50 bits), stored as SHA-256 digests, valid for
-- minutes and used once; pairing gives the device a new credential, so every earlier token of that device stops
-- at once. pair_device is callable with the anon key: /functions/v1/pair rate-limits it per address, and guessing
-- 50 bits within a code's lifetime is out of reach even without that limit.

-- anon reaches two functions here: the pre-request hook (every request runs it) and pair_device (a device holds
-- nothing but its code). Schema usage grants no table: each private function and table keeps its own grants.
grant usage on schema private to anon;

create table private.device_activations (
    device_uuid uuid primary key references public.devices (uuid) on delete cascade,
    code_hash bytea not null unique,
    expires_at timestamptz not null,
    created_by uuid,
    created_at timestamptz not null default now()
);
comment on table private.device_activations is 'The one open activation code per device, as a SHA-256 digest.';
alter table private.device_activations enable row level security;
revoke all on private.device_activations from public, anon, authenticated, service_role;

create or replace function private.issue_device_activation(target uuid, valid_for interval)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    alphabet constant text := 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
    raw constant bytea := extensions.gen_random_bytes(10);
    code text := '';
    expires timestamptz;
begin
    -- A definer: activation codes live where no API role can read them.
    perform private.require_admin('pair a device');
    if valid_for is null or valid_for < interval '1 second' or valid_for > interval '7 days' then
        raise exception using
            errcode = '22023', message = 'an activation code is valid for between 1 second and 7 days';
    end if;
    if not exists (select from public.devices as d where d.uuid = target) then
        raise exception using errcode = 'PT404', message = format('no device %s', target);
    end if;
    for i in 0..9 loop
        code := code || substr(alphabet, get_byte(raw, i) % 32 + 1, 1);
    end loop;
    expires := now() + valid_for;
    insert into private.device_activations as a (device_uuid, code_hash, expires_at, created_by)
    values (target, extensions.digest(code, 'sha256'), expires, auth.uid())
    on conflict (device_uuid) do update
        set code_hash = excluded.code_hash, expires_at = excluded.expires_at,
        created_by = excluded.created_by, created_at = now();
    return jsonb_build_object(
        'device_uuid', target, 'code', substr(code, 1, 5) || '-' || substr(code, 6), 'expires_at', expires
    );
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
revoke execute on function private.issue_device_activation(uuid, interval), private.pair_device(text)
from public, anon;
grant execute on function private.issue_device_activation(uuid, interval) to authenticated, service_role;
grant execute on function private.pair_device(text) to anon, authenticated, service_role;

create function public.issue_device_activation(device_uuid uuid, valid_for interval default '15 minutes')
returns jsonb
language sql
volatile
as $$ select private.issue_device_activation(device_uuid, valid_for) $$;
create function public.pair_device(code text)
returns jsonb
language sql
volatile
as $$ select private.pair_device(code) $$;
comment on function public.issue_device_activation(uuid, interval) is
'A one-time activation code for a device (admin), replacing any earlier one. Exchange it with pair_device.';
comment on function public.pair_device(text) is
'Exchange an activation code for the device''s new credential (once). /functions/v1/pair turns it into a JWT.';
revoke execute on function public.issue_device_activation(uuid, interval), public.pair_device(text)
from public, anon;
grant execute on function public.issue_device_activation(uuid, interval) to authenticated, service_role;
grant execute on function public.pair_device(text) to anon, authenticated, service_role;

create or replace function private.check_request()
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    -- Runs before every REST request. A device whose credential was voided is refused outright (401), so an
    -- unpaired device learns it on its next request rather than seeing empty results.
    -- Two IFs, not one AND: a function's EXECUTE right is checked when its expression is prepared, and anon may
    -- not execute current_device(). Only a device's request reaches the inner test.
    -- The claims setting itself, not auth.jwt(): the device role has no USAGE on schema auth.
    if (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role') is distinct from 'device' then
        return;
    end if;
    if private.current_device() is null then
        raise sqlstate 'PGRST' using
            message = json_build_object(
                'code', 'PGRST301',
                'message', 'This device credential is no longer valid: the device was unpaired or paired again',
                'details', null,
                'hint', 'Pair the device again for a new token'
            )::text,
            detail = json_build_object(
                'status', 401,
                'headers', json_build_object(
                    'WWW-Authenticate', 'Bearer error="invalid_token", error_description="device credential revoked"'
                )
            )::text;
    end if;
end;
$$;
comment on function private.check_request() is
'PostgREST''s db-pre-request hook: refuses a voided device credential with 401 before the request runs.';
revoke execute on function private.check_request() from public;
grant execute on function private.check_request() to anon, authenticated, service_role, device;

alter role authenticator set pgrst.db_pre_request to 'private.check_request'; -- noqa: PRS
notify pgrst, 'reload config';
