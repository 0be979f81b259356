-- Purpose: what the dashboard shows live without reloading: breakpoint rules on breakpoints:<workspace_id>
-- (received with breakpoints:view there; admins everywhere), a service group's agent links on
-- service_groups:all, and each paused flow's deadline (expires_at, written by the proxy that holds it), so a
-- countdown is the proxy's own and not a guess.
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

create or replace function private.can_receive_topic(topic text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    caller text := private.caller_role();
    me uuid := private.current_device();
    kind text := split_part(topic, ':', 1);
    target uuid := private.try_uuid(nullif(substr(topic, length(split_part(topic, ':', 1)) + 2), ''));
begin
    -- A definer: it reads memberships and devices whatever the caller may list.
    if topic is null then
        return false;
    elsif caller = 'service_role' then
        return true;
    elsif topic = 'proxy-control' then
        return false;  -- retired: nobody listens there any more, so nobody may
    elsif caller = 'device' then
        return me is not null and (
            topic = 'settings:global'
            or topic = 'device:' || me::text
            or (
                kind = 'proxy-control' and target is not null and topic = kind || ':' || target::text
                and exists (
                    select from public.devices as d where d.uuid = me and d.source = 'proxy' and d.workspace_id = target
                )
            )
        );
    elsif caller <> 'authenticated' or auth.uid() is null then
        return false;
    elsif topic = 'settings:global' then
        return true;
    elsif topic in ('devices:all', 'settings_device:all') then
        return private.is_admin();  -- every workspace's devices: only whoever may read them all
    elsif topic = 'service_groups:all' then
        return private.has_capability('services', 'view');
    elsif target is null or topic <> kind || ':' || target::text then
        return false;
    elsif kind = 'ws' then
        return private.is_admin()
            or (target = any(private.my_workspaces()) and private.has_capability('entries', 'view'));
    elsif kind in ('devices', 'settings_device') then
        return private.is_admin()
            or (target = any(private.my_workspaces()) and private.has_capability('devices', 'view'));
    elsif kind = 'breakpoints' then
        return private.is_admin()
            or (target = any(private.my_workspaces()) and private.has_capability('breakpoints', 'view'));
    elsif kind = 'device' then
        return private.is_admin()
            or exists (select from public.devices as d where d.uuid = target and d.owner_user_id = auth.uid());
    elsif kind = 'proxy-control' then
        return target = any(private.workspaces_with('breakpoints', 'edit'));
    end if;
    return false;
end;
$$;
