-- Wiping captured traffic (wipe_entries): entries:edit in the workspace concerned; a host, a time range or an
-- explicit `everything`; only the matching rows of that workspace go, and the answer is how many.
begin;
select plan(27);
select tests.make_world();
insert into public.entries (workspace_id, device_uuid, source, method, host, captured_at)
values
(tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'a.example', now() - interval '2 hours'),
(tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'a.example', now() - interval '1 hour'),
(tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'a.example', now()),
(tests.id('w1'), tests.id('d3'), 'bmc', 'GET', 'b.example', now()),
(tests.id('w1'), tests.id('d3'), 'bmc', 'POST', 'b.example', now()),
(tests.id('w2'), tests.id('d2'), 'proxy', 'GET', 'a.example', now() - interval '3 hours'),
(tests.id('w2'), tests.id('d2'), 'proxy', 'GET', 'a.example', now());

select is_definer('private', 'wipe_entries', 'the wiping function is a definer (no API role deletes entries)');
select function_privs_are(
    'public', 'wipe_entries', array['uuid', 'text', 'timestamptz', 'timestamptz', 'boolean'], 'anon', array[]::text[],
    'anon may not call wipe_entries'
);
select function_privs_are(
    'private', 'wipe_entries', array['uuid', 'text', 'timestamptz', 'timestamptz', 'boolean'], 'anon', array[]::text[],
    'nor its definer'
);

-- who may not: every refusal leaves public.entries as it was
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), 'public.entries')
from (
    values
    ('anon', $$ select public.wipe_entries({w1}, 'a.example') $$, 'error=42501', 'anon may not wipe'),
    ('viewer', $$ select public.wipe_entries({w1}, 'a.example') $$, 'error=42501', 'a viewer (entries:view) may not'),
    ('member', $$ select public.wipe_entries({w1}, 'a.example') $$, 'error=42501', 'a member (no entries:edit) may not'),
    ('nocaps', $$ select public.wipe_entries({w1}, 'a.example') $$, 'error=42501', 'a role without capabilities may not'),
    ('stringy', $$ select public.wipe_entries({w1}, 'a.example') $$, 'error=42501', 'nor one whose flags are not exactly true'),
    ('outsider', $$ select public.wipe_entries({w2}, 'a.example') $$, 'error=42501', 'a member may not wipe even their own workspace'),
    ('editor', $$ select public.wipe_entries({w2}, 'a.example') $$, 'error=42501', 'entries:edit in w1 does not reach w2'),
    ('editor', $$ select public.wipe_entries({w2}, everything => true) $$, 'error=42501', 'not even with everything'),
    ('editor', $$ select public.wipe_entries(gen_random_uuid(), 'a.example') $$, 'error=42501', 'an unknown workspace: the same refusal'),
    ('device:d1', $$ select public.wipe_entries({w1}, 'a.example') $$, 'error=42501', 'a device may not wipe'),
    ('admin', $$ select public.wipe_entries({w1}) $$, 'error=22023', 'no host and no time: refused, even for an admin'),
    ('admin', $$ select public.wipe_entries({w1}, everything => false) $$, 'error=22023', 'everything must be true'),
    ('admin', $$ select public.wipe_entries({w1}, '  ') $$, 'error=22023', 'a blank host is no host'),
    ('admin', $$ select public.wipe_entries({w1}, since => now(), until => now() - interval '1 hour') $$, 'error=22023', 'since must come before until'),
    ('admin', $$ select public.wipe_entries(null, 'a.example') $$, 'error=42501', 'a workspace is required'),
    ('member', $$ delete from public.entries where workspace_id = {w1} returning 1 $$, 'error=42501', 'and nobody deletes entries directly')
) as v (who, stmt, expected, label);

-- who may: an editor in their own workspace, by host
select tests.authenticate_as('editor');
select is(public.wipe_entries(tests.id('w1'), 'b.example'), 2::bigint, 'an editor wipes w1''s b.example: 2 rows');
reset role;
select results_eq(
    $$ select workspace_id, host, count(*)::integer from public.entries group by 1, 2 order by workspace_id = tests.id('w1') desc, host $$,
    $$ values (tests.id('w1'), 'a.example', 3), (tests.id('w2'), 'a.example', 2) $$,
    'only b.example of w1 went: w1''s other host and w2''s rows stay'
);

-- an admin: a host from a time on; a time range alone in another workspace; then everything
select tests.authenticate_as('admin');
select is(
    public.wipe_entries(tests.id('w1'), 'a.example', since => now() - interval '90 minutes'), 2::bigint,
    'an admin wipes a host since a time (inclusive): the two newer rows'
);
select is(
    public.wipe_entries(tests.id('w2'), until => now() - interval '1 hour'), 1::bigint,
    'a time range alone (until, exclusive) in w2: the older row'
);
select is(public.wipe_entries(tests.id('w1'), 'nothing.example'), 0::bigint, 'nothing matching: 0');
reset role;
select results_eq(
    $$ select workspace_id, captured_at from public.entries order by workspace_id = tests.id('w1') desc $$,
    $$ values (tests.id('w1'), now() - interval '2 hours'), (tests.id('w2'), now()) $$,
    'the rows outside the ranges stay'
);
select tests.authenticate_as('admin');
select is(public.wipe_entries(tests.id('w1'), everything => true), 1::bigint, 'everything => true wipes the rest of w1');
reset role;
select results_eq(
    $$ select workspace_id, host from public.entries $$,
    $$ values (tests.id('w2'), 'a.example') $$,
    'w1 is empty; w2''s row survives'
);
select * from finish();
rollback;
