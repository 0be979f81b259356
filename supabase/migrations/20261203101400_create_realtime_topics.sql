-- Purpose: what the database announces on Realtime and who may hear it: broadcasts when devices, settings,
-- service groups, paused flows and access change; the entries firehose; the topic rules behind the policies on
-- realtime.messages; and the tables of the supabase_realtime publication.
-- Defines:
--   function private.announce_access_change()
--   function private.broadcast_change()
--   function private.can_receive_topic(text)
--   function private.can_send_topic(text,text)
--   function private.firehose_columns()
--   function private.publish_entries()
--   function private.publish_workspace_change()
--   trigger breakpoint_events_publish on public.breakpoint_events
--   trigger devices_broadcast_insert_delete on public.devices
--   trigger devices_broadcast_update on public.devices
--   trigger entries_firehose on public.entries
--   trigger profiles_announce_role_change on public.profiles
--   trigger roles_announce_grant_change on public.roles
--   trigger service_groups_broadcast on public.service_groups
--   trigger settings_device_broadcast on public.settings_device
--   trigger settings_global_broadcast on public.settings_global
--   trigger workspace_members_announce_move on public.workspace_members
--   trigger workspace_members_announce_removal on public.workspace_members
--   policy "messages: insert broadcasts the caller may send" on realtime.messages
--   policy "messages: insert presence where the caller may receive" on realtime.messages
--   policy "messages: select topics the caller may receive" on realtime.messages
--   publication supabase_realtime table public.breakpoint_events
--   publication supabase_realtime table public.device_status
--   publication supabase_realtime table public.devices
--   publication supabase_realtime table public.entries
--   publication supabase_realtime table public.service_groups
--   publication supabase_realtime table public.settings_device
--   publication supabase_realtime table public.settings_global
--   publication supabase_realtime table public.tags
--   publication supabase_realtime table public.workspace_tabs
-- Caveats: broadcasts use broadcast_changes' envelope ({record, old_record, operation, table, schema}, event =
-- operation, private); a heartbeat that only moves last_seen_at is not news. The firehose sends one message per
-- insert statement and workspace, its rows as arrays of values under one list of column names (never headers or
-- bodies). access:<user id> (access:all when a role's grants change) is for the server only: no policy lets
-- anyone receive or send on it. Realtime decides a private join by reading a probe row under the caller's claims
-- (SELECT policy) and a send by inserting one (INSERT policy). proxy-control:<workspace_id> is received by that
-- workspace's proxy devices and by users with breakpoints:edit there, and sent on by the same users; a device
-- may send only `cdp-result` on its own device:<uuid>.

create or replace function private.broadcast_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer: these topics are "database only" (no insert policy lets a user send on them).
    perform realtime.send(
        jsonb_build_object(
            'old_record', case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) - 'credential_id' end,
            'record', case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) - 'credential_id' end,
            'operation', tg_op,
            'table', tg_table_name,
            'schema', tg_table_schema
        ),
        tg_op, tg_argv[0], true
    );
    return null;
end;
$$;
comment on function private.broadcast_change() is
'Row trigger: publish the change on the topic named by the trigger argument, in the broadcast_changes envelope.';
revoke execute on function private.broadcast_change() from public, anon;

create trigger devices_broadcast_insert_delete
after insert or delete on public.devices
for each row execute function private.broadcast_change('devices:all');

create trigger devices_broadcast_update
after update on public.devices
for each row
when ((to_jsonb(old) - 'last_seen_at') is distinct from (to_jsonb(new) - 'last_seen_at'))
execute function private.broadcast_change('devices:all');

create trigger service_groups_broadcast
after insert or update or delete on public.service_groups
for each row execute function private.broadcast_change('service_groups:all');

create trigger settings_global_broadcast
after update on public.settings_global
for each row execute function private.broadcast_change('settings:global');

create trigger settings_device_broadcast
after insert or update or delete on public.settings_device
for each row execute function private.broadcast_change('settings_device:all');

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

create or replace function private.firehose_columns()
returns jsonb
language sql
immutable
parallel safe
set search_path = ''
as $$
    select '["id", "device_uuid", "captured_at", "method", "scheme", "host", "path", "query", "status",
      "response_size", "duration_ms", "error"]'::jsonb
