-- Entries: who may write and read captured traffic; ingest_entries; the firehose; body caps.
begin;
select plan(55);
select tests.make_world();
select tests.remember('e1', gen_random_uuid());
select tests.remember('e2', gen_random_uuid());
insert into public.entries (id, workspace_id, device_uuid, source, method, host, path, status, request_headers)
values
(tests.id('e1'), tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'api.example.com', '/v1/me', 200, '[["Accept", "*/*"]]'),
(tests.id('e2'), tests.id('w2'), tests.id('d2'), 'proxy', 'POST', 'pay.example.com', '/charge', 402, '[]');
delete from realtime.messages;

-- reading: members with entries:view in their workspaces, admins everywhere, devices never
select tests.attempt(who, stmt, expected, format('%s: %s', who, label))
from (
    values
    ('anon', 'select 1 from public.entries', 'error=42501', 'anon reads no traffic'),
    ('member', 'select 1 from public.entries', 'rows=1', 'a member reads their workspace''s traffic only'),
    ('viewer', $$ select 1 from public.entries where id = {e1} $$, 'rows=1', 'a viewer (entries:view) reads it too'),
    ('nocaps', 'select 1 from public.entries', 'rows=0', 'without entries:view a member reads nothing'),
    ('stringy', 'select 1 from public.entries', 'rows=0', 'nor with a capability that is not exactly true'),
    ('outsider', $$ select 1 from public.entries where id = {e1} $$, 'rows=0', 'another workspace''s member does not see w1'),
    ('outsider', $$ select 1 from public.entries where id = {e2} $$, 'rows=1', 'but sees their own'),
    ('admin', 'select 1 from public.entries', 'rows=2', 'an admin reads every workspace'),
    ('service_role', 'select 1 from public.entries', 'rows=2', 'the service role reads everything'),
    ('device:d1', 'select 1 from public.entries', 'error=42501', 'a device can never read entries, not even its own'),
    ('device:d1', 'select id from public.entries', 'error=42501', 'not even their ids')
) as v (who, stmt, expected, label);

-- writing directly (PostgREST's POST /entries): nobody; a device writes through ingest_entries only, whose rows
-- the database builds (sizes, flags, times and source taken from the content and the credential, not the caller)
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), 'public.entries')
from (
    values
    (
        'device:d1', $$ insert into public.entries (workspace_id, device_uuid, source, method, host, response_body, response_body_size)
                    values ({w1}, {d1}, 'proxy', 'GET', 'x.com', '\x00ff', 1) returning 1 $$,
        'error=42501', 'a device cannot insert entries directly, not even its own'
    ),
    (
        'device:d1', $$ insert into public.entries (workspace_id, device_uuid, source, method, host) values ({w1}, {d3}, 'bmc', 'GET', 'x.com') returning 1 $$,
        'error=42501', 'but never as another device'
    ),
    (
        'device:d1', $$ insert into public.entries (workspace_id, device_uuid, source, method, host) values ({w2}, {d1}, 'proxy', 'GET', 'x.com') returning 1 $$,
        'error=42501', 'nor into another workspace'
    ),
    (
        'device:d_unpaired', $$ insert into public.entries (workspace_id, device_uuid, source, method, host) values ({w1}, {d_unpaired}, 'ios', 'GET', 'x.com') returning 1 $$,
        'error=42501', 'an unpaired device writes nothing'
    ),
    ('device:d1', $$ update public.entries set status = 500 returning 1 $$, 'error=42501', 'a device cannot update entries'),
    ('device:d1', $$ delete from public.entries returning 1 $$, 'error=42501', 'a device cannot delete entries'),
    (
        'admin', $$ insert into public.entries (workspace_id, device_uuid, source, method, host) values ({w1}, {d1}, 'proxy', 'GET', 'x.com') returning 1 $$,
        'error=42501', 'a user cannot insert traffic'
    ),
    ('admin', $$ update public.entries set status = 500 returning 1 $$, 'error=42501', 'even an admin cannot rewrite traffic'),
    ('member', $$ delete from public.entries returning 1 $$, 'error=42501', 'a member cannot delete traffic'),
    (
        'anon', $$ insert into public.entries (workspace_id, device_uuid, source, method, host) values ({w1}, {d1}, 'proxy', 'GET', 'x.com') returning 1 $$,
        'error=42501', 'anon cannot insert traffic'
    )
) as v (who, stmt, expected, label);

