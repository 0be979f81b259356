-- Purpose: breakpoint events go live on ws:<workspace_id>; people resolve them and ask for resends.
-- Affects: private.publish_workspace_change() trigger on breakpoint_events; continue_breakpoint, resend_entry.
-- Caveats: both RPCs need breakpoints:edit in the workspace concerned (the right to send on proxy-control) and
-- publish there, for the proxy holding the flow. A flow already resolved is a conflict (PT409, HTTP 409).

create or replace function private.publish_workspace_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer: ws:<workspace_id> is written by the database only.
    perform realtime.send(
        jsonb_build_object(
            'old_record', case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end,
            'record', case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) end,
            'operation', tg_op, 'table', tg_table_name, 'schema', tg_table_schema
        ),
        tg_op, 'ws:' || coalesce(new.workspace_id, old.workspace_id)::text, true
    );
    return null;
end;
$$;
revoke execute on function private.publish_workspace_change() from public, anon;

create trigger breakpoint_events_publish
after insert or update on public.breakpoint_events
for each row execute function private.publish_workspace_change();

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
        jsonb_build_object('event_id', found.id, 'device_uuid', found.device_uuid, 'flow_id', found.flow_id,
                           'action', verb, 'edits', found.edits),
        'breakpoint-continue', 'proxy-control'
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
    request jsonb;
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
    request := jsonb_build_object(
        'entry_id', found.id, 'captured_at', found.captured_at, 'device_uuid', found.device_uuid,
        'workspace_id', found.workspace_id, 'requested_by', auth.uid()
    );
    perform realtime.send(request, 'resend-request', 'proxy-control');
    return request;
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
'Resolve a paused flow: continue, edit (with edits) or abort; tells the proxy on proxy-control (breakpoints:edit).';
comment on function public.resend_entry(uuid) is 'Ask the capturing proxy to replay a stored request (breakpoints:edit).';
revoke execute on function public.continue_breakpoint(uuid, text, jsonb), public.resend_entry(uuid) from public, anon;
grant execute on function public.continue_breakpoint(uuid, text, jsonb), public.resend_entry(uuid)
to authenticated, service_role;
