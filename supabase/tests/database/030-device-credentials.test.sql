-- Device credentials: no API role reads them; devices say only whether they are paired; admins and owners get
-- them through device_credentials(); pairing, unpairing and adding a device keep paired and paired_at in step.
begin;
select plan(39);
select tests.make_world();

-- where the credential lives
select hasnt_column('public', 'devices', 'credential_id', 'devices no longer carries credential_id');
select col_type_is('public', 'devices', 'paired', 'boolean', 'devices says whether it is paired');
select col_type_is('public', 'devices', 'paired_at', 'timestamp with time zone', 'and since when');
select is(
    array(
        select r from unnest(array['anon', 'authenticated', 'device', 'service_role']) as r
        where has_table_privilege(r, 'private.device_credentials', 'select, insert, update, delete, truncate, references')
    ),
    '{}'::text[],
    'no API role holds any privilege on private.device_credentials'
);
select policies_are('private', 'device_credentials', '{}'::name[], 'device_credentials has no policy: definers only');
select is_definer('private', 'device_credentials', array['uuid[]'], 'private.device_credentials() is a definer');
select function_privs_are(
    'public', 'device_credentials', array['uuid[]'], 'anon', '{}'::text[], 'anon cannot call device_credentials'
);
select function_privs_are(
    'public', 'device_credentials', array['uuid[]'], 'device', '{}'::text[], 'nor can a device'
);

-- readers see paired, never a credential
select tests.attempt(who, stmt, expected, format('%s: %s', who, label))
from (
    values
    (
        'viewer', $$ select 1 from public.devices as d where d.uuid = {d1} and d.paired and d.paired_at is not null
                    and not (to_jsonb(d) ? 'credential_id') $$,
        'rows=1', 'devices:view reads d1 as paired, without a credential'
    ),
    (
        'member', $$ select 1 from public.devices as d where d.uuid = {d_unpaired} and not d.paired and d.paired_at is null $$,
        'rows=1', 'and an unpaired device as unpaired'
    ),
    ('member', 'select 1 from private.device_credentials', 'error=42501', 'a member cannot read the credentials table'),
    ('admin', 'select 1 from private.device_credentials', 'error=42501', 'nor can an admin, directly'),
    ('device:d1', 'select 1 from private.device_credentials', 'error=42501', 'nor a device, not even its own'),
    ('anon', 'select 1 from private.device_credentials', 'error=42501', 'nor anon'),
    (
        'device:d1', $$ select 1 from public.devices as d where d.uuid = {d1} and d.paired $$,
        'rows=1', 'a device still reads itself (its credential is checked, not shown)'
    )
) as v (who, stmt, expected, label);

-- device_credentials(): admins any device, owners with devices:edit their own, nobody else
select tests.attempt(who, stmt, expected, format('%s: %s', who, label))
from (
    values
    ('admin', $$ select * from public.device_credentials(array[{d1}, {d2}]) where credential_id is not null $$, 'rows=2', 'an admin gets any device''s'),
    (
        'owner', $$ select * from public.device_credentials(array[{d1}, {d2}, {d_unpaired}]) $$, 'rows=2',
        'the owner gets their own two (d2 is left out)'
    ),
    ('member', $$ select * from public.device_credentials(array[{d1}]) $$, 'rows=0', 'devices:edit on another''s device gets nothing'),
    ('outsider', $$ select * from public.device_credentials(array[{d1}]) $$, 'rows=0', 'another workspace gets nothing'),
    ('outsider', $$ select * from public.device_credentials(array[{d2}]) $$, 'rows=1', 'but their own device''s'),
    ('viewer', $$ select * from public.device_credentials(array[{d1}]) $$, 'error=42501', 'devices:view alone is refused'),
    ('nocaps', $$ select * from public.device_credentials(array[{d1}]) $$, 'error=42501', 'no capability is refused'),
    ('anon', $$ select * from public.device_credentials(array[{d1}]) $$, 'error=42501', 'anon is refused'),
    ('device:d1', $$ select * from public.device_credentials(array[{d1}]) $$, 'error=42501', 'a device is refused'),
    (
        'admin', $$ select * from public.device_credentials(array(select gen_random_uuid() from generate_series(1, 1001))) $$,
        'error=22023', 'more than 1000 at a time is refused'
    )
) as v (who, stmt, expected, label);
select is(
    tests.result('owner', $$ select credential_id from public.device_credentials(array[{d1}]) $$) #>> '{}',
    tests.device_claims(tests.id('d1')) ->> 'cred',
    'the owner gets d1''s current credential'
);
select is(
    tests.result('owner', $$ select credential_id from public.device_credentials(array[{d_unpaired}]) $$),
    'null'::jsonb,
    'an unpaired device comes back with a null credential'
);

-- pairing again: a new credential, paired_at moves, the old token stops, devices:all hears it without the secret
create temporary table before_pairing on commit drop as
select
    tests.device_claims(tests.id('d1')) as claims,
    (select d.paired_at from public.devices as d where d.uuid = tests.id('d1')) as paired_at;
create temporary table activation on commit drop as
select tests.result('admin', $$ select public.issue_device_activation({d1}) ->> 'code' $$) #>> '{}' as code;
delete from realtime.messages;
create temporary table pairing on commit drop as
select tests.result('anon', format('select public.pair_device(%L)', (select code from activation))) as answer;
select is(
    (select answer ->> 'credential_id' from pairing),
    (select c.credential_id::text from private.device_credentials as c where c.device_uuid = tests.id('d1')),
    'pair_device hands the device its new credential'
);
select isnt(
    (select answer ->> 'credential_id' from pairing), (select claims ->> 'cred' from before_pairing),
    'which is not the old one'
);
select ok(
    (select d.paired and d.paired_at > b.paired_at from public.devices as d, before_pairing as b where d.uuid = tests.id('d1')),
    'paired_at moves, so a proxy holding a token notices'
);
select tests.set_claims('device', (select claims from before_pairing));
select is(private.current_device(), null, 'the token of the earlier credential is void at once');
reset role;
select tests.authenticate_as_device(tests.id('d1'));
select is(private.current_device(), tests.id('d1'), 'the new credential is the device');
reset role;
select results_eq(
    $$ select event, (payload -> 'record' ->> 'paired')::boolean, payload -> 'record' ? 'credential_id'
       from realtime.messages where topic = 'devices:all' $$,
    $$ values ('UPDATE', true, false) $$,
    'devices:all says the device was paired again, without the credential'
);

-- unpairing and adding
select tests.authenticate_as('admin');
select is((public.unpair_device(tests.id('d1'))).paired, false, 'unpair_device answers the row, unpaired');
reset role;
select results_eq(
    $$ select paired, paired_at from public.devices where uuid = tests.id('d1') $$,
    $$ values (false, null::timestamptz) $$,
    'devices says so'
);
select is_empty(
    $$ select 1 from private.device_credentials where device_uuid = tests.id('d1') $$, 'and the credential is gone'
);
select tests.authenticate_as('admin');
select is((public.create_device(tests.id('w1'), 'added', 'bmc')).paired, true, 'an added device comes paired');
reset role;
select is(
    (
        select count(*)::integer from private.device_credentials as c inner join public.devices as d on d.uuid = c.device_uuid
        where d.name = 'added' and d.paired_at = c.issued_at
    ),
    1, 'with a credential issued when paired_at says'
);
select tests.authenticate_as('admin');
select public.delete_device(tests.id('d2'));
reset role;
select is_empty(
    $$ select 1 from private.device_credentials where device_uuid = tests.id('d2') $$, 'a removed device takes its credential along'
);

select * from finish();
rollback;