-- the firehose: exactly one message per insert statement, with every new entry and no headers or bodies
-- (the statement store_entries runs, as the definer)
insert into public.entries (workspace_id, device_uuid, source, method, host)
select
    tests.id('w1') as workspace_id,
    tests.id('d1') as device_uuid,
    'proxy' as source,
    'GET' as method,
    'h' || g || '.example.com' as host
from generate_series(1, 500) as g;
select results_eq(
    $$ select count(*)::integer, min(topic), min((payload ->> 'count')::integer), min(jsonb_array_length(payload -> 'rows')),
              bool_and(payload -> 'record' = 'null'::jsonb)
       from realtime.messages where event = 'INSERT' and payload ->> 'table' = 'entries' $$,
    format($$ values (1, 'ws:%s', 500, 500, true) $$, tests.id('w1')),
    'the 500-row statement published one message on ws:<workspace> carrying all 500 records'
);
select is_empty(
    $$ select 1 from realtime.messages as m, jsonb_array_elements(m.payload -> 'rows') as r
       where m.payload ->> 'table' = 'entries'
       and (m.payload -> 'columns' ?| array['request_headers', 'response_headers', 'request_body', 'response_body']
            or jsonb_array_length(r) <> jsonb_array_length(m.payload -> 'columns')) $$,
    'no firehose row carries headers or bodies: every row has exactly the listed columns'
);
select results_eq(
    $$ select m.payload -> 'columns' ->> 5, count(*)::integer, count(distinct r ->> 5)::integer
       from realtime.messages as m, jsonb_array_elements(m.payload -> 'rows') as r
       where m.payload ->> 'table' = 'entries' and r ->> 5 ~ '^h\d+\.example\.com$' group by 1 $$,
    $$ values ('host', 500, 500) $$,
    'each row lines up with the column names: the host column holds the hosts'
);
select ok(
    (select
        payload ->> 'operation' = 'INSERT' and payload -> 'old_record' = 'null'::jsonb and private
        and payload ->> 'schema' = 'public' and payload ->> 'id' = id::text
    from realtime.messages where payload ->> 'table' = 'entries'),
    'it is a private broadcast_changes INSERT envelope carrying its message id'
);
select is(
    (select count(*)::integer from realtime.messages where payload ->> 'table' = 'entries'), 1,
    'the refused inserts published nothing'
);
insert into public.entries (workspace_id, device_uuid, source, method, host) values (tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'one.example.com');
select is(
    (select payload -> 'record' ->> 'host' from realtime.messages where payload -> 'rows' -> 0 ->> 5 = 'one.example.com'),
    'one.example.com', 'a one-row statement also fills record, as broadcast_changes would'
);

-- ingest_entries: bad rows reported, good rows land, ids make retries idempotent
delete from realtime.messages;
select tests.remember('bin', '00000000-0000-4000-8000-0000000000a1');
create temporary table ingest_result on commit drop as
select tests.result('device:d1', $$ select public.ingest_entries(jsonb_build_array(
    jsonb_build_object('id', {e1}, 'method', 'get', 'host', 'API.Example.com', 'status', 200),
    jsonb_build_object('method', 'POST', 'host', 'upload.example.com', 'status', 'two hundred'),
    jsonb_build_object('id', {bin}, 'method', 'POST', 'host', 'upload.example.com', 'captured_at', '2026-01-01T10:00:00Z',
                       'request_headers', jsonb_build_object('Content-Type', 'image/png'),
                       'request_body_b64', encode('\x89504e470d0a1a0aff00'::bytea, 'base64'), 'status', 201,
                       'device_uuid', {d3}, 'workspace_id', {w2}),
    '"not an object"'::jsonb,
    jsonb_build_object('method', 'GET', 'host', 'feb.example.com', 'captured_at', '2026-02-30T10:00:00Z')
)) $$) as r;

