-- Purpose: who may receive and who may send on each Realtime topic (ARCHITECTURE.md §6).
-- Affects: private.can_receive_topic(), private.can_send_topic(), policies on realtime.messages.
-- Caveats: Realtime decides a private join by reading a probe row under the caller's claims (SELECT policy) and
-- a send by inserting one (INSERT policy). Receiving is decided once per statement for realtime.topic(); the
-- row's topic must equal it, so a query without the setting sees nothing. A device may send only `cdp-result`
-- on its own device:<uuid>; the probe of a send must carry the event for that to pass.

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
    elsif caller = 'device' then
        return me is not null and (
            topic = 'settings:global'
            or topic = 'device:' || me::text
            or (topic = 'proxy-control' and exists (select from public.devices as d where d.uuid = me and d.source = 'proxy'))
        );
    elsif caller <> 'authenticated' or auth.uid() is null then
        return false;
    elsif topic = 'settings:global' then
        return true;
    elsif topic in ('devices:all', 'settings_device:all') then
        return private.has_capability('devices', 'view');
    elsif topic = 'service_groups:all' then
        return private.has_capability('services', 'view');
    elsif topic = 'proxy-control' then
        return private.has_capability('breakpoints', 'edit');
    elsif target is null or topic <> kind || ':' || target::text then
        return false;
    elsif kind = 'ws' then
        return private.is_admin()
            or (target = any(private.my_workspaces()) and private.has_capability('entries', 'view'));
    elsif kind = 'device' then
        return private.is_admin()
            or exists (select from public.devices as d where d.uuid = target and d.owner_user_id = auth.uid());
    end if;
    return false;
end;
$$;
comment on function private.can_receive_topic(text) is 'Whether the caller may join and receive on a Realtime topic.';

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
    target uuid := private.try_uuid(substr(topic, 8));
begin
    -- A definer for the same reason as can_receive_topic.
    if topic is null then
        return false;
    elsif caller = 'service_role' then
        return true;
    elsif caller = 'device' then
        return me is not null and topic = 'device:' || me::text and event = 'cdp-result';
    elsif caller <> 'authenticated' or auth.uid() is null then
        return false;
    elsif topic = 'proxy-control' then
        return private.has_capability('breakpoints', 'edit');
    elsif topic like 'device:%' and target is not null and topic = 'device:' || target::text then
        return private.is_admin()
            or exists (select from public.devices as d where d.uuid = target and d.owner_user_id = auth.uid());
    end if;
    return false;
end;
$$;
comment on function private.can_send_topic(text, text) is 'Whether the caller may send <event> on a Realtime topic.';

revoke execute on function private.can_receive_topic(text), private.can_send_topic(text, text) from public, anon;
grant execute on function private.can_receive_topic(text), private.can_send_topic(text, text)
to authenticated, device, service_role;

create policy "messages: select topics the caller may receive" on realtime.messages
for select to authenticated, device
using (
    topic = (select realtime.topic())
    and extension in ('broadcast', 'presence')
    and (select private.can_receive_topic((select realtime.topic())))
);

create policy "messages: insert broadcasts the caller may send" on realtime.messages
for insert to authenticated, device
with check (extension = 'broadcast' and private.can_send_topic(topic, event));

create policy "messages: insert presence where the caller may receive" on realtime.messages
for insert to authenticated, device
with check (extension = 'presence' and private.can_receive_topic(topic));
