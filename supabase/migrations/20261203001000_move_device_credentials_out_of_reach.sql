-- Purpose: no API reader sees a device's credential. It moves from public.devices (readable by every role with
-- devices:view, over REST and postgres_changes) to private.device_credentials, which only security-definer
-- functions read. public.devices keeps what a reader needs: `paired` and `paired_at` (when the current credential
-- was issued, so a worker that holds tokens notices a new pairing).
-- Affects: private.device_credentials, devices.paired, devices.paired_at, devices.credential_id (dropped),
-- private.sync_device_paired() and its trigger, private.current_device().
-- Caveats: a column privilege would have hidden credential_id too, but PostgREST expands `select=*` to every
-- column and would then refuse it; a table of its own keeps `select=*` working. The trigger keeps `paired` and
-- `paired_at` in step with the credential, so every writer (pairing, unpairing, fixtures) only writes the credential.

create table private.device_credentials (
    device_uuid uuid primary key references public.devices (uuid) on delete cascade,
    credential_id uuid not null default gen_random_uuid(),
    issued_at timestamptz not null default now()
);
comment on table private.device_credentials is
'A device''s current credential: its JWT counts while the JWT''s cred equals credential_id. No API role reads it.';
revoke all on private.device_credentials from public, anon, authenticated, service_role, device;
alter table private.device_credentials enable row level security;

alter table public.devices
add column paired boolean not null default false,
add column paired_at timestamptz,
add constraint devices_paired_when_issued check (paired = (paired_at is not null));
comment on column public.devices.paired is 'Whether the device holds a credential (unpairing clears it).';
comment on column public.devices.paired_at is 'When the current credential was issued; null while unpaired.';

insert into private.device_credentials (device_uuid, credential_id, issued_at)
select
    d.uuid,
    d.credential_id,
    d.created_at
from public.devices as d where d.credential_id is not null;
update public.devices as d set paired = true, paired_at = d.created_at where d.credential_id is not null;
alter table public.devices drop column credential_id;
comment on table public.devices is
'A capture client. Its JWT counts while the JWT''s cred is its current credential (see paired, paired_at).';

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
