-- Purpose: breakpoint rules and the flows they pause.
-- Affects: public.breakpoints, public.breakpoint_events, private.workspaces_with(section, action).
-- Caveats: users with breakpoints:view read both in their workspaces and with breakpoints:edit write rules; a
-- device reads the enabled rules of its workspace, records its own paused flows and may mark one timed_out.
-- Flows are resolved by continue_breakpoint (next migration), never by a direct update.

create or replace function private.workspaces_with(section text, action text)
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- A definer: admins act in every workspace, which they may not otherwise list.
    if private.is_admin() then
        return coalesce((select array_agg(w.id) from public.workspaces as w), '{}');
    elsif private.has_capability(section, action) then
        return private.my_workspaces();
    end if;
    return '{}';
end;
$$;
comment on function private.workspaces_with(text, text) is
'Workspaces where the caller holds section:action: all for admins, their own with the capability, else none.';
revoke execute on function private.workspaces_with(text, text) from public, anon;
grant execute on function private.workspaces_with(text, text) to authenticated, device, service_role;

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
