-- Testing: helpers that let a pgTAP file act as memorable users, devices and the service role.
-- Affects: schema tests, in the test template only.
-- Caveats: identities switch with transaction-local settings, so every file runs inside begin ... rollback.
-- Lookups that must work whoever is acting are security definer with an empty search_path.

create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_user(name text, email text default null)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
    user_id uuid := gen_random_uuid();
begin
    -- A definer so a file can add users after it has switched to another identity.
    insert into auth.users (
        id, instance_id, aud, role, email, encrypted_password, email_confirmed_at,
        raw_app_meta_data, raw_user_meta_data, created_at, updated_at
    ) values (
        user_id, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
        coalesce(email, name || '@test.busymate.local'), '', now(),
        '{"provider": "email", "providers": ["email"]}', jsonb_build_object('test_identifier', name), now(), now()
    );
    return user_id;
end;
$$;
comment on function tests.create_user(text, text) is 'Create a confirmed auth user known to the tests by name.';

create or replace function tests.get_user_id(name text)
returns uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    found uuid;
begin
    -- A definer so it can read auth.users while the file acts as someone who cannot.
    select u.id into found from auth.users as u where u.raw_user_meta_data ->> 'test_identifier' = name;
    if found is null then
        raise exception 'tests: no user named %, call tests.create_user(%) first', name, quote_literal(name);
    end if;
    return found;
end;
$$;

create or replace function tests.user_claims(name text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    -- A definer for the same reason as tests.get_user_id.
    select jsonb_build_object(
        'sub', u.id, 'role', 'authenticated', 'aud', 'authenticated', 'email', u.email,
        'session_id', '00000000-0000-4000-8000-000000000000',
        'app_metadata', coalesce(u.raw_app_meta_data, '{}'), 'user_metadata', coalesce(u.raw_user_meta_data, '{}'),
        'iss', 'busymate-tests', 'exp', extract(epoch from now() + interval '1 hour')::bigint
    )
    from auth.users as u where u.id = tests.get_user_id(name)
$$;

create or replace function tests.set_claims(role_name text, claims jsonb)
returns void
language plpgsql
as $$
begin
    perform set_config('role', role_name, true);
    perform set_config('request.jwt.claims', coalesce(claims::text, ''), true);
    -- The legacy per-claim settings win in auth.uid(); clear them so they never leak between identities.
    perform set_config('request.jwt.claim.sub', coalesce(claims ->> 'sub', ''), true);
    perform set_config('request.jwt.claim.role', coalesce(claims ->> 'role', ''), true);
    perform set_config('request.jwt.claim.email', coalesce(claims ->> 'email', ''), true);
    perform set_config('request.jwt.claim', '', true);
end;
$$;

create or replace function tests.authenticate_as(name text)
returns void
language plpgsql
as $$
begin
    perform tests.set_claims('authenticated', tests.user_claims(name));
end;
$$;
comment on function tests.authenticate_as(text) is 'Act as the named user, as PostgREST would for their JWT.';

create or replace function tests.device_claims(device uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    claims jsonb;
begin
    -- A definer so it can read the device and its credential whoever is acting; both arrive with the product schema.
    select jsonb_build_object(
        'sub', d.uuid, 'role', 'device', 'workspace_id', d.workspace_id, 'cred', c.credential_id,
        'iss', 'busymate-tests', 'exp', extract(epoch from now() + interval '1 hour')::bigint
    ) into claims
    from public.devices as d left join private.device_credentials as c on c.device_uuid = d.uuid
    where d.uuid = device;
    if claims is null then
        raise exception 'tests: no device %', device;
    end if;
    return claims;
end;
$$;

create or replace function tests.authenticate_as_device(device uuid)
returns void
language plpgsql
as $$
begin
    perform tests.set_claims('device', tests.device_claims(device));
end;
$$;
comment on function tests.authenticate_as_device(uuid) is 'Act as a paired capture device, with its current credential.';

create or replace function tests.authenticate_as_service_role()
returns void
language plpgsql
as $$
begin
    perform tests.set_claims('service_role', '{"role": "service_role", "iss": "supabase-demo"}');
end;
$$;

create or replace function tests.clear_authentication()
returns void
language plpgsql
as $$
begin
    -- Anonymous, as a request with only the anon key; `reset role` goes back to the file's owner.
    perform tests.set_claims('anon', '{"role": "anon", "iss": "supabase-demo"}');
end;
$$;
comment on function tests.clear_authentication() is 'Act as an anonymous caller with the anon key.';

grant execute on all functions in schema tests to anon, authenticated, service_role;
