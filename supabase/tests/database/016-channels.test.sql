-- Channel authorization, tested the way Realtime decides it: a probe row read (receive) or inserted (send)
-- under the caller's role and claims with realtime.topic set
-- (https://supabase.com/docs/guides/realtime/authorization).
begin;
select plan(90);
select tests.make_world();

select
    is(
        tests.can_receive(who, topic), expected,
        format('%s %s receive on %s', who, case when expected then 'may' else 'may not' end, topic)
    )
from (
    values
    -- ws:<workspace>: members with entries:view
    ('member', 'ws:{w1}', true), ('owner', 'ws:{w1}', true), ('viewer', 'ws:{w1}', true), ('admin', 'ws:{w1}', true),
    ('admin', 'ws:{w2}', true), ('nocaps', 'ws:{w1}', false), ('outsider', 'ws:{w1}', false), ('outsider', 'ws:{w2}', true),
    ('member', 'ws:{w2}', false), ('anon', 'ws:{w1}', false), ('device:d1', 'ws:{w1}', false),
    ('service_role', 'ws:{w1}', true),
    -- device:<uuid>: the owner, grants_all, the device itself
    ('owner', 'device:{d1}', true), ('admin', 'device:{d1}', true), ('device:d1', 'device:{d1}', true),
    ('member', 'device:{d1}', false), ('viewer', 'device:{d1}', false), ('outsider', 'device:{d1}', false),
    ('device:d2', 'device:{d1}', false), ('device:d3', 'device:{d1}', false), ('device:d_unpaired', 'device:{d_unpaired}', false),
    ('anon', 'device:{d1}', false), ('member', 'device:{d3}', true),
    -- devices:all and settings_device:all: every workspace's devices, admins only (051: devices:<workspace>)
    ('member', 'devices:all', false), ('viewer', 'devices:all', false), ('nocaps', 'devices:all', false),
    ('stringy', 'devices:all', false), ('device:d1', 'devices:all', false), ('anon', 'devices:all', false),
    ('viewer', 'settings_device:all', false), ('nocaps', 'settings_device:all', false), ('device:d1', 'settings_device:all', false),
    -- service_groups:all: services:view
    ('viewer', 'service_groups:all', true), ('nocaps', 'service_groups:all', false), ('device:d1', 'service_groups:all', false),
    -- settings:global: every signed-in user and paired device
    ('nocaps', 'settings:global', true), ('device:d1', 'settings:global', true), ('device:d3', 'settings:global', true),
    ('device:d_unpaired', 'settings:global', false), ('anon', 'settings:global', false),
    -- proxy-control:<workspace>: the workspace's proxy devices, breakpoints:edit there (admins: everywhere)
    ('device:d1', 'proxy-control:{w1}', true), ('device:d1', 'proxy-control:{w2}', false),
    ('device:d2', 'proxy-control:{w2}', true), ('device:d3', 'proxy-control:{w1}', false),
    ('device:d_unpaired', 'proxy-control:{w1}', false), ('member', 'proxy-control:{w1}', true),
    ('member', 'proxy-control:{w2}', false), ('outsider', 'proxy-control:{w1}', false),
    ('viewer', 'proxy-control:{w1}', false), ('admin', 'proxy-control:{w2}', true),
    ('member', 'proxy-control:not-a-uuid', false),
    -- the retired single proxy-control: no API role
    ('device:d1', 'proxy-control', false), ('member', 'proxy-control', false), ('admin', 'proxy-control', false),
    -- anything else: nobody but the service role
    ('admin', 'chat:lobby', false), ('member', 'ws:not-a-uuid', false), ('member', 'ws:', false),
    ('service_role', 'chat:lobby', true)
) as v (who, topic, expected);

select is(
    tests.can_receive('member', 'ws:' || upper(tests.id('w1')::text)), false,
    'a topic must spell its uuid as the database does (lowercase)'
);

select
    is(
        tests.can_send(who, topic, event), expected,
        format('%s %s send %s on %s', who, case when expected then 'may' else 'may not' end, event, topic)
    )
from (
    values
    -- device:<uuid>: commands from the owner and admins; the device only answers with cdp-result
    ('owner', 'device:{d1}', 'cdp-command', true), ('admin', 'device:{d1}', 'cdp-command', true),
    ('member', 'device:{d1}', 'cdp-command', false), ('viewer', 'device:{d1}', 'cdp-command', false),
    ('device:d1', 'device:{d1}', 'cdp-result', true), ('device:d1', 'device:{d1}', 'vpn-on', false),
    ('device:d1', 'device:{d1}', null, false), ('device:d2', 'device:{d1}', 'cdp-result', false),
    ('device:d_unpaired', 'device:{d_unpaired}', 'cdp-result', false), ('anon', 'device:{d1}', 'cdp-command', false),
    ('service_role', 'device:{d1}', 'unpair', true),
    -- proxy-control:<workspace>: breakpoints:edit there; the retired proxy-control: nobody
    ('member', 'proxy-control:{w1}', 'breakpoint-continue', true), ('admin', 'proxy-control:{w2}', 'resend-request', true),
    ('member', 'proxy-control:{w2}', 'resend-request', false), ('outsider', 'proxy-control:{w1}', 'breakpoint-continue', false),
    ('viewer', 'proxy-control:{w1}', 'breakpoint-continue', false),
    ('device:d1', 'proxy-control:{w1}', 'breakpoint-continue', false),
    ('anon', 'proxy-control:{w1}', 'breakpoint-continue', false),
    ('member', 'proxy-control', 'breakpoint-continue', false), ('admin', 'proxy-control', 'resend-request', false),
    -- database-only topics
    ('admin', 'ws:{w1}', 'INSERT', false), ('member', 'ws:{w1}', 'INSERT', false), ('admin', 'devices:all', 'INSERT', false),
    ('admin', 'settings:global', 'UPDATE', false), ('admin', 'service_groups:all', 'INSERT', false),
    ('device:d1', 'settings:global', 'UPDATE', false), ('service_role', 'ws:{w1}', 'INSERT', true),
    ('admin', 'chat:lobby', 'hello', false)
) as v (who, topic, event, expected);

-- the policies see only the row's own topic: without realtime.topic a user reads nothing at all
insert into realtime.messages (topic, extension, payload, private) values (tests.t('ws:{w1}'), 'broadcast', '{}', true);
select tests.attempt(
    'member', 'select 1 from realtime.messages', 'rows=0',
    'without realtime.topic set, even a member reads no message'
);

-- presence follows the receive rule
select tests.attempt(
    'device:d1', $$ insert into realtime.messages (topic, extension) values ('device:' || {d1}::text, 'presence') returning 1 $$,
    'rows=1', 'a device may track presence on its own channel'
);
select tests.attempt(
    'member', $$ insert into realtime.messages (topic, extension) values ('device:' || {d1}::text, 'presence') returning 1 $$,
    'error=42501', 'a member may not track presence on a device channel they cannot receive'
);

select * from finish();
rollback;
