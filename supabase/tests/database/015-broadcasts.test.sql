-- Broadcast triggers: each change lands once on its topic, in the broadcast_changes envelope, privately.
begin;
select plan(16);
select tests.make_world();
delete from realtime.messages;

-- devices:all
select tests.authenticate_as('owner');
select public.rename_device(tests.id('d1'), 'new name');
reset role;
select results_eq(
    $$ select event, payload ->> 'operation', payload -> 'record' ->> 'name', payload -> 'old_record' ->> 'name',
              payload ->> 'table', payload ->> 'schema', private
       from realtime.messages where topic = 'devices:all' $$,
    $$ values ('UPDATE', 'UPDATE', 'new name', 'owner-proxy', 'devices', 'public', true) $$,
    'a rename is one private UPDATE on devices:all carrying the old and the new name'
);
select ok(
    (
        select not (payload -> 'record' ? 'credential_id') and not (payload -> 'old_record' ? 'credential_id')
        from realtime.messages where topic = 'devices:all'
    ),
    'the broadcast leaves the device credential out'
);
select is(
    (select array(select jsonb_object_keys(payload) order by 1) from realtime.messages where topic = 'devices:all'),
    array['id', 'old_record', 'operation', 'record', 'schema', 'table'],
    'the envelope has the broadcast_changes keys and the message id'
);
delete from realtime.messages;
update public.devices set last_seen_at = now() where uuid = tests.id('d1');
select is_empty($$ select 1 from realtime.messages where topic = 'devices:all' $$, 'a heartbeat alone is not broadcast');
insert into public.devices (workspace_id, name, source) values (tests.id('w1'), 'fresh', 'bmc');
select results_eq(
    $$ select event, payload -> 'old_record' from realtime.messages where topic = 'devices:all' $$,
    $$ values ('INSERT', 'null'::jsonb) $$, 'an added device is an INSERT with a null old_record'
);
delete from realtime.messages;
delete from public.devices where name = 'fresh';
select results_eq(
    $$ select event, payload -> 'record', payload -> 'old_record' ->> 'name' from realtime.messages where topic = 'devices:all' $$,
    $$ values ('DELETE', 'null'::jsonb, 'fresh') $$, 'a removed device is a DELETE with its old record'
);

-- service_groups:all
delete from realtime.messages;
select tests.authenticate_as('member');
select public.upsert_service_group('Payments', array['pay.example.com']);
reset role;
select results_eq(
    $$ select event, payload -> 'record' ->> 'name' from realtime.messages where topic = 'service_groups:all' $$,
    $$ values ('INSERT', 'Payments') $$, 'a new service group is published on service_groups:all'
);
select tests.authenticate_as('member');
select public.delete_service_group(tests.id('group1'));
reset role;
select results_eq(
    $$ select event, payload -> 'old_record' ->> 'name' from realtime.messages
       where topic = 'service_groups:all' and event = 'DELETE' and payload ->> 'table' = 'service_groups' $$,
    $$ values ('DELETE', 'Example') $$, 'a deleted service group is published too'
);

-- settings:global and settings_device:all
delete from realtime.messages;
select tests.authenticate_as('editor');
select public.set_global_connection_type('vpn');
reset role;
select results_eq(
    $$ select event, payload -> 'record' -> 'settings' ->> 'connection_type', payload -> 'old_record' -> 'settings' ->> 'connection_type'
       from realtime.messages where topic = 'settings:global' $$,
    $$ values ('UPDATE', 'vpn', 'proxy') $$, 'a global settings change is published on settings:global'
);
select tests.authenticate_as('admin');
select public.set_device_settings(tests.id('d3'), '{"x": 1}');
select public.set_device_settings(tests.id('d3'), '{"x": 2}');
reset role;
select results_eq(
    $$ select array_agg(event order by payload -> 'record' -> 'overrides' ->> 'x') from realtime.messages where topic = 'settings_device:all' $$,
    $$ values (array['INSERT', 'UPDATE']) $$, 'device overrides are published on settings_device:all'
);
select is(
    (select count(*)::integer from realtime.messages where private is not true), 0, 'every database broadcast is private'
);

-- a refused write publishes nothing
delete from realtime.messages;
select tests.attempt('viewer', $$ select public.rename_device({d1}, 'sneaky') $$, 'error=42501', 'a viewer cannot rename');
select tests.attempt('viewer', $$ select public.upsert_service_group('Sneaky') $$, 'error=42501', 'nor add a group');
select is_empty($$ select 1 from realtime.messages $$, 'and nothing was published for either');

-- no user may publish on the database-only topics
select tests.attempt(who, format($$ select realtime.send('{}', 'INSERT', '%s') $$, topic), 'rows=1', format('%s sends on %s', who, topic))
from (values ('admin', 'devices:all')) as v (who, topic);
select is_empty(
    $$ select 1 from realtime.messages where topic = 'devices:all' $$,
    'even an admin''s realtime.send on devices:all is refused by policy (only a warning) and stores nothing'
);

select * from finish();
rollback;
