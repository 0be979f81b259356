-- Purpose: the `private` schema for helpers and internal tables, the `device` database role (the JWT role of a
-- paired capture device) with the schema usage it needs, and private.try_uuid().
-- Defines:
--   schema private
--   role device
--   role device
--   function private.try_uuid(text)
-- Caveats: roles outlive `db reset`, so the role is created only when missing. The device role's statement
-- timeout is 8 s, as Supabase sets for authenticated (the API server replays a role's settings after SET ROLE, as
-- PostgREST does). PostgREST never exposes `private`; the API roles get usage so policies can call its helpers,
-- and nothing else.

create schema if not exists private;
comment on schema private is 'Helpers, partitions and internal tables; never exposed by the API.';
revoke all on schema private from public;

do $device$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'device') then
        create role device nologin inherit;
    end if;
end
$device$;
comment on role device is 'JWT role of a paired capture device (proxy, bmc, phone); valid while its cred matches.';
alter role device set statement_timeout = '8s';
grant device to authenticator; -- noqa: PRS
grant device to postgres; -- noqa: PRS

grant usage on schema private to authenticated, device, service_role;
grant usage on schema public to device;
grant usage on schema extensions to device;
grant usage on schema auth to device;
grant usage on schema realtime to device;
grant select, insert, update on realtime.messages to device;

-- A value that is not a uuid is simply no match, never an error inside a policy.
create or replace function private.try_uuid(value text)
returns uuid
language plpgsql
immutable
set search_path = ''
as $$
begin
    return value::uuid;
exception when invalid_text_representation then
    return null;
end;
$$;
comment on function private.try_uuid(text) is 'The text as a uuid, or null when it is not one.';
grant execute on function private.try_uuid(text) to authenticated, device, service_role;
