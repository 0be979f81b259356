-- Platform layer: the database roles a Supabase image ships (https://supabase.com/docs/guides/database/postgres/roles).
-- Affects: cluster-wide roles, their attributes, memberships and role settings.
-- Caveats: applied only to a bare Postgres by `busymate db`, never to a Supabase database. Roles are
-- cluster-wide, so this file runs before every database is (re)created; it must stay idempotent.
-- Passwords are set by busymate from its settings, never written here.

do $roles$
declare
    wanted constant text[] := array[
        'anon', 'authenticated', 'service_role', 'authenticator', 'postgres',
        'supabase_realtime_admin', 'supabase_auth_admin', 'dashboard_user'
    ];
    r text;
begin
    foreach r in array wanted loop
        if not exists (select from pg_catalog.pg_roles where rolname = r) then
            execute format('create role %I', r);
        end if;
    end loop;
end
$roles$;

-- The API roles are INHERIT today (the 2023-05 alter_api_roles_for_inherit migration).
alter role anon with nologin inherit nobypassrls;
alter role authenticated with nologin inherit nobypassrls;
alter role service_role with nologin inherit bypassrls;
alter role authenticator with login noinherit nobypassrls;
-- postgres is demoted from superuser on Supabase; supabase_admin (our bootstrap user) keeps it.
alter role postgres with login nosuperuser createdb createrole replication bypassrls;
alter role supabase_realtime_admin with nologin noinherit noreplication nobypassrls;
alter role supabase_auth_admin with login noinherit createrole noreplication;
alter role dashboard_user with nologin nosuperuser createdb createrole replication;

alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';
alter role postgres set search_path = "$user", public, extensions; -- noqa: RF05
alter role supabase_auth_admin set search_path = auth;
alter role supabase_realtime_admin set search_path = public, extensions, realtime;

-- The linter's postgres dialect cannot parse role grants, hence the noqa.
grant anon, authenticated, service_role to authenticator; -- noqa: PRS
grant anon, authenticated, service_role to postgres; -- noqa: PRS
grant supabase_realtime_admin to postgres; -- noqa: PRS
grant anon, authenticated, service_role to supabase_realtime_admin; -- noqa: PRS

-- PostgREST's in-database configuration: migrations run as postgres set `pgrst.*` on authenticator (Supabase
-- allows it through supautils; a bare Postgres 15 needs the SET privilege on the placeholder parameter).
grant set on parameter pgrst.db_pre_request to postgres; -- noqa: PRS
