-- A device is seen when its traffic is stored: ingest_entries moves devices.last_seen_at, at most once per 30 s.
begin;
select plan(18);
select tests.make_world();
update public.devices set last_seen_at = null;
delete from realtime.messages;

create function pg_temp.last_seen(device text) returns timestamptz language sql as $$
    select d.last_seen_at from public.devices as d where d.uuid = tests.id(device)
$$;
create function pg_temp.ingest(device text, batch text) returns jsonb language sql as $$
    select tests.result('device:' || device, 'select public.ingest_entries(' || batch || ')')
$$;

select is(pg_temp.last_seen('d1'), null, 'a device that stored nothing was never seen');

-- as device d1: a batch lands
select is(
    pg_temp.ingest('d1', $$ '[{"method": "GET", "host": "seen.example.com"}]' $$) -> 'inserted', '1'::jsonb,
    'd1 stores a batch through ingest_entries'
);
select is(pg_temp.last_seen('d1'), now(), 'storing its entries marks the device seen (at the transaction''s start)');
select is(pg_temp.last_seen('d2'), null, 'another device is not marked');
select is_empty(
    $$ select 1 from realtime.messages where topic = 'devices:all' $$, 'being seen is not news on devices:all'
);

-- a second batch within 30 s: the row is not written again
update public.devices set last_seen_at = now() - interval '10 seconds' where uuid = tests.id('d1');
create temporary table seen_before on commit drop as
select
    d.ctid as row_version,
    d.last_seen_at
from public.devices as d where d.uuid = tests.id('d1');
select is(
    pg_temp.ingest('d1', $$ '[{"method": "GET", "host": "again.example.com"}]' $$) -> 'inserted', '1'::jsonb,
    'd1 stores another batch 10 s later'
);
select results_eq(
    $$ select d.ctid, d.last_seen_at from public.devices as d where d.uuid = tests.id('d1') $$,
    $$ select row_version, last_seen_at from seen_before $$,
    'within 30 s the device row is not rewritten: same row version, same value'
);

-- more than 30 s later: it moves again
update public.devices set last_seen_at = now() - interval '31 seconds' where uuid = tests.id('d1');
select is(
    pg_temp.ingest('d1', $$ '[{"method": "GET", "host": "later.example.com"}]' $$) -> 'inserted', '1'::jsonb,
    'd1 stores a batch 31 s after it was last seen'
);
select is(pg_temp.last_seen('d1'), now(), 'after 30 s the next batch moves last_seen_at');

-- what a batch brings decides: refused as a whole, partly refused, only duplicates
update public.devices set last_seen_at = null where uuid = tests.id('d1');
select is(
    pg_temp.ingest('d1', $$ '[{"method": "GET"}]' $$) -> 'rejected', '1'::jsonb, 'a batch whose only row is refused'
);
select is(pg_temp.last_seen('d1'), null, 'leaves last_seen_at as it was');
select is(
    pg_temp.ingest('d1', $$ '[{"method": "GET", "host": "half.example.com"}, {"method": "GET"}]' $$) -> 'inserted',
    '1'::jsonb, 'a batch with one good row and one refused row stores the good one'
);
select is(pg_temp.last_seen('d1'), now(), 'and marks the device seen');
update public.devices set last_seen_at = null where uuid = tests.id('d1');
select is(
    pg_temp.ingest(
        'd1',
        format(
            $$ '[{"id": "%s", "method": "GET", "host": "half.example.com"}]' $$,
            (select e.id from public.entries as e where e.host = 'half.example.com')
        )
    ) -> 'duplicates', '1'::jsonb,
    'a resent batch whose rows are all stored already'
);
select is(pg_temp.last_seen('d1'), now(), 'still shows the device alive');

-- nobody writes last_seen_at directly: not the device, not a member; an unpaired device's batch moves nothing
update public.devices set last_seen_at = null;
select tests.attempt(who, stmt, 'error=42501', format('%s: %s', who, label), 'public.devices')
from (
    values
    (
        'device:d1', $$ update public.devices set last_seen_at = now() where uuid = {d1} returning 1 $$,
        'a device cannot set its own last_seen_at'
    ),
    (
        'member', $$ update public.devices set last_seen_at = now() where uuid = {d1} returning 1 $$,
        'nor can a member of its workspace'
    ),
    (
        'device:d_unpaired', $$ select public.ingest_entries('[{"method": "GET", "host": "x.example.com"}]') $$,
        'an unpaired device stores nothing and is not marked seen'
    )
) as v (who, stmt, label);

select * from finish();
rollback;
