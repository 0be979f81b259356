-- A stored body's size never contradicts the body: a client may say it was larger (it truncated), never smaller.
begin;
select plan(6);
select tests.make_world();

create function pg_temp.ingest(host text, extra jsonb) returns jsonb language sql as $$
    select tests.result('device:d1', format(
        'select public.ingest_entries(%L::jsonb)',
        jsonb_build_array(jsonb_build_object(
            'method', 'POST', 'host', host,
            'request_body_b64', encode('hello'::bytea, 'base64'),
            'response_body_b64', encode('0123456789'::bytea, 'base64')
        ) || extra)
    ))
$$;
create function pg_temp.sizes(which text) returns table (req bigint, req_cut boolean, res bigint, res_cut boolean)
language sql as $$
    select e.request_body_size, e.request_body_truncated, e.response_body_size, e.response_body_truncated
    from public.entries as e where e.host = which
$$;

-- as device d1: sizes below the bytes that arrived
select is(
    pg_temp.ingest('small.example.com', '{"request_body_size": 1, "response_body_size": 0}') -> 'inserted', '1'::jsonb,
    'd1 stores an entry that claims its bodies were smaller than they are'
);
select results_eq(
    $$ select * from pg_temp.sizes('small.example.com') $$,
    $$ values (5::bigint, false, 10::bigint, false) $$,
    'sizes below the bodies are replaced by the bodies'' lengths'
);

-- as device d1: a body the client truncated before sending keeps its larger original size
select pg_temp.ingest('cut.example.com', '{"response_body_size": 5000000, "response_body_truncated": true}');
select results_eq(
    $$ select * from pg_temp.sizes('cut.example.com') $$,
    $$ values (5::bigint, false, 5000000::bigint, true) $$,
    'a larger original size (a body truncated by the client) is kept with its flag'
);

-- as device d1: no size claimed
select pg_temp.ingest('plain.example.com', '{}');
select results_eq(
    $$ select * from pg_temp.sizes('plain.example.com') $$,
    $$ values (5::bigint, false, 10::bigint, false) $$,
    'without a claimed size the body''s length is stored'
);

-- a negative size without a body is still refused by the table, row by row
select is(
    pg_temp.ingest(
        'negative.example.com', '{"request_body_b64": null, "response_body_b64": null, "response_body_size": -1}'
    ) -> 'inserted', '0'::jsonb,
    'a negative size is not stored'
);
select is_empty(
    $$ select 1 from public.entries where host = 'negative.example.com' $$, 'nothing of the refused row landed'
);

select * from finish();
rollback;