$$;
comment on function private.firehose_columns() is 'The names of the values in each row of a firehose message.';

create or replace function private.publish_entries()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    first_ws uuid := (select n.workspace_id from new_rows as n limit 1);
    single boolean := not exists (select from new_rows as n where n.workspace_id <> first_ws);
begin
    -- A definer: ws:<workspace_id> is written by the database only (no insert policy lets a device send there).
    insert into realtime.messages (id, topic, extension, event, private, payload)
    select
        m.id, 'ws:' || m.workspace_id::text, 'broadcast', 'INSERT', true,
        jsonb_build_object(
            'old_record', null, 'operation', 'INSERT', 'table', 'entries', 'schema', 'public', 'id', m.id,
            'record', case when m.count = 1 then (
                select jsonb_object_agg(c.name, m.rows -> 0 -> (c.ord::integer - 1))
                from jsonb_array_elements_text(private.firehose_columns()) with ordinality as c (name, ord)
            ) end,
            'columns', private.firehose_columns(), 'rows', m.rows, 'count', m.count
        )
    from (
        -- One workspace (a device's batch, the common case): no grouping, so the rows keep insertion order.
        select gen_random_uuid() as id, first_ws as workspace_id, count(*) as count,
            jsonb_agg(jsonb_build_array(
                n.id, n.device_uuid, n.captured_at, n.method, n.scheme, n.host, n.path, n.query, n.status,
                n.response_size, n.duration_ms, n.error
            )) as rows
        from new_rows as n
        where single
        having count(*) > 0
        union all
        -- Several workspaces: one message each, rows in capture order.
        select gen_random_uuid(), n.workspace_id, count(*),
            jsonb_agg(jsonb_build_array(
                n.id, n.device_uuid, n.captured_at, n.method, n.scheme, n.host, n.path, n.query, n.status,
                n.response_size, n.duration_ms, n.error
            ) order by n.captured_at, n.id)
        from new_rows as n
        where not single
        group by n.workspace_id
    ) as m;
    return null;
end;
$$;
comment on function private.publish_entries() is
'Statement trigger: one private INSERT message per statement and workspace: columns plus one row per new entry.';
revoke execute on function private.publish_entries() from public, anon;

create trigger entries_firehose
after insert on public.entries
referencing new table as new_rows
for each statement execute function private.publish_entries();

create or replace function private.announce_access_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer: the change may be made by the auth server or a cascade, who cannot write realtime.messages.
    if tg_table_name = 'roles' then
        perform realtime.send('{}'::jsonb, 'changed', 'access:all', true);
    elsif tg_table_name = 'profiles' then
        perform realtime.send(jsonb_build_object('user_id', new.id), 'changed', 'access:' || new.id::text, true);
    else
        perform realtime.send(jsonb_build_object('user_id', old.user_id), 'changed', 'access:' || old.user_id::text, true);
    end if;
    return null;
end;
$$;
comment on function private.announce_access_change() is
'Trigger: publish `changed` on access:<user id> (access:all for a role) so Realtime re-checks private channels.';
revoke execute on function private.announce_access_change() from public, anon;

create trigger workspace_members_announce_removal
after delete on public.workspace_members
for each row execute function private.announce_access_change();

create trigger workspace_members_announce_move
after update of workspace_id, user_id on public.workspace_members
for each row
when (old.workspace_id is distinct from new.workspace_id or old.user_id is distinct from new.user_id)
execute function private.announce_access_change();

create trigger profiles_announce_role_change
after update of role on public.profiles
for each row
when (old.role is distinct from new.role)
execute function private.announce_access_change();

create trigger roles_announce_grant_change
after update of grants_all, capabilities or delete on public.roles
for each statement execute function private.announce_access_change();

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

alter publication supabase_realtime add table
public.devices,
public.device_status,
public.workspace_tabs,
public.tags,
public.service_groups,
public.settings_global,
public.settings_device;
alter publication supabase_realtime set (publish_via_partition_root = true);
alter publication supabase_realtime add table public.entries, public.breakpoint_events;
