-- Devices and device_status: who may read and write them; a credential stops working the moment it changes.
begin;
select plan(85);
select tests.make_world();

-- who sees which device (d1 owner's in w1, d2 outsider's in w2, d3 member's in w1, d_unpaired owner's in w1)
select
    tests.attempt(
        who, format('select 1 from public.devices where uuid = {%s}', dev), expected,
        format('%s %s device %s', who, case expected when 'rows=1' then 'sees' else 'does not see' end, dev)
    )
from (
    values
    ('anon', 'd1', 'error=42501'),
    ('nocaps', 'd1', 'rows=0'), ('nocaps', 'd3', 'rows=0'),
    ('viewer', 'd1', 'rows=1'), ('viewer', 'd2', 'rows=0'),
    ('member', 'd1', 'rows=1'), ('member', 'd2', 'rows=0'),
    ('owner', 'd1', 'rows=1'), ('owner', 'd_unpaired', 'rows=1'), ('owner', 'd2', 'rows=0'),
    ('outsider', 'd2', 'rows=1'), ('outsider', 'd1', 'rows=0'),
    ('admin', 'd1', 'rows=1'), ('admin', 'd2', 'rows=1'),
    ('service_role', 'd2', 'rows=1'),
    ('device:d1', 'd1', 'rows=1'), ('device:d1', 'd3', 'rows=0'), ('device:d1', 'd2', 'rows=0'),
    ('device:d2', 'd1', 'rows=0'),
    ('device:d_unpaired', 'd_unpaired', 'rows=0')
) as v (who, dev, expected);

-- a device reads nothing of people
select tests.attempt(who, format('select 1 from %s', tbl), expected, format('%s reading %s: %s', who, tbl, expected))
from (
    values
    ('device:d1', 'public.profiles', 'error=42501'), ('device:d1', 'public.workspaces', 'error=42501'),
    ('device:d1', 'public.workspace_members', 'error=42501'), ('device:d1', 'public.roles', 'error=42501'),
    ('device:d1', 'public.tags', 'error=42501'), ('device:d1', 'public.telegram_links', 'error=42501'),
    ('device:d1', 'auth.users', 'error=42501')
) as v (who, tbl, expected);

-- nobody writes devices directly; only the service role
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), 'public.devices')
from (
    values
    (
        'admin', $$ insert into public.devices (workspace_id, name, source) values ({w1}, 'x', 'proxy') returning 1 $$,
        'error=42501', 'an admin cannot insert a device directly'
    ),
    (
        'owner', $$ update public.devices set name = 'x' where uuid = {d1} returning 1 $$,
        'error=42501', 'the owner cannot update a device directly'
    ),
    (
        'owner', $$ delete from public.devices where uuid = {d1} returning 1 $$,
        'error=42501', 'the owner cannot delete a device directly'
    ),
    (
        'device:d1', $$ update public.devices set paired = false, paired_at = null where uuid = {d1} returning 1 $$,
        'error=42501', 'a device cannot change its own pairing'
    ),
    (
        'device:d1', $$ delete from public.devices where uuid = {d1} returning 1 $$,
        'error=42501', 'a device cannot delete itself'
    ),
    (
        'anon', $$ insert into public.devices (workspace_id, name, source) values ({w1}, 'x', 'proxy') returning 1 $$,
        'error=42501', 'anon cannot insert a device'
    ),
    (
        'service_role', $$ update public.devices set model = 'iPhone' where uuid = {d2} returning 1 $$,
        'rows=1', 'the service role writes devices'
    )
) as v (who, stmt, expected, label);

