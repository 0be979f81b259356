-- Purpose: a resend is a row the database keeps, not a message a proxy believes. resend_entry records it here;
-- the capturing device claims it, once, and gets the stored request to replay from the database itself.
-- Affects: public.resend_requests, private.claim_resend_requests() and its public wrapper.
-- Caveats: only definers write the table (resend_entry adds, the claim marks). A device claims only its own
-- requests, each once (a second claim, or a second proxy, finds nothing), and only for 5 minutes: a resend
-- asked while no proxy served the device lapses instead of firing whenever the proxy comes back. No foreign key
-- to entries: retention drops whole partitions.

create table public.resend_requests (
    id uuid primary key default gen_random_uuid(),
    workspace_id uuid not null references public.workspaces (id) on delete cascade,
    device_uuid uuid not null references public.devices (uuid) on delete cascade,
    entry_id uuid not null,
    captured_at timestamptz not null,
    requested_by uuid references public.profiles (id) on delete set null,
    requested_at timestamptz not null default now(),
    claimed_at timestamptz
);
comment on table public.resend_requests is
'Stored requests a person asked to replay (resend_entry); the capturing device claims each once.';
create index resend_requests_device_pending_idx on public.resend_requests (device_uuid, requested_at)
where claimed_at is null;
create index resend_requests_workspace_id_idx on public.resend_requests (workspace_id, requested_at desc);

revoke all on public.resend_requests from anon, authenticated, device;
grant select on public.resend_requests to authenticated, device;

alter table public.resend_requests enable row level security;

create policy "resend_requests: select with breakpoints:view" on public.resend_requests
for select to authenticated
using (workspace_id = any((select private.workspaces_with('breakpoints', 'view'))::uuid[]));

create policy "resend_requests: select its own" on public.resend_requests
for select to device
using (device_uuid = (select private.current_device()));

create or replace function private.claim_resend_requests()
returns table (
    request_id uuid, entry_id uuid, method text, scheme text, host text, port integer, path text, query text,
    request_headers jsonb, request_body bytea
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    dev constant uuid := private.current_device();
begin
    -- A definer: devices hold no update grant here and cannot read entries; the request row is the proof.
    if dev is null then
        raise exception using errcode = '42501', message = 'only a paired device claims resend requests';
    end if;
    return query
    with claimed as (
        update public.resend_requests as r set claimed_at = now()
        where r.id in (
            select p.id from public.resend_requests as p
            where p.device_uuid = dev and p.claimed_at is null and p.requested_at > now() - interval '5 minutes'
            order by p.requested_at
            limit 100
            for update skip locked
        )
        returning r.id, r.entry_id, r.captured_at, r.requested_at
    )
    select c.id, e.id, e.method, e.scheme, e.host, e.port, e.path, e.query, e.request_headers, e.request_body
    from claimed as c
    inner join public.entries as e on e.id = c.entry_id and e.captured_at = c.captured_at and e.device_uuid = dev
    order by c.requested_at;
end;
$$;
comment on function private.claim_resend_requests() is
'The calling device''s pending resend requests, marked claimed, with the stored requests to replay.';
revoke execute on function private.claim_resend_requests() from public, anon, authenticated;
grant execute on function private.claim_resend_requests() to device;

create function public.claim_resend_requests()
returns table (
    request_id uuid, entry_id uuid, method text, scheme text, host text, port integer, path text, query text,
    request_headers jsonb, request_body bytea
)
language sql
volatile
as $$ select * from private.claim_resend_requests() $$;
comment on function public.claim_resend_requests() is
'For a capture device: claim its pending resends (each once, for 5 minutes) and get the requests to replay.';
revoke execute on function public.claim_resend_requests() from public, anon, authenticated;
grant execute on function public.claim_resend_requests() to device;
