-- Platform layer: the roles, schemas and default privileges of a Supabase project
-- (https://supabase.com/docs/guides/database/postgres/roles).
begin;
select plan(40);

select has_role('anon', 'role anon exists');
select has_role('authenticated', 'role authenticated exists');
select has_role('service_role', 'role service_role exists');
select has_role('authenticator', 'role authenticator exists');
select has_role('postgres', 'role postgres exists');
select has_role('supabase_admin', 'role supabase_admin exists');
select has_role('supabase_realtime_admin', 'role supabase_realtime_admin exists');
select has_role('supabase_auth_admin', 'role supabase_auth_admin exists');
select has_role('dashboard_user', 'role dashboard_user exists');

select is_superuser('supabase_admin', 'supabase_admin is the superuser');
select isnt_superuser('postgres', 'postgres is demoted from superuser, as on Supabase');
select isnt_superuser('authenticator', 'authenticator is not a superuser');

select results_eq(
    $$ select rolname::text collate "default", rolcanlogin, rolinherit, rolbypassrls from pg_catalog.pg_roles
       where rolname in ('anon', 'authenticated', 'service_role', 'authenticator', 'postgres',
                         'supabase_realtime_admin', 'supabase_auth_admin') order by rolname $$,
    $$ values ('anon', false, true, false),
              ('authenticated', false, true, false),
              ('authenticator', true, false, false),
              ('postgres', true, true, true),
              ('service_role', false, true, true),
              ('supabase_auth_admin', true, false, false),
              ('supabase_realtime_admin', false, false, false) $$,
    'login, inherit and bypassrls attributes match a Supabase image'
);

select is_member_of('anon', 'authenticator', 'authenticator may become anon');
select is_member_of('authenticated', 'authenticator', 'authenticator may become authenticated');
select is_member_of('service_role', 'authenticator', 'authenticator may become service_role');
select is_member_of('anon', 'postgres', 'postgres may become anon');
select is_member_of('authenticated', 'postgres', 'postgres may become authenticated');
select is_member_of('service_role', 'postgres', 'postgres may become service_role');
select is_member_of('supabase_realtime_admin', 'postgres', 'postgres is a member of supabase_realtime_admin');
select isnt_member_of('supabase_admin', 'authenticator', 'authenticator cannot become the superuser');
select isnt_member_of('service_role', 'anon', 'anon cannot become service_role');
select isnt_member_of('service_role', 'authenticated', 'authenticated cannot become service_role');

select ok(
    (
        select setconfig @> '{statement_timeout=3s}' from pg_catalog.pg_db_role_setting
        where setrole = 'anon'::regrole and setdatabase = 0
    ),
    'anon statements time out after 3 s'
);
select ok(
    (
        select setconfig @> '{statement_timeout=8s}' from pg_catalog.pg_db_role_setting
        where setrole = 'authenticated'::regrole and setdatabase = 0
    ),
    'authenticated statements time out after 8 s'
);
select ok(
    (
        select setconfig @> '{statement_timeout=8s,lock_timeout=8s}' from pg_catalog.pg_db_role_setting
        where setrole = 'authenticator'::regrole and setdatabase = 0
    ),
    'authenticator has the 8 s statement and lock timeouts'
);

select has_schema('extensions', 'schema extensions exists');
select has_schema('auth', 'schema auth exists');
select has_schema('realtime', 'schema realtime exists');
select has_extension('extensions', 'pgcrypto', 'pgcrypto lives in extensions');
select has_extension('extensions', 'uuid-ossp', 'uuid-ossp lives in extensions');
select ok(extensions.uuid_generate_v4() is not null, 'extensions.uuid_generate_v4() is callable');

select ok(
    has_schema_privilege('anon', 'public', 'usage') and has_schema_privilege('authenticated', 'extensions', 'usage')
    and has_schema_privilege('authenticated', 'auth', 'usage') and has_schema_privilege('anon', 'realtime', 'usage'),
    'the API roles may use public, extensions, auth and realtime'
);

-- as postgres: a new table gets Supabase's default privileges, so RLS alone gates it.
create table public.platform_probe (id integer primary key);
create function public.platform_probe_fn() returns integer language sql as 'select 1';
select table_privs_are(
    'public', 'platform_probe', 'anon',
    array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'],
    'a table postgres creates in public is granted to anon by default'
);
select table_privs_are(
    'public', 'platform_probe', 'authenticated',
    array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'],
    'a table postgres creates in public is granted to authenticated by default'
);
select table_privs_are(
    'public', 'platform_probe', 'service_role',
    array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'],
    'a table postgres creates in public is granted to service_role by default'
);
select function_privs_are(
    'public', 'platform_probe_fn', '{}'::text[], 'authenticated', array['EXECUTE'],
    'a function postgres creates in public is executable by authenticated by default'
);

select has_table('supabase_migrations', 'schema_migrations', 'the Supabase CLI migration history exists');
select columns_are(
    'supabase_migrations', 'schema_migrations', array['version', 'statements', 'name'],
    'the history has the columns the Supabase CLI writes'
);
select ok(
    (
        select pubinsert and pubupdate and pubdelete and pubtruncate from pg_catalog.pg_publication
        where pubname = 'supabase_realtime'
    ),
    'publication supabase_realtime exists and publishes insert, update, delete and truncate'
);

select * from finish();
rollback;
