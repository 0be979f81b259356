-- Proxy control: resends and resolutions are rows the proxy reads back; the broadcasts on
-- proxy-control:<workspace> only wake it. Who records, reads and claims a resend; what a device reads of a resolution.
begin;
select plan(33);
select tests.make_world();
select tests.remember(n, gen_random_uuid()) from unnest(array['entry1', 'entry2', 'ev1', 'stale']) as n;
insert into public.entries (id, workspace_id, device_uuid, source, method, host, path, request_headers, request_body)
values
(tests.id('entry1'), tests.id('w1'), tests.id('d1'), 'proxy', 'POST', 'api.example.com', '/v1/orders', '[["x-a", "1"]]', '\x7b7d'),
(tests.id('entry2'), tests.id('w2'), tests.id('d2'), 'proxy', 'GET', 'pay.example.com', '/', '[]', null);
delete from realtime.messages;

select policies_are(
    'public', 'resend_requests',
    array['resend_requests: select with breakpoints:view', 'resend_requests: select its own'],
    'resend_requests has exactly its policies'
);
select is(
    array(
        select r from unnest(array['anon', 'authenticated', 'device']) as r
        where has_table_privilege(r, 'public.resend_requests', 'insert, update, delete, truncate')
    ),
    '{}'::text[],
    'no API role writes resend_requests directly'
);
select function_privs_are(
    'public', 'claim_resend_requests', '{}'::name[], 'authenticated', '{}'::text[], 'users cannot claim resends'
);
select is_definer('private', 'claim_resend_requests', '{}'::name[], 'the claim is a definer');

-- resend_entry records the request and wakes the workspace's proxy
select tests.attempt('member', $$ select public.resend_entry({entry1}) $$, 'rows=1', 'member asks to resend entry1');
select tests.attempt('outsider', $$ select public.resend_entry({entry2}) $$, 'rows=1', 'outsider asks to resend entry2');
select tests.remember('req1', (select id from public.resend_requests where entry_id = tests.id('entry1')));
select results_eq(
    $$ select workspace_id, device_uuid, requested_by, claimed_at from public.resend_requests where id = tests.id('req1') $$,
    $$ values (tests.id('w1'), tests.id('d1'), tests.id('member'), null::timestamptz) $$,
    'the request names the entry''s workspace and device and who asked, unclaimed'
);
select results_eq(
    $$ select topic, event, payload ->> 'request_id' from realtime.messages where event = 'resend-request' order by topic $$,
    format(
        $$ values ('proxy-control:%s', 'resend-request', %L), ('proxy-control:%s', 'resend-request', %L) $$,
        least(tests.id('w1')::text, tests.id('w2')::text),
        (select id::text from public.resend_requests where workspace_id = least(tests.id('w1'), tests.id('w2'))),
        greatest(tests.id('w1')::text, tests.id('w2')::text),
        (select id::text from public.resend_requests where workspace_id = greatest(tests.id('w1'), tests.id('w2')))
    ),
    'each wake-up goes to its own workspace''s topic only, naming its request'
);

-- who reads and writes the requests
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), 'public.resend_requests')
from (
    values
    ('viewer', $$ select 1 from public.resend_requests where id = {req1} $$, 'rows=1', 'breakpoints:view reads w1''s requests'),
    ('outsider', $$ select 1 from public.resend_requests where id = {req1} $$, 'rows=0', 'another workspace does not'),
    ('nocaps', 'select 1 from public.resend_requests', 'rows=0', 'without breakpoints:view nothing'),
    ('device:d1', $$ select 1 from public.resend_requests where id = {req1} $$, 'rows=1', 'the capturing device reads its own'),
    ('device:d3', 'select 1 from public.resend_requests', 'rows=0', 'another device of the workspace reads none'),
    ('device:d2', $$ select 1 from public.resend_requests where id = {req1} $$, 'rows=0', 'nor a device of another workspace'),
    ('anon', 'select 1 from public.resend_requests', 'error=42501', 'anon reads none'),
    (
        'member', $$ insert into public.resend_requests (workspace_id, device_uuid, entry_id, captured_at)
                    values ({w1}, {d1}, {entry1}, now()) returning 1 $$,
        'error=42501', 'a member cannot forge a request around resend_entry'
    ),
    ('device:d1', $$ update public.resend_requests set claimed_at = null returning 1 $$, 'error=42501', 'a device cannot rewrite one'),
    ('admin', $$ delete from public.resend_requests returning 1 $$, 'error=42501', 'nor can an admin delete one')
) as v (who, stmt, expected, label);

