-- Breakpoint rules are published on breakpoints:<workspace_id> (received with breakpoints:view there; admins:
-- every workspace); a service group's agent links on service_groups:all; a paused flow may carry the holding
-- proxy's deadline (expires_at), never one before its pause.
begin;
select plan(15);
select tests.make_world();
select tests.remember(n, gen_random_uuid()) from unnest(array['rule1', 'ev1', 'ev2']) as n;

select
    is(
        tests.can_receive(who, topic), expected,
        format('%s %s receive on %s', who, case when expected then 'may' else 'may not' end, topic)
    )
from (
    values
    ('member', 'breakpoints:{w1}', true), ('viewer', 'breakpoints:{w1}', true), ('admin', 'breakpoints:{w2}', true),
    ('nocaps', 'breakpoints:{w1}', false), ('outsider', 'breakpoints:{w1}', false), ('device:d1', 'breakpoints:{w1}', false),
    ('anon', 'breakpoints:{w1}', false)
) as v (who, topic, expected);
select is(tests.can_send('admin', tests.t('breakpoints:{w1}'), 'INSERT'), false, 'nobody sends on breakpoints:<workspace_id>');

-- a rule's life, on its own workspace's topic only
delete from realtime.messages;
insert into public.breakpoints (id, workspace_id, host_pattern) values (tests.id('rule1'), tests.id('w1'), 'api.example.com');
update public.breakpoints set enabled = false where id = tests.id('rule1');
delete from public.breakpoints where id = tests.id('rule1');
select results_eq(
    $$ select event, coalesce(nullif(payload -> 'record', 'null'), payload -> 'old_record') ->> 'host_pattern', private
       from realtime.messages where topic = 'breakpoints:' || tests.id('w1')::text
       order by array_position(array['INSERT', 'UPDATE', 'DELETE'], event) $$,
    $$ values ('INSERT', 'api.example.com', true), ('UPDATE', 'api.example.com', true), ('DELETE', 'api.example.com', true) $$,
    'a rule added, switched off and deleted: three private messages on its workspace''s topic'
);
select is_empty(
    $$ select 1 from realtime.messages where topic = 'breakpoints:' || tests.id('w2')::text $$,
    'another workspace hears nothing of it'
);

-- a group's agents, on service_groups:all
delete from realtime.messages;
select tests.authenticate_as('admin');
select public.set_service_group_agents(tests.id('group1'), array[tests.id('agent2'), tests.id('agent1')]);
reset role;
select ok(
    exists (
        select from realtime.messages
        where
            topic = 'service_groups:all' and payload ->> 'table' = 'service_group_agents'
            and payload -> 'record' ->> 'agent_id' = tests.id('agent2')::text
            and (payload -> 'record' ->> 'is_primary')::boolean
    ),
    'setting a group''s agents publishes its links on service_groups:all'
);

-- a paused flow's deadline: the device writes it, and it cannot come before the pause
select tests.attempt(
    'device:d1',
    $$ insert into public.breakpoint_events (id, workspace_id, device_uuid, flow_id, phase, paused_at, expires_at)
       values ({ev1}, {w1}, {d1}, 'flow-1', 'request', now(), now() + interval '60 seconds') returning 1 $$,
    'rows=1', 'a proxy device records when the flow it holds will go on by itself'
);
select tests.attempt(
    'device:d1',
    $$ insert into public.breakpoint_events (id, workspace_id, device_uuid, flow_id, phase, paused_at, expires_at)
       values ({ev2}, {w1}, {d1}, 'flow-2', 'request', now(), now() - interval '1 second') returning 1 $$,
    'error=23514', 'but never a deadline before the pause'
);
select is(
    (select expires_at - paused_at from public.breakpoint_events where id = tests.id('ev1')), interval '60 seconds',
    'the deadline is stored as written'
);
select tests.attempt(
    'member', $$ select 1 from public.breakpoint_events where id = {ev1} and expires_at is not null $$,
    'rows=1', 'and a member of the workspace reads it'
);

select * from finish();
rollback;
