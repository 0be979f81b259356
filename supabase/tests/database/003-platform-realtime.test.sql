-- Platform layer: realtime.messages, send() and broadcast_changes()
-- (https://supabase.com/docs/guides/realtime/broadcast).
begin;
select plan(37);

select is_partitioned('realtime', 'messages', 'realtime.messages is partitioned');
select ok(
    (select relrowsecurity from pg_catalog.pg_class where oid = 'realtime.messages'::regclass),
    'realtime.messages has row-level security enabled'
);
select col_is_pk('realtime', 'messages', array['id', 'inserted_at'], 'messages are keyed by (id, inserted_at)');
select isnt(
    to_regclass('realtime.messages_' || to_char(localtimestamp, 'YYYY_MM_DD')), null, 'today has a partition'
);
select isnt(
    to_regclass('realtime.messages_' || to_char(localtimestamp + interval '3 days', 'YYYY_MM_DD')), null,
    'three days ahead have partitions'
);
select has_function('realtime', 'topic', '{}'::name[], 'realtime.topic() exists');
select volatility_is('realtime', 'topic', '{}'::name[], 'stable', 'realtime.topic() is stable');
select function_returns(
    'realtime', 'send', array['jsonb', 'text', 'text', 'boolean'], 'void', 'realtime.send has the exact signature'
);
select function_returns(
    'realtime', 'send_binary', array['bytea', 'text', 'text', 'boolean'], 'void',
    'realtime.send_binary has the exact signature'
);
select function_returns(
    'realtime', 'broadcast_changes', array['text', 'text', 'text', 'text', 'text', 'record', 'record', 'text'], 'void',
    'realtime.broadcast_changes has the exact signature'
);
select table_privs_are(
    'realtime', 'messages', 'authenticated', array['SELECT', 'INSERT', 'UPDATE'],
    'authenticated may select, insert and update messages (policies decide which)'
);

-- send()
select realtime.send('{"a": 1}', 'greeting', 'platform:send');
select results_eq(
    $$ select topic, event, extension, private, payload ->> 'a', (payload ->> 'id')::uuid = id
       from realtime.messages where topic = 'platform:send' $$,
    $$ values ('platform:send', 'greeting', 'broadcast', true, '1', true) $$,
    'send writes one private broadcast whose payload carries the message id'
);
select is(realtime.topic(), 'platform:send', 'send sets realtime.topic for the insert policies');
select realtime.send('{"id": "mine"}', 'greeting', 'platform:public', false);
select results_eq(
    $$ select payload ->> 'id', private from realtime.messages where topic = 'platform:public' $$,
    $$ values ('mine', false) $$,
    'send keeps a payload''s own id and honours private = false'
);
select lives_ok(
    $$ select realtime.send('{}', 'greeting', null) $$, 'a send that cannot be stored only warns'
);
select is_empty(
    $$ select 1 from realtime.messages where event = 'greeting' and topic is null $$, 'and stores nothing'
);
select realtime.send_binary('\x0102'::bytea, 'blob', 'platform:binary');
select results_eq(
    $$ select binary_payload, payload is null from realtime.messages where topic = 'platform:binary' $$,
    $$ values ('\x0102'::bytea, true) $$,
    'send_binary stores the bytes and no JSON payload'
);

-- broadcast_changes() from a row trigger, as applications write it
create table public.platform_broadcast_probe (id integer primary key, name text);
create function public.platform_broadcast_probe_changed() returns trigger
language plpgsql as $$
begin
    perform realtime.broadcast_changes(
        'probe:' || coalesce(new.id, old.id), tg_op, tg_op, tg_table_name, tg_table_schema, new, old
    );
    return null;
end;
$$;
create trigger platform_broadcast_probe_changed after insert or update or delete on public.platform_broadcast_probe
for each row execute function public.platform_broadcast_probe_changed();
insert into public.platform_broadcast_probe values (1, 'a');
update public.platform_broadcast_probe set name = 'b';
delete from public.platform_broadcast_probe;

select is(
    (
        select array(select jsonb_object_keys(payload) order by 1) from realtime.messages
        where topic = 'probe:1' and event = 'INSERT'
    ),
    array['id', 'old_record', 'operation', 'record', 'schema', 'table'],
    'the envelope has exactly record, old_record, operation, table, schema and the message id'
);
select results_eq(
    $$ select payload -> 'record', payload -> 'old_record', payload ->> 'operation', payload ->> 'table',
              payload ->> 'schema', private
       from realtime.messages where topic = 'probe:1' and event = 'INSERT' $$,
    $$ values ('{"id": 1, "name": "a"}'::jsonb, 'null'::jsonb, 'INSERT', 'platform_broadcast_probe', 'public', true) $$,
    'an INSERT carries the new row and a null old_record, on a private channel'
);
select results_eq(
    $$ select payload -> 'record', payload -> 'old_record' from realtime.messages
       where topic = 'probe:1' and event = 'UPDATE' $$,
    $$ values ('{"id": 1, "name": "b"}'::jsonb, '{"id": 1, "name": "a"}'::jsonb) $$,
    'an UPDATE carries the new and the old row'
);
select results_eq(
    $$ select payload -> 'record', payload -> 'old_record' from realtime.messages
       where topic = 'probe:1' and event = 'DELETE' $$,
    $$ values ('null'::jsonb, '{"id": 1, "name": "b"}'::jsonb) $$,
    'a DELETE carries a null record and the old row'
);
select throws_ok(
    $$ select realtime.broadcast_changes('t', 'e', 'INSERT', 'x', 'public', null::record, null::record, 'STATEMENT') $$,
    'P0001', 'Failed to process the row: function can only be triggered for each row, not for each statement',
    'broadcast_changes refuses statement-level use'
);
select throws_ok(
    $$ select realtime.broadcast_changes('t', 'e', 'TRUNCATE', 'x', 'public', null::record, null::record) $$,
    'P0001', 'Failed to process the row: Unexpected operation type: TRUNCATE',
    'broadcast_changes refuses operations other than INSERT, UPDATE and DELETE'
);

-- without policies for a topic, nobody but the service role sees or sends on it
insert into realtime.messages (topic, extension, event, payload, private)
values ('platform:secret', 'broadcast', 'x', '{}', true);
select tests.create_user('carol');
select tests.clear_authentication();
select is_empty(
    $$ select 1 from realtime.messages where topic = 'platform:secret' $$, 'anon reads no message of an unknown topic'
);
select throws_ok(
    $$ insert into realtime.messages (topic, extension) values ('platform:secret', 'broadcast') $$, '42501', null,
    'anon cannot send on an unknown topic'
);
select tests.authenticate_as('carol');
select is_empty(
    $$ select 1 from realtime.messages where topic = 'platform:secret' $$,
    'a signed-in user reads no message of an unknown topic'
);
select throws_ok(
    $$ insert into realtime.messages (topic, extension) values ('platform:secret', 'broadcast') $$, '42501', null,
    'a signed-in user cannot send on an unknown topic'
);
select throws_ok(
    $$ select realtime.maintain_partitions() $$, '42501', null, 'a signed-in user cannot run partition maintenance'
);
select tests.authenticate_as_service_role();
select isnt_empty(
    $$ select 1 from realtime.messages where topic = 'platform:secret' $$, 'the service role reads every message'
);
reset role;
select results_eq(
    $$ select count(*)::integer from realtime.messages where topic = 'platform:secret' $$, $$ values (1) $$,
    'the refused sends stored nothing'
);

-- partitions: a day without one lands in the default, and maintenance moves it into its own day
insert into realtime.messages (topic, extension, payload, inserted_at)
values ('platform:later', 'broadcast', '{}', localtimestamp + interval '10 days');
select is(
    (select tableoid::regclass::text from realtime.messages where topic = 'platform:later'),
    'realtime.messages_default', 'a message for a day without a partition is kept in the default partition'
);
select ok(
    (select count(*) > 0 from realtime.maintain_partitions(12) where action = 'created'),
    'maintenance creates the missing days'
);
select is(
    (select tableoid::regclass::text from realtime.messages where topic = 'platform:later'),
    'realtime.messages_' || to_char(localtimestamp + interval '10 days', 'YYYY_MM_DD'),
    'and moves the kept message into its day'
);
insert into realtime.messages (topic, extension, payload, inserted_at)
values ('platform:old', 'broadcast', '{}', localtimestamp - interval '5 days');
select is_empty(
    $$ select 1 from realtime.maintain_partitions() where action = 'created' $$,
    'a second run has nothing to create'
);
select is_empty(
    $$ select 1 from realtime.messages where topic = 'platform:old' $$,
    'and messages older than 72 hours are gone'
);
select isnt(
    to_regclass('realtime.messages_' || to_char(localtimestamp - interval '1 day', 'YYYY_MM_DD')), null,
    'yesterday''s partition is kept for replay'
);

select is_empty(
    $$ select a.attrelid::regclass from pg_catalog.pg_attribute as a
       where a.attname = 'payload' and a.attcompression <> 'l'
       and (a.attrelid = 'realtime.messages'::regclass
            or a.attrelid in (select i.inhrelid from pg_catalog.pg_inherits as i where i.inhparent = 'realtime.messages'::regclass)) $$,
    'message payloads are compressed with lz4 in the parent and every partition'
);

select * from finish();
rollback;