select is((select r -> 'inserted' from ingest_result), '1'::jsonb, 'one new row landed (e1 already existed)');
select is((select r -> 'duplicates' from ingest_result), '1'::jsonb, 'the row whose id exists is a duplicate, not an error');
select is((select r -> 'rejected' from ingest_result), '3'::jsonb, 'three rows were rejected');
select results_eq(
    $$ select (x ->> 'index')::integer, x ->> 'error' from ingest_result, jsonb_array_elements(r -> 'errors') as x order by 1 $$,
    $$ values (1, 'status must be a whole number from 0 to 999'), (3, 'an entry is a JSON object'),
              (4, 'date/time field value out of range: "2026-02-30T10:00:00Z"') $$,
    'each refused row is reported with its index and the reason'
);
select is(
    (select array_agg(jsonb_typeof(x.id) order by x.n) from ingest_result as i, jsonb_array_elements(i.r -> 'ids') with ordinality as x (id, n)),
    array['string', 'null', 'string', 'null', 'null'], 'ids has one place per row: the id, or null when refused'
);
select is((select r -> 'ids' ->> 2 from ingest_result), tests.id('bin')::text, 'a given id is kept');
select results_eq(
    $$ select device_uuid, workspace_id, source, method, host, request_headers, request_body, request_body_size,
              request_body_truncated, captured_at
       from public.entries where id = tests.id('bin') $$,
    $$ values (tests.id('d1'), tests.id('w1'), 'proxy', 'POST', 'upload.example.com', '[["Content-Type", "image/png"]]'::jsonb,
               '\x89504e470d0a1a0aff00'::bytea, 10::bigint, false, '2026-01-01T10:00:00Z'::timestamptz) $$,
    'a binary body is kept byte for byte; device and workspace come from the credential, not the batch'
);
select is(
    (select tableoid::regclass::text from public.entries where id = tests.id('bin')), 'private.entries_default',
    'a day without a partition lands in the default partition, never lost'
);
select is(
    (select payload ->> 'count' from realtime.messages where payload ->> 'table' = 'entries' and topic like 'ws:%'), '1',
    'the batch published one message, for the one new row'
);
select is(
    (tests.result('device:d1', $$ select public.ingest_entries(jsonb_build_array(
        jsonb_build_object('id', {bin}, 'method', 'POST', 'host', 'upload.example.com', 'captured_at', '2026-01-01T10:00:00Z')
    )) $$) -> 'duplicates'), '1'::jsonb,
    'sending the same row again is a duplicate: a retried batch lands once'
);
select is(
    (select count(*)::integer from public.entries where id = tests.id('bin')), 1, 'and the row exists once'
);

-- a resent batch with new rows too: no refusal, the known ids are duplicates, the firehose keeps the batch's order
delete from realtime.messages;
create temporary table resend_result on commit drop as
select tests.result('device:d1', $$ select public.ingest_entries(jsonb_build_array(
    jsonb_build_object('method', 'GET', 'host', 'c.order.example.com'),
    jsonb_build_object('id', {bin}, 'method', 'POST', 'host', 'upload.example.com', 'captured_at', '2026-01-01T10:00:00Z'),
    jsonb_build_object('method', 'GET', 'host', 'a.order.example.com'),
    jsonb_build_object('id', {bin}, 'method', 'POST', 'host', 'upload.example.com', 'captured_at', '2026-01-01T10:00:00Z'),
    jsonb_build_object('method', 'GET', 'host', 'b.order.example.com', 'captured_at', '2020-01-01T00:00:00Z')
)) $$) as r;
select results_eq(
    $$ select (r ->> 'inserted')::integer, (r ->> 'duplicates')::integer, (r ->> 'rejected')::integer, r -> 'ids' ->> 1
       from resend_result $$,
    format($$ values (3, 2, 0, %L) $$, tests.id('bin')),
    'a batch that repeats a stored id (twice) stores the new rows and counts the repeats as duplicates'
);
select is(
    (
        select array_agg(x.r ->> 5 order by x.k)
        from realtime.messages as m, jsonb_array_elements(m.payload -> 'rows') with ordinality as x (r, k)
        where m.payload ->> 'table' = 'entries'
    ),
    array['c.order.example.com', 'a.order.example.com', 'b.order.example.com'],
    'the firehose carries the new rows in the order of the batch'
);
select is(
    (
        select array_agg(x.r ->> 0 order by x.k)
        from realtime.messages as m, jsonb_array_elements(m.payload -> 'rows') with ordinality as x (r, k)
        where m.payload ->> 'table' = 'entries'
    ),
    (select array[r -> 'ids' ->> 0, r -> 'ids' ->> 2, r -> 'ids' ->> 4] from resend_result),
    'rows given no id got one, and the ids answered are the ones stored'
);
delete from realtime.messages;
insert into public.entries (workspace_id, device_uuid, source, method, host, captured_at)
values
(tests.id('w2'), tests.id('d2'), 'proxy', 'GET', 'two.example.com', '2026-11-21T10:00:02Z'),
(tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'one-b.example.com', '2026-11-21T10:00:01Z'),
(tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'one-a.example.com', '2026-11-21T10:00:00Z');
select results_eq(
    $$ select topic, (payload ->> 'count')::integer, array(select r ->> 5 from jsonb_array_elements(payload -> 'rows') as r)
       from realtime.messages where payload ->> 'table' = 'entries' order by 2 desc $$,
    format(
        $$ values ('ws:%s', 2, array['one-a.example.com', 'one-b.example.com']), ('ws:%s', 1, array['two.example.com']) $$,
        tests.id('w1'), tests.id('w2')
    ),
    'a statement spanning two workspaces publishes one message to each, rows in capture order'
);

