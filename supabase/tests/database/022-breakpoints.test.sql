-- Breakpoints: rules, paused flows, continue/edit/abort, time-outs and resends, and who may do each.
begin;
select plan(44);
select tests.make_world();
select tests.remember(n, gen_random_uuid()) from unnest(array['rule_all', 'rule_d2', 'ev1', 'ev2', 'ev3', 'ev_w2', 'entry1']) as n;
insert into public.breakpoints (id, workspace_id, device_uuid, host_pattern) values
(tests.id('rule_all'), tests.id('w1'), null, '*.example.com'), (tests.id('rule_d2'), tests.id('w2'), tests.id('d2'), '*');
insert into public.entries (id, workspace_id, device_uuid, source, method, host)
values (tests.id('entry1'), tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'api.example.com');

-- rules
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), watched::regclass)
from (
    values
    ('viewer', 'select 1 from public.breakpoints', 'rows=1', 'breakpoints:view reads the rules of the workspace', null),
    ('nocaps', 'select 1 from public.breakpoints', 'rows=0', 'without it nothing', null),
    ('outsider', $$ select 1 from public.breakpoints where id = {rule_all} $$, 'rows=0', 'not another workspace''s', null),
    ('device:d1', 'select 1 from public.breakpoints', 'rows=1', 'a device reads the rules that apply to it', null),
    ('device:d2', $$ select 1 from public.breakpoints where id = {rule_d2} $$, 'rows=1', 'including its own device rules', null),
    ('device:d1', $$ select 1 from public.breakpoints where id = {rule_d2} $$, 'rows=0', 'not another workspace''s', null),
    ('anon', 'select 1 from public.breakpoints', 'error=42501', 'anon reads no rule', null),
    (
        'member', $$ insert into public.breakpoints (workspace_id, phase, method, host_pattern) values ({w1}, 'response', 'POST', 'api.example.com') returning 1 $$,
        'rows=1', 'breakpoints:edit adds a rule', null
    ),
    (
        'viewer', $$ insert into public.breakpoints (workspace_id, host_pattern) values ({w1}, '*') returning 1 $$,
        'error=42501', 'breakpoints:view alone cannot', 'public.breakpoints'
    ),
    (
        'member', $$ insert into public.breakpoints (workspace_id, host_pattern) values ({w2}, '*') returning 1 $$,
        'error=42501', 'nor in another workspace', 'public.breakpoints'
    ),
    ('member', $$ update public.breakpoints set enabled = false where id = {rule_all} returning 1 $$, 'rows=1', 'a rule is disabled', null),
    ('viewer', $$ delete from public.breakpoints where id = {rule_all} returning 1 $$, 'rows=0', 'a viewer deletes nothing', 'public.breakpoints'),
    ('device:d1', $$ update public.breakpoints set enabled = true returning 1 $$, 'error=42501', 'a device cannot change rules', 'public.breakpoints')
) as v (who, stmt, expected, label, watched);

-- paused flows
delete from realtime.messages;
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), watched::regclass)
from (
    values
    (
        'device:d1', $$ insert into public.breakpoint_events (id, breakpoint_id, workspace_id, device_uuid, flow_id, phase, snapshot)
                    values ({ev1}, {rule_all}, {w1}, {d1}, 'flow-1', 'request', '{"method": "GET"}'),
                           ({ev2}, {rule_all}, {w1}, {d1}, 'flow-2', 'request', '{}'),
                           ({ev3}, {rule_all}, {w1}, {d1}, 'flow-3', 'request', '{}') returning 1 $$,
        'rows=3', 'a device records its paused flows', null
    ),
    (
        'device:d1', $$ insert into public.breakpoint_events (workspace_id, device_uuid, flow_id, phase) values ({w1}, {d3}, 'f', 'request') returning 1 $$,
        'error=42501', 'but not for another device', 'public.breakpoint_events'
    ),
    (
        'device:d2', $$ insert into public.breakpoint_events (id, workspace_id, device_uuid, flow_id, phase) values ({ev_w2}, {w2}, {d2}, 'f', 'request') returning 1 $$,
        'rows=1', 'd2 records one in w2', null
    ),
    (
        'member', $$ insert into public.breakpoint_events (workspace_id, device_uuid, flow_id, phase) values ({w1}, {d1}, 'f', 'request') returning 1 $$,
        'error=42501', 'a user cannot fake a paused flow', 'public.breakpoint_events'
    ),
    ('viewer', 'select 1 from public.breakpoint_events', 'rows=3', 'breakpoints:view sees the workspace''s paused flows', null),
    ('outsider', $$ select 1 from public.breakpoint_events where id = {ev1} $$, 'rows=0', 'another workspace does not', null),
    (
        'member', $$ update public.breakpoint_events set active = false, outcome = 'continued' returning 1 $$, 'error=42501',
        'flows are resolved only through continue_breakpoint', 'public.breakpoint_events'
    )
) as v (who, stmt, expected, label, watched);
select results_eq(
    format($$ select count(*)::integer, min(event), bool_and(payload -> 'record' ->> 'active' = 'true')
              from realtime.messages where topic = 'ws:%s' $$, tests.id('w1')),
    $$ values (3, 'INSERT', true) $$,
    'each active paused flow is published on ws:<workspace>'
);

