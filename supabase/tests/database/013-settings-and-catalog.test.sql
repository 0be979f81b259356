-- Settings, effective_settings, tags, service groups, agents and their pairing: reads, writes and the RPCs.
begin;
select plan(69);
select tests.make_world();

select tests.attempt(who, stmt, expected, format('%s: %s', who, label), watched::regclass)
from (
    values
    ('anon', 'select 1 from public.settings_global', 'error=42501', 'anon reads no settings', null),
    ('nocaps', 'select 1 from public.settings_global', 'rows=1', 'every signed-in user reads the global settings', null),
    ('device:d1', 'select 1 from public.settings_global', 'rows=1', 'a paired device reads the global settings', null),
    ('device:d_unpaired', 'select 1 from public.settings_global', 'rows=0', 'an unpaired device does not', null),
    ('device:d1', 'select 1 from public.settings_device', 'rows=1', 'a device reads only its own overrides', null),
    ('member', 'select 1 from public.settings_device', 'rows=1', 'a member reads the overrides of devices they see', null),
    ('admin', 'select 1 from public.settings_device', 'rows=2', 'an admin reads every override', null),
    (
        'admin', $$ update public.settings_global set settings = '{}' returning 1 $$, 'error=42501',
        'settings change only through the RPCs', 'public.settings_global'
    ),
    (
        'device:d1', $$ update public.settings_device set overrides = '{}' returning 1 $$, 'error=42501',
        'a device cannot change its overrides', 'public.settings_device'
    ),
    ('device:d1', $$ select public.effective_settings({d1}) ->> 'capture_bodies' $$, 'rows=1', 'a device reads its effective settings', null),
    ('device:d1', $$ select 1 where public.effective_settings({d2}) is not null $$, 'rows=0', 'but not another device''s', null),
    ('outsider', $$ select 1 where public.effective_settings({d1}) is not null $$, 'rows=0', 'nor does an outsider', null),
    ('anon', $$ select public.effective_settings({d1}) $$, 'error=42501', 'anon cannot call effective_settings', null),
    (
        'viewer', $$ select public.set_global_connection_type('vpn') $$, 'error=42501', 'global:edit is needed for the connection type',
        'public.settings_global'
    ),
    ('member', $$ select public.set_global_connection_type('vpn') $$, 'error=42501', 'a member lacks global:edit', 'public.settings_global'),
    (
        'editor', $$ select public.set_global_connection_type('teleport') $$, 'error=22023', 'an unknown type is refused',
        'public.settings_global'
    ),
    ('editor', $$ select public.set_global_connection_type('pac') $$, 'rows=1', 'global:edit sets the connection type', null),
    (
        'editor', $$ select public.set_global_settings('{"a": 1}') $$, 'error=42501', 'replacing the JSON is for admins',
        'public.settings_global'
    ),
    ('admin', $$ select public.set_global_settings('[1]') $$, 'error=22023', 'settings must be an object', 'public.settings_global'),
    ('admin', $$ select public.set_global_settings(null) $$, 'error=22023', 'null settings are refused', 'public.settings_global'),
    (
        'member', $$ select public.set_device_settings({d3}, '{}') $$, 'error=42501', 'a device''s JSON is for admins',
        'public.settings_device'
    ),
    ('admin', $$ select public.set_device_settings({d3}, '{"connection_type": "cdp"}') $$, 'rows=1', 'an admin sets overrides', null),
    ('admin', $$ select public.set_device_settings(gen_random_uuid(), '{}') $$, 'error=PT404', 'an unknown device is not found', null)
) as v (who, stmt, expected, label, watched);

select is(
    (select settings ->> 'connection_type' from public.settings_global), 'pac', 'the global connection type changed'
);
select tests.authenticate_as('member');
select is(
    public.effective_settings(tests.id('d3')), '{"connection_type": "cdp"}'::jsonb,
    'the override wins over the global setting'
);
select is(
    public.effective_settings(tests.id('d1')), '{"connection_type": "pac", "capture_bodies": false}'::jsonb,
    'effective settings merge the override over the global row'
);
reset role;

-- catalog reads
select tests.attempt(who, format('select 1 from %s', tbl), expected, format('%s reading %s: %s', who, tbl, expected))
from (
    values
    ('anon', 'public.tags', 'error=42501'), ('nocaps', 'public.tags', 'rows=0'), ('viewer', 'public.tags', 'rows=1'),
    ('anon', 'public.service_groups', 'error=42501'), ('nocaps', 'public.service_groups', 'rows=0'),
    ('viewer', 'public.service_groups', 'rows=1'), ('nocaps', 'public.service_group_agents', 'rows=0'),
    ('viewer', 'public.service_group_agents', 'rows=1'), ('nocaps', 'public.busybro_agents', 'rows=0'),
    ('viewer', 'public.busybro_agents', 'rows=3'), ('device:d1', 'public.service_groups', 'error=42501'),
    ('device:d1', 'public.busybro_agents', 'error=42501')
) as v (who, tbl, expected);

