-- Purpose: resolving a paused flow and asking for a resend leave a row the proxy reads, and only wake the proxy
-- on its workspace's topic, proxy-control:<workspace_id>.
-- Affects: private.continue_breakpoint(), private.resend_entry() (signatures and grants as shipped).
-- Caveats: the outcome and edits live in the breakpoint_events row and the resend in resend_requests; the
-- broadcasts carry ids only, and the proxy reads the row they name before it does anything, so a forged or
-- replayed message changes nothing. A lost wake-up costs a poll interval, not a flow.

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

comment on function public.continue_breakpoint(uuid, text, jsonb) is
'Resolve a paused flow: continue, edit (with edits) or abort. The row holds the outcome and edits; the proxy of '
'the workspace is woken on proxy-control:<workspace_id> (breakpoints:edit).';
comment on function public.resend_entry(uuid) is
'Ask the capturing proxy to replay a stored request: records it in resend_requests and wakes the proxy '
'(breakpoints:edit).';
