-- Capabilities: has_capability's rules, my_capabilities, whoami, and the helpers' shape.
begin;
select plan(45);
select tests.make_world();

-- shape
select is_definer('private', 'caller_grants', '{}'::name[], 'private.caller_grants, the one that reads roles, is a definer');
select isnt_definer('private', 'has_capability', array['text', 'text'], 'private.has_capability needs no definer of its own');
select is_definer('private', 'current_device', '{}'::name[], 'private.current_device is a definer');
select is_definer('private', 'my_workspaces', '{}'::name[], 'private.my_workspaces is a definer');
select isnt_definer('public', 'has_capability', array['text', 'text'], 'public.has_capability is an invoker');
select volatility_is('private', 'has_capability', array['text', 'text'], 'stable', 'has_capability is stable');
select volatility_is('private', 'is_admin', '{}'::name[], 'stable', 'is_admin is stable');
select volatility_is('private', 'current_device', '{}'::name[], 'stable', 'current_device is stable');
select volatility_is('private', 'my_workspaces', '{}'::name[], 'stable', 'my_workspaces is stable');
select function_privs_are(
    'private', 'has_capability', array['text', 'text'], 'anon', '{}'::text[], 'anon cannot execute private.has_capability'
);
select function_privs_are(
    'private', 'has_capability', array['text', 'text'], 'authenticated', array['EXECUTE'],
    'authenticated may execute private.has_capability (policies call it)'
);
select function_privs_are(
    'public', 'has_capability', array['text', 'text'], 'anon', '{}'::text[], 'anon cannot execute public.has_capability'
);

-- the rules, through the public RPC
select tests.attempt(
    'admin', $$ select 1 where public.has_capability('devices', 'edit') $$, 'rows=1',
    'grants_all passes every capability'
);
select tests.attempt(
    'admin', $$ select 1 where public.has_capability('anything', 'at_all') $$, 'rows=1',
    'grants_all passes even a section that does not exist'
);
select tests.attempt(
    'member', $$ select 1 where public.has_capability('devices', 'edit') $$, 'rows=1',
    'a member holds devices:edit'
);
select tests.attempt(
    'member', $$ select 1 where public.has_capability('global', 'edit') $$, 'rows=0',
    'a member lacks global:edit'
);
select tests.attempt(
    'editor', $$ select 1 where public.has_capability('global', 'edit') $$, 'rows=1',
    'a role granting global:edit passes without grants_all'
);
select tests.attempt(
    'viewer', $$ select 1 where public.has_capability('devices', 'view') $$, 'rows=1',
    'a viewer holds devices:view'
);
select tests.attempt(
    'viewer', $$ select 1 where public.has_capability('devices', 'edit') $$, 'rows=0',
    'a viewer lacks devices:edit'
);
select tests.attempt(
    'nocaps', $$ select 1 where public.has_capability('devices', 'view') $$, 'rows=0',
    'a role with no capabilities passes nothing'
);
select tests.attempt(
    'stringy', $$ select 1 where public.has_capability('devices', 'view') $$, 'rows=0',
    'the string "true" is not a grant: only JSON true is'
);
select tests.attempt(
    'stringy', $$ select 1 where public.has_capability('devices', 'edit') $$, 'rows=0',
    'the number 1 is not a grant'
);
select tests.attempt(
    'member', $$ select 1 where public.has_capability('devices', 'delete') $$, 'rows=0',
    'an unknown action passes nothing'
);
select tests.attempt(
    'service_role', $$ select 1 where public.has_capability('users', 'edit') $$, 'rows=1',
    'the service role passes every capability'
);
select tests.attempt(
    'device:d1', $$ select 1 where public.has_capability('devices', 'view') $$, 'rows=0',
    'a device holds no user capability'
);
select tests.attempt(
    'anon', $$ select public.has_capability('devices', 'view') $$, 'error=42501',
    'anon cannot call has_capability'
);

-- a role change takes effect on the next statement
update public.profiles set role = 'viewer' where id = tests.id('member');
select tests.attempt(
    'member', $$ select 1 where public.has_capability('devices', 'edit') $$, 'rows=0',
    'demoted to viewer, the member loses devices:edit at once'
);
update public.profiles set role = 'member' where id = tests.id('member');

-- my_capabilities
select tests.authenticate_as('member');
select is(
    (select public.my_capabilities() -> 'capabilities' -> 'devices'), '{"view": true, "edit": true}'::jsonb,
    'my_capabilities resolves each section to view and edit flags'
);
select is(
    (
        select jsonb_object_keys_count from (
            select count(*) as jsonb_object_keys_count
            from jsonb_object_keys(public.my_capabilities() -> 'capabilities')
        ) as k
    ),
    9::bigint, 'my_capabilities lists all nine sections'
);
select is(public.my_capabilities() ->> 'role', 'member', 'my_capabilities names the role');
select is((public.my_capabilities() ->> 'grants_all')::boolean, false, 'a member does not grant all');
select tests.authenticate_as('admin');
select is((public.my_capabilities() ->> 'grants_all')::boolean, true, 'an admin grants all');
select is(
    (public.my_capabilities() -> 'capabilities' -> 'users' ->> 'edit')::boolean, true,
    'so every section reads as allowed for an admin'
);

-- whoami
select tests.authenticate_as('owner');
select is(public.whoami() ->> 'kind', 'user', 'whoami says a user token is a user');
select is(public.whoami() ->> 'email', 'owner@test.busymate.local', 'whoami gives the email');
select is(
    public.whoami() -> 'devices', jsonb_build_array(tests.id('d1'), tests.id('d_unpaired')),
    'whoami lists the devices the user owns'
);
select is(public.whoami() -> 'workspaces', jsonb_build_array(tests.id('w1')), 'whoami lists the workspaces');
select tests.authenticate_as_device(tests.id('d1'));
select is(public.whoami() ->> 'kind', 'device', 'whoami says a device token is a device');
select is((public.whoami() ->> 'paired')::boolean, true, 'a device with its current credential is paired');
select is(public.whoami() ->> 'workspace_id', tests.id('w1')::text, 'whoami gives the device''s workspace');
select tests.authenticate_as_device(tests.id('d_unpaired'));
select is((public.whoami() ->> 'paired')::boolean, false, 'a device without a credential is not paired');
select tests.authenticate_as_service_role();
select is(public.whoami() ->> 'kind', 'service', 'whoami says the service key is the service');
reset role;

-- a forged credential
select tests.set_claims(
    'device', jsonb_build_object(
        'role', 'device', 'sub', tests.id('d1'), 'workspace_id', tests.id('w1'),
        'cred', gen_random_uuid()
    )
);
select is(private.current_device(), null, 'a device JWT with another cred is not the device');
select tests.set_claims(
    'device', jsonb_build_object(
        'role', 'device', 'sub', tests.id('d1'), 'workspace_id', tests.id('w2'),
        'cred', tests.device_claims(tests.id('d1')) -> 'cred'
    )
);
select is(private.current_device(), null, 'a device JWT naming another workspace is not the device');
select tests.set_claims(
    'device', jsonb_build_object(
        'role', 'device', 'sub', tests.id('d1'), 'workspace_id', tests.id('w1'),
        'cred', 'not-a-uuid'
    )
);
select is(private.current_device(), null, 'a malformed cred is no match, not an error');
reset role;

select * from finish();
rollback;
