-- Purpose: what the dashboard shows live without reloading: breakpoint rules on breakpoints:<workspace_id>
-- (received with breakpoints:view there, admins everywhere: can_receive_topic of 20261203101500), a service
-- group's agent links on service_groups:all, and each paused flow's deadline (expires_at, written by the proxy
-- that holds it), so a countdown is the proxy's own and not a guess.
-- Defines:
--   trigger breakpoints_broadcast on public.breakpoints
--   trigger service_group_agents_broadcast on public.service_group_agents
-- Caveats: a paused flow recorded by an older proxy has no expires_at; readers say "waiting" then. The links
-- carry ids and positions only, which services:view may read anyway.

alter table public.breakpoint_events
add column expires_at timestamptz,
add constraint breakpoint_events_expires_after_pause check (expires_at is null or expires_at > paused_at);
comment on column public.breakpoint_events.expires_at is
'When the proxy holding the flow lets it go on by itself (its breakpoint timeout); null when it did not say.';
grant insert (expires_at) on public.breakpoint_events to device;

create trigger breakpoints_broadcast
after insert or update or delete on public.breakpoints
for each row execute function private.broadcast_workspace_change('breakpoints');

create trigger service_group_agents_broadcast
after insert or update or delete on public.service_group_agents
for each row execute function private.broadcast_change('service_groups:all');
