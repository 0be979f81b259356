-- Purpose: breakpoint rules and the flows they pause; resolving a paused flow; and resends, which are rows the
-- database keeps and the capturing device claims.
-- Defines:
--   table public.breakpoint_events
--   table public.breakpoints
--   table public.resend_requests
--   function private.claim_resend_requests()
--   function private.continue_breakpoint(uuid,text,jsonb)
--   function private.resend_entry(uuid)
--   function public.claim_resend_requests()
--   function public.continue_breakpoint(uuid,text,jsonb)
--   function public.resend_entry(uuid)
--   policy "breakpoint_events: insert its own paused flows" on public.breakpoint_events
--   policy "breakpoint_events: select its own" on public.breakpoint_events
--   policy "breakpoint_events: select with breakpoints:view" on public.breakpoint_events
--   policy "breakpoint_events: update its own to timed out" on public.breakpoint_events
--   policy "breakpoints: delete with breakpoints:edit" on public.breakpoints
--   policy "breakpoints: insert with breakpoints:edit" on public.breakpoints
--   policy "breakpoints: select rules for the device" on public.breakpoints
--   policy "breakpoints: select with breakpoints:view" on public.breakpoints
--   policy "breakpoints: update with breakpoints:edit" on public.breakpoints
--   policy "resend_requests: select its own" on public.resend_requests
--   policy "resend_requests: select with breakpoints:view" on public.resend_requests
-- Caveats: users with breakpoints:view read rules and flows in their workspaces and with breakpoints:edit write
-- rules; a device reads the enabled rules of its workspace, records its own paused flows and may mark one timed
-- out. continue_breakpoint and resend_entry need breakpoints:edit in the workspace concerned; the outcome and
-- edits live in the breakpoint_events row and the resend in resend_requests, and the proxy is only woken on
-- proxy-control:<workspace_id> (the next file's topics), so a forged or replayed message changes nothing. A flow
-- already resolved is a conflict (PT409, HTTP 409). A device claims only its own resends, each once, within 5
-- minutes. resend_requests has no foreign key to entries: retention drops whole partitions.

create table public.breakpoints (
    id uuid primary key default gen_random_uuid(),
    workspace_id uuid not null references public.workspaces (id) on delete cascade,
    device_uuid uuid references public.devices (uuid) on delete cascade,
    phase text not null default 'request' check (phase in ('request', 'response')),
    method text check (method ~ '^[A-Z]{1,32}$'),
    host_pattern text not null default '*' check (length(host_pattern) between 1 and 253),
    path_pattern text not null default '*' check (length(path_pattern) between 1 and 2048),
    enabled boolean not null default true,
    created_by uuid default auth.uid() references public.profiles (id) on delete set null,
    created_at timestamptz not null default now()
);
comment on table public.breakpoints is
'Pause matching flows: phase, optional method and device, glob patterns on host and path (* and ?).';
create index breakpoints_workspace_id_idx on public.breakpoints (workspace_id) where enabled;
create index breakpoints_device_uuid_idx on public.breakpoints (device_uuid);

create table public.breakpoint_events (
    id uuid primary key default gen_random_uuid(),
    breakpoint_id uuid references public.breakpoints (id) on delete set null,
    workspace_id uuid not null references public.workspaces (id) on delete cascade,
    device_uuid uuid not null references public.devices (uuid) on delete cascade,
    flow_id text not null check (length(flow_id) between 1 and 200),
    phase text not null check (phase in ('request', 'response')),
    snapshot jsonb not null default '{}' check (jsonb_typeof(snapshot) = 'object'),
    paused_at timestamptz not null default now(),
    active boolean not null default true,
    outcome text check (outcome in ('continued', 'edited', 'aborted', 'timed_out')),
    edits jsonb,
    resolved_at timestamptz,
    resolved_by uuid references public.profiles (id) on delete set null,
    constraint breakpoint_events_outcome_when_done check (active = (outcome is null))
);
comment on table public.breakpoint_events is 'A flow paused by a breakpoint, until it is continued, edited, aborted or times out.';
create index breakpoint_events_workspace_active_idx on public.breakpoint_events (workspace_id, paused_at desc) where active;
create index breakpoint_events_device_uuid_idx on public.breakpoint_events (device_uuid);
create index breakpoint_events_breakpoint_id_idx on public.breakpoint_events (breakpoint_id);

revoke all on public.breakpoints, public.breakpoint_events from anon, authenticated;
grant select, delete on public.breakpoints to authenticated;
grant insert (workspace_id, device_uuid, phase, method, host_pattern, path_pattern, enabled) on public.breakpoints
to authenticated;
grant update (device_uuid, phase, method, host_pattern, path_pattern, enabled) on public.breakpoints to authenticated;
grant select on public.breakpoints to device;
grant select on public.breakpoint_events to authenticated, device;
grant insert (id, breakpoint_id, workspace_id, device_uuid, flow_id, phase, snapshot, paused_at) on public.breakpoint_events
to device;
grant update (active, outcome, resolved_at) on public.breakpoint_events to device;

alter table public.breakpoints enable row level security;
alter table public.breakpoint_events enable row level security;

create policy "breakpoints: select with breakpoints:view" on public.breakpoints
for select to authenticated
using (workspace_id = any((select private.workspaces_with('breakpoints', 'view'))::uuid[]));

create policy "breakpoints: insert with breakpoints:edit" on public.breakpoints
for insert to authenticated
with check (workspace_id = any((select private.workspaces_with('breakpoints', 'edit'))::uuid[]));

create policy "breakpoints: update with breakpoints:edit" on public.breakpoints
for update to authenticated
using (workspace_id = any((select private.workspaces_with('breakpoints', 'edit'))::uuid[]))
with check (workspace_id = any((select private.workspaces_with('breakpoints', 'edit'))::uuid[]));

create policy "breakpoints: delete with breakpoints:edit" on public.breakpoints
for delete to authenticated
using (workspace_id = any((select private.workspaces_with('breakpoints', 'edit'))::uuid[]));

create policy "breakpoints: select rules for the device" on public.breakpoints
for select to device
using (
    workspace_id = (select private.current_device_workspace())
    and (device_uuid is null or device_uuid = (select private.current_device()))
);

create policy "breakpoint_events: select with breakpoints:view" on public.breakpoint_events
for select to authenticated
using (workspace_id = any((select private.workspaces_with('breakpoints', 'view'))::uuid[]));

create policy "breakpoint_events: select its own" on public.breakpoint_events
for select to device
using (device_uuid = (select private.current_device()));

create policy "breakpoint_events: insert its own paused flows" on public.breakpoint_events
for insert to device
with check (
    device_uuid = (select private.current_device())
    and workspace_id = (select private.current_device_workspace())
    and active
);

create policy "breakpoint_events: update its own to timed out" on public.breakpoint_events
for update to device
using (device_uuid = (select private.current_device()) and active)
with check (device_uuid = (select private.current_device()) and not active and outcome = 'timed_out');

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

create or replace function private.continue_breakpoint(event uuid, verb text, changes jsonb)
returns public.breakpoint_events
language plpgsql
security definer
set search_path = ''
as $$
declare
    found public.breakpoint_events;
    verdict text := case verb when 'continue' then 'continued' when 'edit' then 'edited' when 'abort' then 'aborted' end;
begin
    -- A definer: users hold no update grant on breakpoint_events; the checks below are the gate.
    if verdict is null then
        raise exception using errcode = '22023', message = 'action is one of continue, edit, abort';
    end if;
    if verb = 'edit' and jsonb_typeof(changes) is distinct from 'object' then
        raise exception using errcode = '22023', message = 'an edit needs edits: a JSON object of what to change';
    end if;
    select * into found from public.breakpoint_events as e where e.id = event for update;
    if found.id is null or not found.workspace_id = any(private.workspaces_with('breakpoints', 'view')) then
        raise exception using errcode = 'PT404', message = format('no paused flow %s', event);
    end if;
    perform private.require_capability('breakpoints', 'edit', 'resolve a paused flow');
    if not found.workspace_id = any(private.workspaces_with('breakpoints', 'edit')) then
        raise exception using errcode = '42501', message = 'you may not resolve flows in this workspace';
    end if;
    if not found.active then
        raise exception using errcode = 'PT409', message = format('the flow was already %s', found.outcome);
    end if;
    update public.breakpoint_events as e
    set active = false, outcome = verdict, edits = case when verb = 'edit' then changes end,
        resolved_at = now(), resolved_by = auth.uid()
    where e.id = event
    returning * into found;
    perform realtime.send(
        jsonb_build_object('event_id', found.id, 'device_uuid', found.device_uuid, 'flow_id', found.flow_id),
        'breakpoint-continue', 'proxy-control:' || found.workspace_id::text
    );
    return found;
end;
$$;

create or replace function private.resend_entry(entry uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    found record;
    request public.resend_requests;
begin
    -- A definer: it reads the entry whatever the caller's policies show, then checks them itself.
    select e.id, e.workspace_id, e.device_uuid, e.captured_at into found from public.entries as e where e.id = entry;
    if found.id is null or not found.workspace_id = any(private.workspaces_with('entries', 'view')) then
        raise exception using errcode = 'PT404', message = format('no entry %s', entry);
    end if;
    perform private.require_capability('breakpoints', 'edit', 'resend a request');
    if not found.workspace_id = any(private.workspaces_with('breakpoints', 'edit')) then
        raise exception using errcode = '42501', message = 'you may not resend requests in this workspace';
    end if;
    if not exists (select from public.devices as d where d.uuid = found.device_uuid) then
        raise exception using
            errcode = 'PT409', message = 'the device that captured this request is gone, so nothing can resend it';
    end if;
    insert into public.resend_requests as r (workspace_id, device_uuid, entry_id, captured_at, requested_by)
    values (found.workspace_id, found.device_uuid, found.id, found.captured_at, auth.uid())
    returning r.* into request;
    perform realtime.send(
        jsonb_build_object('request_id', request.id, 'device_uuid', request.device_uuid),
        'resend-request', 'proxy-control:' || request.workspace_id::text
    );
    return jsonb_build_object(
        'request_id', request.id, 'entry_id', request.entry_id, 'captured_at', request.captured_at,
        'device_uuid', request.device_uuid, 'workspace_id', request.workspace_id,
        'requested_by', request.requested_by
    );
end;
$$;
revoke execute on function private.continue_breakpoint(uuid, text, jsonb), private.resend_entry(uuid) from public, anon;
grant execute on function private.continue_breakpoint(uuid, text, jsonb), private.resend_entry(uuid)
to authenticated, service_role;

create function public.continue_breakpoint(event_id uuid, action text, edits jsonb default null)
returns public.breakpoint_events
language sql as $$ select * from private.continue_breakpoint(event_id, action, edits) $$;
create function public.resend_entry(entry_id uuid) returns jsonb
language sql as $$ select private.resend_entry(entry_id) $$;
comment on function public.continue_breakpoint(uuid, text, jsonb) is
'Resolve a paused flow: continue, edit (with edits) or abort. The row holds the outcome and edits; the proxy of '
'the workspace is woken on proxy-control:<workspace_id> (breakpoints:edit).';
comment on function public.resend_entry(uuid) is
'Ask the capturing proxy to replay a stored request: records it in resend_requests and wakes the proxy '
'(breakpoints:edit).';
revoke execute on function public.continue_breakpoint(uuid, text, jsonb), public.resend_entry(uuid) from public, anon;
grant execute on function public.continue_breakpoint(uuid, text, jsonb), public.resend_entry(uuid)
to authenticated, service_role;

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