-- resolving
delete from realtime.messages;
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), 'public.breakpoint_events')
from (
    values
    ('viewer', $$ select public.continue_breakpoint({ev1}, 'continue') $$, 'error=42501', 'breakpoints:view cannot resolve'),
    ('outsider', $$ select public.continue_breakpoint({ev1}, 'continue') $$, 'error=PT404', 'another workspace''s flow is not found'),
    ('anon', $$ select public.continue_breakpoint({ev1}, 'continue') $$, 'error=42501', 'anon cannot resolve'),
    ('device:d1', $$ select public.continue_breakpoint({ev1}, 'continue') $$, 'error=42501', 'the device cannot resolve its own flow'),
    ('member', $$ select public.continue_breakpoint({ev1}, 'skip') $$, 'error=22023', 'an unknown action is refused'),
    ('member', $$ select public.continue_breakpoint({ev2}, 'edit') $$, 'error=22023', 'an edit needs its edits')
) as v (who, stmt, expected, label);
select tests.attempt('member', $$ select public.continue_breakpoint({ev1}, 'continue') $$, 'rows=1', 'member continues flow 1');
select tests.attempt(
    'member', $$ select public.continue_breakpoint({ev2}, 'edit', '{"headers": {"x-debug": "1"}}') $$, 'rows=1',
    'member edits flow 2'
);
select tests.attempt('admin', $$ select public.continue_breakpoint({ev3}, 'abort') $$, 'rows=1', 'an admin aborts flow 3');
select tests.attempt('member', $$ select public.continue_breakpoint({ev1}, 'abort') $$, 'error=PT409', 'a resolved flow cannot be resolved again');
select results_eq(
    $$ select flow_id, active, outcome, edits, resolved_by is not null from public.breakpoint_events
       where workspace_id = tests.id('w1') order by flow_id $$,
    $$ values ('flow-1', false, 'continued', null::jsonb, true), ('flow-2', false, 'edited', '{"headers": {"x-debug": "1"}}'::jsonb, true),
              ('flow-3', false, 'aborted', null, true) $$,
    'each flow records its outcome, edits and who resolved it'
);
select results_eq(
    $$ select payload ->> 'flow_id', payload ->> 'event_id' is not null, payload ? 'edits', private from realtime.messages
       where topic = 'proxy-control:' || tests.id('w1') and event = 'breakpoint-continue' order by payload ->> 'flow_id' $$,
    $$ values ('flow-1', true, false, true), ('flow-2', true, false, true), ('flow-3', true, false, true) $$,
    'each resolution wakes the proxy on proxy-control:<workspace>, once, with ids only; the refused ones never'
);
select is(
    (select count(*)::integer from realtime.messages where topic = 'ws:' || tests.id('w1') and event = 'UPDATE'), 3,
    'and each resolution is published on ws:<workspace>'
);

-- time-outs are the device's to record
select tests.attempt(
    'device:d2', $$ update public.breakpoint_events set active = false, outcome = 'continued' where id = {ev_w2} returning 1 $$,
    'error=42501', 'a device cannot mark its flow continued', 'public.breakpoint_events'
);
select tests.attempt(
    'device:d1', $$ update public.breakpoint_events set active = false, outcome = 'timed_out', resolved_at = now() where id = {ev_w2} returning 1 $$,
    'rows=0', 'nor time out another device''s flow', 'public.breakpoint_events'
);
select tests.attempt(
    'device:d2', $$ update public.breakpoint_events set active = false, outcome = 'timed_out', resolved_at = now() where id = {ev_w2} returning 1 $$,
    'rows=1', 'a device records its flow as timed out'
);
select tests.attempt(
    'outsider', $$ select public.continue_breakpoint({ev_w2}, 'continue') $$, 'error=PT409',
    'a timed-out flow cannot be continued'
);

-- resend
delete from realtime.messages;
select tests.attempt(who, stmt, expected, format('%s: %s', who, label))
from (
    values
    ('viewer', $$ select public.resend_entry({entry1}) $$, 'error=42501', 'breakpoints:view cannot resend'),
    ('outsider', $$ select public.resend_entry({entry1}) $$, 'error=PT404', 'another workspace''s entry is not found'),
    ('device:d1', $$ select public.resend_entry({entry1}) $$, 'error=42501', 'a device cannot ask for a resend'),
    ('member', $$ select public.resend_entry(gen_random_uuid()) $$, 'error=PT404', 'an unknown entry is not found'),
    ('member', $$ select public.resend_entry({entry1}) $$, 'rows=1', 'breakpoints:edit asks for a resend')
) as v (who, stmt, expected, label);
select results_eq(
    $$ select m.event, r.entry_id, r.device_uuid, r.requested_by, r.claimed_at
       from realtime.messages as m inner join public.resend_requests as r on r.id = (m.payload ->> 'request_id')::uuid
       where m.topic = 'proxy-control:' || tests.id('w1') $$,
    $$ values ('resend-request', tests.id('entry1'), tests.id('d1'), tests.id('member'), null::timestamptz) $$,
    'one resend-request wakes w1''s proxy and points at the recorded request: the entry, its device, who asked'
);

select * from finish();
rollback;
