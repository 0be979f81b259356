-- Platform layer: schemas, extensions and the default privileges of a Supabase project
-- (docs/database.md, "The platform layer").
-- Affects: schemas public and extensions, pgcrypto, uuid-ossp, pg_stat_statements, default privileges.
-- Caveats: new tables in public are reachable by the API roles by default, exactly as on Supabase;
-- row-level security and explicit revokes in migrations do the gating.

alter schema public owner to pg_database_owner;
create schema if not exists extensions authorization supabase_admin;

create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pg_stat_statements with schema extensions;

grant usage on schema public to postgres, anon, authenticated, service_role;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant all on schema extensions to postgres with grant option;

alter default privileges for role postgres in schema public
grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on routines to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
grant all on routines to postgres, anon, authenticated, service_role;

alter default privileges for role supabase_admin in schema extensions
grant all on tables to postgres with grant option;
alter default privileges for role supabase_admin in schema extensions
grant all on routines to postgres with grant option;
alter default privileges for role supabase_admin in schema extensions
grant all on sequences to postgres with grant option;
