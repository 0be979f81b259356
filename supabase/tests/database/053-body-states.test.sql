-- Each entry keeps why its bodies are what they are (request_body_state, response_body_state): a state sent is
-- stored, an absent one is worked out (truncated when cut, captured when a body came, none otherwise), and a
-- state that is not one of the seven is refused by index, in words, without losing the rest of the batch.
begin;
select plan(9);
select tests.make_world();

create function pg_temp.ingest(batch jsonb) returns jsonb language sql as $$
    select tests.result('device:d1', format('select public.ingest_entries(%L::jsonb)', batch))
$$;
create function pg_temp.states(which text)
returns table (req text, res text, req_cut boolean, res_cut boolean)
language sql as $$
    select e.request_body_state, e.response_body_state, e.request_body_truncated, e.response_body_truncated
    from public.entries as e where e.host = which
$$;

-- as device d1: every state as sent
select is(
    pg_temp.ingest((
        select
            jsonb_agg(jsonb_build_object(
                'method', 'GET', 'host', s || '.states.example.com',
                'request_body_state', 'none', 'response_body_state', s
            ))
        from unnest(array['captured', 'evicted', 'streamed', 'lost', 'skipped', 'none']) as s
    )) -> 'inserted', '6'::jsonb,
    'd1 stores one entry with each state'
);
select results_eq(
    $$ select e.host, e.response_body_state from public.entries as e where e.host like '%.states.example.com'
       order by e.host $$,
    $$ values ('captured.states.example.com', 'captured'), ('evicted.states.example.com', 'evicted'),
       ('lost.states.example.com', 'lost'), ('none.states.example.com', 'none'),
       ('skipped.states.example.com', 'skipped'), ('streamed.states.example.com', 'streamed') $$,
    'each state is stored as sent'
);

-- as device d1: no states sent
select pg_temp.ingest(jsonb_build_array(
    jsonb_build_object(
        'method', 'POST', 'host', 'bodies.example.com',
        'request_body_b64', encode('hello'::bytea, 'base64'), 'response_body_b64', ''
    ),
    jsonb_build_object('method', 'GET', 'host', 'nobody.example.com'),
    jsonb_build_object(
        'method', 'GET', 'host', 'clientcut.example.com',
        'response_body_b64', encode('0123'::bytea, 'base64'), 'response_body_size', 5000000,
        'response_body_truncated', true
    )
));
select results_eq(
    $$ select * from pg_temp.states('bodies.example.com') union all select * from pg_temp.states('nobody.example.com')
       union all select * from pg_temp.states('clientcut.example.com') $$,
    $$ values ('captured', 'captured', false, false), ('none', 'none', false, false),
       ('none', 'truncated', false, true) $$,
    'absent states: captured with a body (an empty one too), none without, truncated when the client cut it'
);

-- as device d1: a body over the cap, sent as captured, and a state of truncated without the flag
update public.settings_global set settings = settings || '{"body_cap_bytes": 4}';
select pg_temp.ingest(jsonb_build_array(
    jsonb_build_object(
        'method', 'GET', 'host', 'overcap.example.com', 'response_body_state', 'captured',
        'response_body_b64', encode('0123456789'::bytea, 'base64')
    ),
    jsonb_build_object(
        'method', 'GET', 'host', 'saidcut.example.com', 'response_body_state', 'truncated',
        'response_body_b64', encode('012'::bytea, 'base64')
    )
));
select results_eq(
    $$ select * from pg_temp.states('overcap.example.com') union all select * from pg_temp.states('saidcut.example.com') $$,
    $$ values ('none', 'truncated', false, true), ('none', 'truncated', false, true) $$,
    'a body the cap cut is truncated even when sent as captured, and the state truncated sets the flag'
);

-- as device d1: a bad state in the middle of a batch
select is(
    pg_temp.ingest(jsonb_build_array(
        jsonb_build_object('method', 'GET', 'host', 'good1.example.com', 'response_body_state', 'evicted'),
        jsonb_build_object('method', 'GET', 'host', 'bad.example.com', 'response_body_state', 'gone'),
        jsonb_build_object('method', 'GET', 'host', 'bad2.example.com', 'request_body_state', 7),
        jsonb_build_object('method', 'GET', 'host', 'good2.example.com')
    )) - 'ids',
    jsonb_build_object('inserted', 2, 'duplicates', 0, 'rejected', 2, 'errors', jsonb_build_array(
        jsonb_build_object(
            'index', 1, 'error',
            'response_body_state is one of captured, truncated, evicted, streamed, lost, skipped, none'
        ),
        jsonb_build_object(
            'index', 2, 'error',
            'request_body_state is one of captured, truncated, evicted, streamed, lost, skipped, none'
        )
    )),
    'a state outside the seven is refused by index, in words; the other rows land'
);
select results_eq(
    $$ select e.host from public.entries as e where e.host in ('good1.example.com', 'good2.example.com',
       'bad.example.com', 'bad2.example.com') order by e.host $$,
    $$ values ('good1.example.com'), ('good2.example.com') $$,
    'only the good rows of that batch are stored'
);

-- the table itself refuses a state outside the seven, and keeps nulls (rows stored before states were kept)
select throws_ok(
    $$ insert into public.entries (workspace_id, device_uuid, source, method, host, response_body_state)
       values (gen_random_uuid(), gen_random_uuid(), 'proxy', 'GET', 'x.example.com', 'gone') $$,
    '23514', null, 'the table''s check refuses an unknown state'
);
select lives_ok(
    $$ insert into public.entries (workspace_id, device_uuid, source, method, host)
       values (gen_random_uuid(), gen_random_uuid(), 'proxy', 'GET', 'old.example.com') $$,
    'a row without states (as before they were kept) is allowed'
);

-- a member with entries:view reads the states
select is(
    tests.result('member', $$ select e.response_body_state from public.entries as e
        where e.host = 'evicted.states.example.com' $$),
    '"evicted"'::jsonb,
    'a member reads the states'
);

select * from finish();
rollback;
