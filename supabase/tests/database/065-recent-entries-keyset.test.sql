-- recent_entries' (before_at, before_id) bound: pages newest first, ties by id, without repeats or gaps; the
-- bound only says where a page starts (row-level security still decides the rows).
begin;
select plan(10);
select tests.make_world();
insert into public.entries (id, workspace_id, device_uuid, source, method, host, captured_at)
values
('00000000-0000-0000-0000-00000000000a', tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'k.example', '2026-12-01 10:00+00'),
('00000000-0000-0000-0000-00000000000b', tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'k.example', '2026-12-01 10:00+00'),
('00000000-0000-0000-0000-00000000000c', tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'k.example', '2026-12-01 10:00+00'),
('00000000-0000-0000-0000-00000000000d', tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'k.example', '2026-12-01 09:00+00'),
('00000000-0000-0000-0000-00000000000e', tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'k.example', '2026-12-01 11:00+00'),
('00000000-0000-0000-0000-00000000000f', tests.id('w2'), tests.id('d2'), 'proxy', 'GET', 'k.example', '2026-12-01 10:00+00');

select hasnt_function(
    'public', 'recent_entries', array['integer', 'uuid', 'text'], 'the three-argument recent_entries is replaced'
);

select tests.authenticate_as('member');
select results_eq(
    $$ select id from public.recent_entries(2, null, 'k.example') $$,
    $$ values ('00000000-0000-0000-0000-00000000000e'::uuid), ('00000000-0000-0000-0000-00000000000c'::uuid) $$,
    'the first page: newest first, a tie broken by the greater id'
);
select results_eq(
    $$ select id from public.recent_entries(2, null, 'k.example', '2026-12-01 10:00+00', '00000000-0000-0000-0000-00000000000c') $$,
    $$ values ('00000000-0000-0000-0000-00000000000b'::uuid), ('00000000-0000-0000-0000-00000000000a'::uuid) $$,
    'the next page continues inside the tie, after the bound''s id'
);
select results_eq(
    $$ select id from public.recent_entries(2, null, 'k.example', '2026-12-01 10:00+00', '00000000-0000-0000-0000-00000000000a') $$,
    $$ values ('00000000-0000-0000-0000-00000000000d'::uuid) $$,
    'then the older time; w2''s flow at the same time is not the member''s to see'
);
select is_empty(
    $$ select id from public.recent_entries(2, null, 'k.example', '2026-12-01 09:00+00', '00000000-0000-0000-0000-00000000000d') $$,
    'past the oldest flow nothing remains'
);
select is(
    (select count(*)::integer from public.recent_entries(10, null, 'K.EXAMPLE')), 5,
    'without a bound, every flow of the host (in any letter case) as before'
);
select results_eq(
    $$ select id from public.recent_entries(5, null, 'k.example', '2026-12-01 10:00+00') $$,
    $$ values ('00000000-0000-0000-0000-00000000000d'::uuid) $$,
    'before_at alone: strictly older than it'
);
reset role;

select tests.attempt(who, stmt, expected, format('%s: %s', who, label))
from (
    values
    (
        'outsider',
        $$ select * from public.recent_entries(10, null, 'k.example', '2026-12-01 11:00+00', '00000000-0000-0000-0000-000000000000') $$,
        'rows=1', 'a bound gives another workspace''s reader only their own rows'
    ),
    (
        'anon', $$ select * from public.recent_entries(1, null, null, now(), gen_random_uuid()) $$, 'error=42501',
        'anon may not list traffic'
    ),
    (
        'device:d1', $$ select * from public.recent_entries(1, null, null, now(), gen_random_uuid()) $$, 'error=42501',
        'nor a device'
    )
) as v (who, stmt, expected, label);

select * from finish();
rollback;
