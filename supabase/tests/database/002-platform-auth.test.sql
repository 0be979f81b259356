-- Platform layer: auth.users and the claim helpers (docs/database.md), and our identity helpers.
begin;
select plan(30);

select has_table('auth', 'users', 'auth.users exists');
select col_is_pk('auth', 'users', 'id', 'auth.users is keyed by id');
select has_column('auth', 'users', 'raw_app_meta_data', 'auth.users has raw_app_meta_data');
select has_column('auth', 'users', 'confirmed_at', 'auth.users has the generated confirmed_at');
select has_column('auth', 'users', 'is_anonymous', 'auth.users has is_anonymous');
select ok(
    (select relrowsecurity from pg_catalog.pg_class where oid = 'auth.users'::regclass),
    'auth.users has row-level security enabled'
);
select volatility_is('auth', 'uid', '{}'::name[], 'stable', 'auth.uid() is stable');
select volatility_is('auth', 'role', '{}'::name[], 'stable', 'auth.role() is stable');
select volatility_is('auth', 'email', '{}'::name[], 'stable', 'auth.email() is stable');
select volatility_is('auth', 'jwt', '{}'::name[], 'stable', 'auth.jwt() is stable');

select is(auth.uid(), null, 'outside a request auth.uid() is null, not an error');
select is(auth.jwt(), null, 'outside a request auth.jwt() is null');

select set_config(
    'request.jwt.claims',
    '{"sub": "11111111-1111-4111-8111-111111111111", "role": "authenticated", "email": "a@example.com"}',
    true
);
select is(auth.uid(), '11111111-1111-4111-8111-111111111111'::uuid, 'auth.uid() reads sub from the claims object');
select is(auth.role(), 'authenticated', 'auth.role() reads role from the claims object');
select is(auth.email(), 'a@example.com', 'auth.email() reads email from the claims object');
select is(auth.jwt() ->> 'email', 'a@example.com', 'auth.jwt() returns the whole claims object');

select set_config('request.jwt.claim.sub', '22222222-2222-4222-8222-222222222222', true);
select is(
    auth.uid(), '22222222-2222-4222-8222-222222222222'::uuid, 'the legacy request.jwt.claim.sub wins when set'
);
select set_config('request.jwt.claim.sub', '', true);
select is(
    auth.uid(), '11111111-1111-4111-8111-111111111111'::uuid, 'an empty legacy setting counts as missing'
);
select set_config('request.jwt.claims', '', true);
select is(auth.uid(), null, 'an empty claims setting gives null');

-- as the named test users
select tests.create_user('alice');
select tests.create_user('bob');
select tests.authenticate_as('alice');
select is(current_user::text, 'authenticated', 'authenticate_as switches to the authenticated role');
select is(auth.uid(), tests.get_user_id('alice'), 'authenticate_as gives alice''s id to auth.uid()');
select is(auth.email(), 'alice@test.busymate.local', 'authenticate_as carries the email claim');
select throws_ok(
    'select count(*) from auth.users', '42501', null, 'a signed-in user cannot read auth.users'
);
select tests.authenticate_as('bob');
select is(auth.uid(), tests.get_user_id('bob'), 'switching to bob replaces alice''s claims');

-- as anon
select tests.clear_authentication();
select is(current_user::text, 'anon', 'clear_authentication acts as anon');
select is(auth.uid(), null, 'anon has no uid');

-- as the service role
select tests.authenticate_as_service_role();
select is(current_user::text, 'service_role', 'authenticate_as_service_role switches to service_role');
select is(auth.role(), 'service_role', 'the service role''s claims say so');

-- as the owner again
reset role;
select is(current_user::text, 'postgres', 'reset role returns to the file''s owner');
select throws_ok(
    $$ select tests.get_user_id('nobody') $$, 'P0001', 'tests: no user named nobody, call tests.create_user(''nobody'') first',
    'an unknown test user is a clear error'
);

select * from finish();
rollback;