-- claiming: the capturing device only, once, with the stored request from the database
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), 'public.resend_requests')
from (
    values
    ('device:d3', 'select * from public.claim_resend_requests()', 'rows=0', 'another device of w1 claims nothing'),
    ('member', 'select * from public.claim_resend_requests()', 'error=42501', 'a user cannot claim'),
    ('anon', 'select * from public.claim_resend_requests()', 'error=42501', 'anon cannot claim'),
    ('device:d_unpaired', 'select * from public.claim_resend_requests()', 'error=42501', 'an unpaired device cannot claim')
) as v (who, stmt, expected, label);
select results_eq(
    $$ select tests.result('device:d1', 'select to_jsonb(c) from public.claim_resend_requests() as c') $$,
    format(
        $$ values (jsonb_build_object('request_id', %L, 'entry_id', %L, 'method', 'POST', 'scheme', 'https',
                    'host', 'api.example.com', 'port', null, 'path', '/v1/orders', 'query', null,
                    'request_headers', '[["x-a", "1"]]'::jsonb, 'request_body', '\x7b7d')) $$,
        tests.id('req1'), tests.id('entry1')
    ),
    'd1 claims its request and gets the stored request to replay'
);
select isnt(
    (select claimed_at from public.resend_requests where id = tests.id('req1')), null, 'the request is marked claimed'
);
select tests.attempt(
    'device:d1', 'select * from public.claim_resend_requests()', 'rows=0', 'a second claim finds nothing: a resend runs once'
);
select tests.attempt(
    'device:d2', 'select * from public.claim_resend_requests()', 'rows=1', 'd2 claims w2''s request, in its own workspace'
);
insert into public.resend_requests (id, workspace_id, device_uuid, entry_id, captured_at, requested_at)
select
    tests.id('stale') as id,
    tests.id('w1') as workspace_id,
    tests.id('d1') as device_uuid,
    e.id as entry_id,
    e.captured_at,
    now() - interval '6 minutes' as requested_at
from public.entries as e where e.id = tests.id('entry1');
select tests.attempt(
    'device:d1', 'select * from public.claim_resend_requests()', 'rows=0',
    'a request nobody claimed within 5 minutes lapses'
);

-- resolutions: the device reads the outcome and the edits from the row, under its own token
insert into public.breakpoint_events (id, workspace_id, device_uuid, flow_id, phase)
values (tests.id('ev1'), tests.id('w1'), tests.id('d1'), 'flow-1', 'request');
select tests.attempt(
    'member', $$ select public.continue_breakpoint({ev1}, 'edit', '{"headers": {"x-edited": "yes"}}') $$, 'rows=1',
    'member edits the paused flow'
);
select is(
    tests.result('device:d1', $$ select jsonb_build_object('active', active, 'outcome', outcome, 'edits', edits)
                                 from public.breakpoint_events where id = {ev1} $$),
    '{"active": false, "outcome": "edited", "edits": {"headers": {"x-edited": "yes"}}}'::jsonb,
    'the capturing device reads the outcome and the edits from the row'
);
select tests.attempt(
    'device:d2', $$ select 1 from public.breakpoint_events where id = {ev1} $$, 'rows=0',
    'a device of another workspace cannot read them'
);
select is(
    (select payload - 'id' from realtime.messages where event = 'breakpoint-continue'),
    jsonb_build_object('event_id', tests.id('ev1'), 'device_uuid', tests.id('d1'), 'flow_id', 'flow-1'),
    'the wake-up carries ids only: no action, no edits'
);
select is(
    (select topic from realtime.messages where event = 'breakpoint-continue'), 'proxy-control:' || tests.id('w1'),
    'on the workspace''s own topic'
);
select is_empty(
    $$ select 1 from realtime.messages where topic = 'proxy-control' $$, 'nothing is sent on the retired proxy-control'
);

select * from finish();
rollback;
