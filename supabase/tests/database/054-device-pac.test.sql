-- PAC files: anyone holding a proxy device's uuid (an operating system fetching its PAC file with no token) gets
-- that device's proxy port and nothing else; any other uuid gets nothing. The pac sheet's `open-sheet` carries
-- the file's path and the port.
begin;
select plan(15);
select tests.make_world();

select function_returns('public', 'device_pac_port', array['uuid'], 'integer', 'device_pac_port answers one integer');
select is_definer('private', 'device_pac_port', array['uuid'], 'private.device_pac_port() is a definer');
select function_privs_are(
    'public', 'device_pac_port', array['uuid'], 'anon', array['EXECUTE'], 'anon may call device_pac_port'
);

select is(tests.result('anon', 'select public.device_pac_port({d1})'), '9101'::jsonb, 'anon: a proxy device''s port');
select is(tests.result('anon', 'select public.device_pac_port({d2})'), '9102'::jsonb, 'anon: any proxy device''s, by uuid');
select is(tests.result('anon', 'select public.device_pac_port({d3})'), 'null'::jsonb, 'anon: nothing for a bmc browser');
select is(
    tests.result('anon', 'select public.device_pac_port({d_unpaired})'), 'null'::jsonb, 'anon: nothing for a phone'
);
select is(
    tests.result('anon', $$ select public.device_pac_port('00000000-0000-0000-0000-00000000beef') $$), 'null'::jsonb,
    'anon: nothing for an unknown uuid'
);
select is(
    tests.result('device:d3', 'select public.device_pac_port({d1})'), '9101'::jsonb, 'a device token may ask too'
);
select tests.attempt('anon', 'select uuid from public.devices', 'error=42501', 'anon still reads no devices');

-- open-sheet: the pac sheet's path and port
delete from realtime.messages;
select tests.authenticate_as('owner');
select public.open_device_sheet(tests.id('d1'), 'pac');
select public.open_device_sheet(tests.id('d1'), 'settings');
reset role;
select is(
    (select payload - 'id' from realtime.messages where event = 'open-sheet' and payload ->> 'sheet' = 'pac'),
    jsonb_build_object(
        'device_uuid', tests.id('d1'), 'sheet', 'pac',
        'pac_path', '/functions/v1/pac/' || tests.id('d1')::text, 'proxy_port', 9101
    ),
    'the pac sheet carries the PAC file''s path and the port'
);
select is(
    (select payload - 'id' from realtime.messages where event = 'open-sheet' and payload ->> 'sheet' = 'settings'),
    jsonb_build_object('device_uuid', tests.id('d1'), 'sheet', 'settings'),
    'another sheet says only which (as before)'
);
select tests.authenticate_as('member');
select public.open_device_sheet(tests.id('d3'), 'pac');
reset role;
select is(
    (select payload - 'id' from realtime.messages where event = 'open-sheet' and topic = 'device:' || tests.id('d3')),
    jsonb_build_object('device_uuid', tests.id('d3'), 'sheet', 'pac'),
    'a device without a proxy port has no PAC file to point to'
);
select is(
    (select array_agg(distinct topic) from realtime.messages where event = 'open-sheet' and payload ->> 'device_uuid' = tests.id('d1')::text),
    array['device:' || tests.id('d1')::text], 'both on the device''s own topic'
);
select tests.attempt(
    'member', $$ select public.open_device_sheet({d1}, 'pac') $$, 'error=42501', 'only its owner or an admin opens one'
);

select * from finish();
rollback;
