-- Retention: whole partitions past every workspace's retention are dropped, shorter retentions pruned by delete,
-- and nothing else is touched; the report says what was removed.
begin;
select plan(10);
select tests.make_world();
update public.workspaces set retention_days = 7 where id = tests.id('w1');
update public.workspaces set retention_days = 2 where id = tests.id('w2');
select count(*) from private.ensure_entry_partitions((now() at time zone 'UTC')::date - 12, (now() at time zone 'UTC')::date);

-- ages in days: w1 keeps 7, w2 keeps 2
insert into public.entries (workspace_id, device_uuid, source, method, host, captured_at)
select
    tests.id(ws) as workspace_id,
    tests.id(dev) as device_uuid,
    'proxy' as source,
    'GET' as method,
    format('%s-%s.example.com', ws, age) as host,
    now() - make_interval(days => age) as captured_at
from (values ('w1', 'd1', 10), ('w1', 'd1', 5), ('w1', 'd1', 1), ('w2', 'd2', 10), ('w2', 'd2', 5), ('w2', 'd2', 1))
    as v (ws, dev, age);
insert into public.entries (workspace_id, device_uuid, source, method, host, captured_at)
values (tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'ancient.example.com', now() - interval '400 days');
select is(
    (select tableoid::regclass::text from public.entries where host = 'ancient.example.com'), 'private.entries_default',
    'a row far in the past waits in the default partition'
);

create temporary table report on commit drop as select private.maintain_entries() as r;

select is_empty(
    $$ select host from public.entries where host in ('w1-10.example.com', 'w2-10.example.com', 'ancient.example.com') $$,
    'rows older than every workspace''s retention are gone'
);
select results_eq(
    $$ select host from public.entries where host like 'w%.example.com' order by host $$,
    $$ values ('w1-1.example.com'), ('w1-5.example.com'), ('w2-1.example.com') $$,
    'w1 keeps 7 days, w2 keeps 2: exactly these rows remain'
);
select ok(
    (select r -> 'dropped_partitions' ? ('entries_' || to_char((now() at time zone 'UTC')::date - 10, 'YYYYMMDD')) from report),
    'the partition ten days back was dropped whole'
);
select ok(
    to_regclass('private.entries_' || to_char((now() at time zone 'UTC')::date - 10, 'YYYYMMDD')) is null,
    'and is really gone'
);
select isnt(
    to_regclass('private.entries_' || to_char((now() at time zone 'UTC')::date - 5, 'YYYYMMDD')), null,
    'a partition inside the longest retention is kept'
);
select is((select (r ->> 'deleted_rows')::integer from report), 2, 'two rows were deleted (w2''s 5-day row and the ancient one)');
select ok(
    (select jsonb_array_length(r -> 'dropped_partitions') >= 5 from report), 'the report lists every dropped partition'
);
select isnt(
    to_regclass('private.entries_' || to_char((now() at time zone 'UTC')::date + 7, 'YYYYMMDD')), null,
    'partitions a week ahead exist'
);
select tests.attempt('admin', 'select private.maintain_entries()', 'error=42501', 'nobody but the database runs maintenance');

select * from finish();
rollback;