-- catalog writes
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), watched::regclass)
from (
    values
    ('member', $$ insert into public.tags (name) values ('x') returning 1 $$, 'error=42501', 'tags change only through RPCs', 'public.tags'),
    ('viewer', $$ select public.upsert_tag('x') $$, 'error=42501', 'a viewer cannot add a tag', 'public.tags'),
    ('member', $$ select public.upsert_tag('web', '#00ff00', '{www.example.com}') $$, 'rows=1', 'tags:edit adds a tag', null),
    ('member', $$ select public.upsert_tag('api v2', id => {tag1}) $$, 'rows=1', 'tags:edit renames a tag', null),
    ('member', $$ select public.upsert_tag('bad', 'red') $$, 'error=23514', 'a color is #rrggbb', 'public.tags'),
    ('member', $$ select public.upsert_tag('x', id => gen_random_uuid()) $$, 'error=PT404', 'an unknown tag is not found', 'public.tags'),
    ('viewer', $$ select public.delete_tag({tag1}) $$, 'error=42501', 'a viewer cannot delete a tag', 'public.tags'),
    ('member', $$ select public.delete_tag({tag1}) $$, 'rows=1', 'tags:edit deletes a tag', null),
    ('member', $$ select public.delete_tag({tag1}) $$, 'error=PT404', 'deleting twice is not found', null),
    (
        'viewer', $$ select public.upsert_service_group('Payments', '{pay.example.com}') $$, 'error=42501',
        'a viewer cannot add a group', 'public.service_groups'
    ),
    ('anon', $$ select public.upsert_service_group('Payments') $$, 'error=42501', 'anon cannot add a group', 'public.service_groups'),
    (
        'member', $$ select public.upsert_service_group('Payments', '{pay.example.com}', 'creditcard') $$, 'rows=1',
        'services:edit adds a group', null
    ),
    (
        'member', $$ update public.service_groups set name = 'x' returning 1 $$, 'error=42501', 'groups change only through RPCs',
        'public.service_groups'
    ),
    (
        'member', $$ select public.set_service_group_agents({group1}, array[{agent2}, {agent3}]) $$, 'rows=2',
        'services:edit replaces a group''s agents', null
    ),
    (
        'viewer', $$ select public.set_service_group_agents({group1}, '{}') $$, 'error=42501', 'a viewer cannot',
        'public.service_group_agents'
    ),
    (
        'member', $$ select public.set_service_group_agents({group1}, array[{agent2}, {agent2}]) $$, 'error=22023',
        'an agent listed twice is refused', 'public.service_group_agents'
    ),
    (
        'member', $$ select public.set_service_group_agents(gen_random_uuid(), '{}') $$, 'error=PT404',
        'an unknown group is not found', 'public.service_group_agents'
    ),
    (
        'member', $$ select public.set_service_group_agents({group1}, array[gen_random_uuid()]) $$, 'error=23503',
        'an unknown agent is refused and nothing changes', 'public.service_group_agents'
    ),
    (
        'viewer', $$ insert into public.busybro_agents (name) values ('spy') returning 1 $$, 'error=42501',
        'agents:edit is needed to add an agent', 'public.busybro_agents'
    ),
    (
        'editor', $$ insert into public.busybro_agents (name, emoji) values ('auditor', '🔍') returning 1 $$, 'rows=1',
        'agents:edit adds an agent', null
    ),
    (
        'member', $$ update public.busybro_agents set instructions = 'x' returning 1 $$, 'rows=0',
        'without agents:edit an update touches no agent', 'public.busybro_agents'
    ),
    (
        'editor', $$ update public.busybro_agents set instructions = 'Be brief.' where name = 'auditor' returning 1 $$, 'rows=1',
        'agents:edit edits an agent', null
    ),
    ('editor', $$ delete from public.busybro_agents where name = 'auditor' returning 1 $$, 'rows=1', 'agents:edit deletes one', null),
    ('member', $$ select public.delete_service_group({group1}) $$, 'rows=1', 'services:edit deletes a group', null)
) as v (who, stmt, expected, label, watched);

select ok(not exists (select from public.tags where name in ('x', 'bad')), 'refused tag writes left nothing');
select results_eq(
    $$ select a.name, sga.is_primary, sga.position from public.service_group_agents as sga
       join public.busybro_agents as a on a.id = sga.agent_id where sga.service_group_id = (select id from public.service_groups where name = 'Payments')
       order by sga.position $$,
    $$ select null::text, null::boolean, null::integer where false $$,
    'a new group starts without agents'
);
-- set_service_group_agents on a fresh group, then clear it
select tests.authenticate_as('member');
select results_eq(
    $$ select a.name, s.is_primary, s.position
       from public.set_service_group_agents((select id from public.service_groups where name = 'Payments'),
                                            array[tests.id('agent3'), tests.id('agent1')]) as s
       join public.busybro_agents as a on a.id = s.agent_id order by s.position $$,
    $$ values ('agent3', true, 0), ('agent1', false, 1) $$,
    'the first agent becomes primary and positions follow the array'
);
select is_empty(
    $$ select * from public.set_service_group_agents((select id from public.service_groups where name = 'Payments'), '{}') $$,
    'an empty array clears the group''s agents'
);
reset role;
select is_empty(
    $$ select 1 from public.service_group_agents where service_group_id = (select id from public.service_groups where name = 'Payments') $$,
    'and nothing is left'
);
select throws_ok(
    format(
        $$ insert into public.service_group_agents (service_group_id, agent_id, is_primary) values (%L, %L, true), (%L, %L, true) $$,
        (select id from public.service_groups where name = 'Payments'), tests.id('agent1'),
        (select id from public.service_groups where name = 'Payments'), tests.id('agent2')
    ),
    '23505', null, 'a group can never have two primary agents'
);
select is_empty($$ select 1 from public.service_groups where name = 'Example' $$, 'the deleted group is gone');

select * from finish();
rollback;
