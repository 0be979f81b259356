-- Device changes are published per workspace: devices:<workspace_id> and settings_device:<workspace_id> reach that
-- workspace's members with devices:view (admins: all); devices:all and settings_device:all reach admins only; a
-- move is a DELETE on the old workspace's topic and an INSERT on the new one's; commands on device:<uuid> need
-- devices:edit as well as owning the device.
begin;
select plan(30);
select tests.make_world();

select
    is(
        tests.can_receive(who, topic), expected,
        format('%s %s receive on %s', who, case when expected then 'may' else 'may not' end, topic)
    )
from (
    values
    ('member', 'devices:{w1}', true), ('viewer', 'devices:{w1}', true), ('admin', 'devices:{w2}', true),
    ('outsider', 'devices:{w2}', true), ('outsider', 'devices:{w1}', false), ('member', 'devices:{w2}', false),
    ('nocaps', 'devices:{w1}', false), ('device:d1', 'devices:{w1}', false), ('anon', 'devices:{w1}', false),
    ('member', 'settings_device:{w1}', true), ('outsider', 'settings_device:{w1}', false),
    ('admin', 'devices:all', true), ('member', 'devices:all', false), ('viewer', 'devices:all', false),
    ('admin', 'settings_device:all', true), ('viewer', 'settings_device:all', false),
    ('member', 'devices:not-a-uuid', false)
) as v (who, topic, expected);

select is(tests.can_send('admin', tests.t('devices:{w1}'), 'INSERT'), false, 'nobody sends on devices:<workspace_id>');

-- a rename: once on its workspace's topic and once on devices:all, never on the other workspace's
delete from realtime.messages;
select tests.authenticate_as('owner');
select public.rename_device(tests.id('d1'), 'renamed');
reset role;
select results_eq(
    $$ select event, payload -> 'record' ->> 'name', payload -> 'old_record' ->> 'name', private
       from realtime.messages where topic = 'devices:' || tests.id('w1')::text $$,
    $$ values ('UPDATE', 'renamed', 'owner-proxy', true) $$,
    'a rename is one private UPDATE on its workspace''s devices topic'
);
select is(
    (select count(*)::int from realtime.messages where topic = 'devices:all'), 1, 'and one on devices:all'
);
select is_empty(
    $$ select 1 from realtime.messages where topic = 'devices:' || tests.id('w2')::text $$,
    'the other workspace hears nothing'
);

-- a heartbeat alone is no news anywhere
delete from realtime.messages;
update public.devices set last_seen_at = now() where uuid = tests.id('d1');
select is_empty($$ select 1 from realtime.messages where topic like 'devices:%' $$, 'a heartbeat is not broadcast');

-- a move: the old workspace sees it leave, the new one arrive
delete from realtime.messages;
update public.devices set workspace_id = tests.id('w2') where uuid = tests.id('d3');
select results_eq(
    $$ select event, payload ->> 'operation', payload -> 'record', payload -> 'old_record' ->> 'name'
       from realtime.messages where topic = 'devices:' || tests.id('w1')::text $$,
    $$ values ('DELETE', 'DELETE', 'null'::jsonb, 'member-chrome') $$,
    'moved away: a DELETE on the old workspace''s topic'
);
select results_eq(
    $$ select event, payload ->> 'operation', payload -> 'record' ->> 'name', payload -> 'old_record'
       from realtime.messages where topic = 'devices:' || tests.id('w2')::text $$,
    $$ values ('INSERT', 'INSERT', 'member-chrome', 'null'::jsonb) $$,
    'moved in: an INSERT on the new workspace''s topic'
);

-- an override: on its device's workspace's topic
delete from realtime.messages;
insert into public.settings_device (device_uuid, overrides) values (tests.id('d1'), '{"x": 1}')
on conflict (device_uuid) do update set overrides = excluded.overrides;
select results_eq(
    $$ select event, payload -> 'record' -> 'overrides' from realtime.messages
       where topic = 'settings_device:' || tests.id('w1')::text $$,
    $$ values ('UPDATE', '{"x": 1}'::jsonb) $$,
    'an override is published on its device''s workspace''s settings_device topic'
);
select is_empty(
    $$ select 1 from realtime.messages where topic = 'settings_device:' || tests.id('w2')::text $$,
    'and not on another workspace''s'
);

-- commands: the owner with devices:edit, or an admin; owning is not enough without devices:edit
update public.devices set owner_user_id = tests.id('viewer') where uuid = tests.id('d_unpaired');
select is(tests.can_send('owner', tests.t('device:{d1}'), 'vpn-on'), true, 'the owner (devices:edit) sends vpn-on');
select is(tests.can_send('admin', tests.t('device:{d1}'), 'unpair'), true, 'an admin sends unpair');
select is(
    tests.can_send('viewer', tests.t('device:{d_unpaired}'), 'vpn-on'), false,
    'a viewer who owns a device may not command it'
);
select is(
    tests.can_receive('viewer', tests.t('device:{d_unpaired}')), true, 'but still hears its own device'
);

select * from finish();
rollback;