-- device_status: users read what they may see; a device writes only its own
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), 'public.device_status')
from (
    values
    ('member', $$ select 1 from public.device_status where device_uuid = {d1} $$, 'rows=1', 'a member reads d1''s status'),
    ('outsider', $$ select 1 from public.device_status where device_uuid = {d1} $$, 'rows=0', 'an outsider does not'),
    (
        'owner', $$ update public.device_status set online = false where device_uuid = {d1} returning 1 $$,
        'error=42501', 'a user cannot write a device''s status'
    ),
    (
        'device:d1', $$ update public.device_status set online = false, heartbeat_at = now() where device_uuid = {d1} returning 1 $$,
        'rows=1', 'a device reports its own status'
    ),
    (
        'device:d1', $$ update public.device_status set online = false where device_uuid = {d3} returning 1 $$,
        'rows=0', 'a device cannot report another''s status'
    ),
    (
        'device:d1', $$ insert into public.device_status (device_uuid) values ({d_unpaired}) returning 1 $$,
        'error=42501', 'a device cannot create another''s status row'
    ),
    (
        'device:d1', $$ update public.device_status set live_activity_message = 'hi' where device_uuid = {d1} returning 1 $$,
        'error=42501', 'a device cannot set its own live activity message'
    ),
    (
        'device:d2', $$ select 1 from public.device_status where device_uuid = {d1} $$, 'rows=0',
        'another device cannot read d1''s status'
    ),
    (
        'device:d_unpaired', $$ insert into public.device_status (device_uuid) values ({d_unpaired}) returning 1 $$,
        'error=42501', 'a device without a credential writes nothing'
    ),
    ('anon', $$ select 1 from public.device_status $$, 'error=42501', 'anon reads no status')
) as v (who, stmt, expected, label);

-- the device RPCs: (who, rpc call, expected)
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), 'public.devices')
from (
    values
    ('anon', $$ select public.rename_device({d1}, 'x') $$, 'error=42501', 'anon cannot rename'),
    ('nocaps', $$ select public.rename_device({d1}, 'x') $$, 'error=PT404', 'without devices:view the device is not found'),
    ('viewer', $$ select public.rename_device({d1}, 'x') $$, 'error=42501', 'devices:view without edit cannot rename'),
    ('member', $$ select public.rename_device({d1}, 'x') $$, 'error=42501', 'devices:edit on someone else''s device cannot rename'),
    ('outsider', $$ select public.rename_device({d1}, 'x') $$, 'error=PT404', 'another workspace''s device is not found'),
    ('device:d1', $$ select public.rename_device({d1}, 'x') $$, 'error=42501', 'a device cannot rename itself'),
    ('owner', $$ select public.rename_device({d1}, '') $$, 'error=22023', 'an empty name is refused'),
    ('owner', $$ select public.rename_device({d1}, 'renamed by owner') $$, 'rows=1', 'the owner renames their device'),
    ('admin', $$ select public.rename_device({d3}, 'renamed by admin') $$, 'rows=1', 'an admin renames any device'),
    ('member', $$ select public.set_device_connection_type({d3}, 'cdp') $$, 'rows=1', 'the owner sets the connection type'),
    ('member', $$ select public.set_device_connection_type({d3}, 'carrier-pigeon') $$, 'error=22023', 'an unknown type is refused'),
    ('viewer', $$ select public.set_device_connection_type({d1}, 'vpn') $$, 'error=42501', 'a viewer cannot'),
    ('owner', $$ select public.unpair_device({d1}) $$, 'error=42501', 'the owner cannot unpair: admins only'),
    ('editor', $$ select public.delete_device({d1}) $$, 'error=42501', 'devices:edit cannot delete: admins only'),
    ('member', $$ select public.create_device({w1}, 'new', 'proxy') $$, 'error=42501', 'a member cannot add devices'),
    ('device:d1', $$ select public.unpair_device({d1}) $$, 'error=42501', 'a device cannot unpair itself'),
    ('admin', $$ select public.create_device({w1}, 'added', 'bmc') $$, 'rows=1', 'an admin adds a device'),
    ('admin', $$ select public.unpair_device(gen_random_uuid()) $$, 'error=PT404', 'unpairing an unknown device is not found')
) as v (who, stmt, expected, label);

