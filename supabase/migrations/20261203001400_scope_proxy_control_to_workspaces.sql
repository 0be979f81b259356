-- Purpose: the proxy's control topic is per workspace. `proxy-control` was one topic for every workspace, so a
-- member with breakpoints:edit anywhere heard every workspace's resends and could send forged ones.
-- Affects: private.can_receive_topic(), private.can_send_topic() (the policies on realtime.messages call them).
-- Caveats: `proxy-control:<workspace_id>` is received by that workspace's proxy devices and by users with
-- breakpoints:edit there (admins: everywhere), and sent on by the same users. The old `proxy-control` is refused
-- to every API role (the service role bypasses row-level security, as on Supabase). Messages on the topic are
-- wake-ups only: the proxy acts on the rows they point at (resend_requests, breakpoint_events).

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
        return private.has_capability('devices', 'view');
    elsif topic = 'service_groups:all' then
        return private.has_capability('services', 'view');
    elsif target is null or topic <> kind || ':' || target::text then
        return false;
    elsif kind = 'ws' then
        return private.is_admin()
            or (target = any(private.my_workspaces()) and private.has_capability('entries', 'view'));
    elsif kind = 'device' then
        return private.is_admin()
            or exists (select from public.devices as d where d.uuid = target and d.owner_user_id = auth.uid());
    elsif kind = 'proxy-control' then
        return target = any(private.workspaces_with('breakpoints', 'edit'));
    end if;
    return false;
end;
$$;

create or replace function private.can_send_topic(topic text, event text)
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
    -- A definer for the same reason as can_receive_topic.
    if topic is null then
        return false;
    elsif caller = 'service_role' then
        return true;
    elsif topic = 'proxy-control' then
        return false;  -- retired: nobody listens there any more, so nobody may
    elsif caller = 'device' then
        return me is not null and topic = 'device:' || me::text and event = 'cdp-result';
    elsif caller <> 'authenticated' or auth.uid() is null then
        return false;
    elsif target is null or topic <> kind || ':' || target::text then
        return false;
    elsif kind = 'proxy-control' then
        return target = any(private.workspaces_with('breakpoints', 'edit'));
    elsif kind = 'device' then
        return private.is_admin()
            or exists (select from public.devices as d where d.uuid = target and d.owner_user_id = auth.uid());
    end if;
    return false;
end;
$$;