-- a refused row among many: the batch is split until each culprit is alone; the rest land, in order
delete from realtime.messages;
create temporary table split_result on commit drop as
select tests.result('device:d1', $$ select public.ingest_entries((
    select jsonb_agg(
        case g when 37 then jsonb_build_object('method', 'GET', 'host', 'split.example.com', 'port', 0)
            when 401 then jsonb_build_object('method', 'GET', 'host', 'split.example.com', 'response_body_size', -1)
            when 402 then jsonb_build_object('method', 'GET', 'host', 'split.example.com', 'request_body_b64', 'not base64!')
            else jsonb_build_object('method', 'GET', 'host', 'split.example.com', 'path', '/' || g,
                                    'captured_at', '2026-11-21 10:00:00')
        end order by g)
    from generate_series(0, 499) as g
)) $$) as r;
select results_eq(
    $$ select (r ->> 'inserted')::integer, (r ->> 'rejected')::integer, jsonb_array_length(r -> 'ids'),
              r -> 'errors' from split_result $$,
    $$ values (497, 3, 500, '[{"index": 37, "error": "port must be a whole number from 1 to 65535"},
                           {"index": 401, "error": "sizes must be whole numbers of bytes"},
                           {"index": 402, "error": "bodies are base64 strings"}]'::jsonb) $$,
    'three bad rows in 500 are each reported with the reason, in index order, and the other 497 land'
);
select is(
    (select array[r -> 'ids' -> 37, r -> 'ids' -> 401, r -> 'ids' -> 402] from split_result), array['null'::jsonb, 'null', 'null'],
    'the refused rows have no id'
);
select is(
    (select sum((payload ->> 'count')::integer)::integer from realtime.messages where payload ->> 'table' = 'entries'), 497,
    'the firehose carried every stored row once, over the few statements the split took'
);
select is(
    (select count(*)::integer from public.entries where host = 'split.example.com' and captured_at = '2026-11-21T10:00:00Z'), 497,
    'a timestamp without a zone is taken as UTC'
);

-- body caps
update public.settings_global set settings = settings || '{"body_cap_bytes": 4}';
select tests.result('device:d1', $$ select public.ingest_entries(jsonb_build_array(jsonb_build_object(
    'method', 'GET', 'host', 'big.example.com', 'response_body_b64', encode('0123456789'::bytea, 'base64')))) $$);
select results_eq(
    $$ select response_body, response_body_size, response_body_truncated from public.entries where host = 'big.example.com' $$,
    $$ values ('0123'::bytea, 10::bigint, true) $$,
    'a body over the cap is cut to the cap, with its original size and the truncation flag'
);

-- refusals of the RPC itself
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), 'public.entries')
from (
    values
    ('anon', $$ select public.ingest_entries('[]') $$, 'error=42501', 'anon cannot ingest'),
    ('admin', $$ select public.ingest_entries('[]') $$, 'error=42501', 'a user cannot ingest'),
    (
        'device:d_unpaired', $$ select public.ingest_entries('[{"method": "GET", "host": "a.com"}]') $$, 'error=42501',
        'an unpaired device cannot ingest'
    ),
    ('device:d1', $$ select public.ingest_entries('{"method": "GET"}') $$, 'error=22023', 'the batch must be an array'),
    (
        'device:d1', $$ select public.ingest_entries((select jsonb_agg('{}'::jsonb) from generate_series(1, 1001))) $$,
        'error=22023', 'a batch holds at most 1000 entries'
    ),
    ('member', $$ select private.store_entries('[]', 10) $$, 'error=42501', 'a user cannot call the inner batch store'),
    (
        'device:d1', $$ select public.ingest_entries('[{"method": "GET", "host": "a.com", "path": "/'' or 1=1; drop table public.entries; --"}]') $$,
        'rows=1', 'SQL in a value is stored as text, nothing more'
    )
) as v (who, stmt, expected, label);
select is(
    (select path from public.entries where host = 'a.com'), '/'' or 1=1; drop table public.entries; --',
    'the path was stored verbatim and the table is still there'
);

select * from finish();
rollback;