select is((select name from public.devices where uuid = tests.id('d1')), 'renamed by owner', 'the rename landed');
select ok(
    (
        select d.paired and c.credential_id is not null and d.owner_user_id = tests.id('admin')
        from public.devices as d inner join private.device_credentials as c on c.device_uuid = d.uuid
        where d.name = 'added'
    ),
    'an added device has a credential, says it is paired, and has the admin as owner'
);
select is(
    (select count(*)::integer from public.device_status as s where s.device_uuid = (select d.uuid from public.devices as d where d.name = 'added')),
    1, 'and a status row'
);

-- status commands publish their event on device:<uuid>
select tests.attempt('owner', $$ select public.vpn_on_device({d1}) $$, 'rows=1', 'the owner turns the VPN on');
select is((select vpn_state from public.device_status where device_uuid = tests.id('d1')), 'requested-on', 'vpn_state says so');
select results_eq(
    format($$ select event, private from realtime.messages where topic = 'device:%s' order by inserted_at $$, tests.id('d1')),
    $$ values ('vpn-on', true) $$,
    'vpn-on is published privately on device:<uuid>'
);
select tests.attempt('owner', $$ select public.set_live_activity_message({d1}, 'Capturing') $$, 'rows=1', 'the owner sets the message');
select is(
    (select live_activity_message from public.device_status where device_uuid = tests.id('d1')), 'Capturing', 'it is stored'
);
select tests.attempt('owner', $$ select public.vpn_off_device({d1}) $$, 'rows=1', 'the owner turns the VPN off');
select tests.attempt('owner', $$ select public.open_device_sheet({d1}, 'settings') $$, 'rows=1', 'the owner opens a sheet');
select tests.attempt(
    'owner', $$ select public.open_device_sheet({d1}, 'Robert''); drop table x;--') $$, 'error=22023',
    'a sheet name that is not a name is refused'
);
select tests.attempt('member', $$ select public.vpn_on_device({d1}) $$, 'error=42501', 'a member cannot command another''s device');
select results_eq(
    format($$ select array_agg(event order by event) from realtime.messages where topic = 'device:%s' $$, tests.id('d1')),
    $$ values (array['live-activity-message', 'open-sheet', 'vpn-off', 'vpn-on']) $$,
    'each command published exactly one event, and the refused ones none'
);
select is(
    (
        select payload ->> 'message' from realtime.messages
        where topic = 'device:' || tests.id('d1') and event = 'live-activity-message'
    ),
    'Capturing', 'the live activity event carries the message'
);

-- unpairing voids the credential at once
select tests.attempt('device:d1', $$ select 1 from public.devices where uuid = {d1} $$, 'rows=1', 'd1 reads itself while paired');
select tests.authenticate_as('admin');
select isnt(public.unpair_device(tests.id('d1')), null, 'an admin unpairs d1');
reset role;
select is(
    (select count(*)::integer from private.device_credentials where device_uuid = tests.id('d1')), 0, 'the credential is gone'
);
select tests.attempt(
    'device:d1', $$ select 1 from public.devices where uuid = {d1} $$, 'rows=0',
    'the old JWT reads nothing on its next request'
);
select tests.attempt(
    'device:d1', $$ update public.device_status set online = true where device_uuid = {d1} returning 1 $$,
    'rows=0', 'and writes nothing'
);
select ok(
    exists (select from realtime.messages where topic = 'device:' || tests.id('d1') and event = 'unpair'),
    'unpair is published on device:<uuid>'
);
select tests.authenticate_as('admin');
select lives_ok(format('select public.delete_device(%L)', tests.id('d3')), 'an admin deletes d3');
reset role;
select is_empty(format('select 1 from public.devices where uuid = %L', tests.id('d3')), 'd3 is gone');
select is_empty(format('select 1 from public.device_status where device_uuid = %L', tests.id('d3')), 'with its status');

select * from finish();
rollback;
