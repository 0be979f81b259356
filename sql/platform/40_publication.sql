-- Platform layer: the publication postgres_changes reads (https://supabase.com/docs/guides/realtime/postgres-changes).
-- Affects: publication supabase_realtime, created empty and owned by postgres so migrations can add tables.
-- Caveats: never dropped here, so a re-applied platform layer keeps the tables migrations added.

do $publication$
begin
    if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
        create publication supabase_realtime;
    end if;
end
$publication$;
alter publication supabase_realtime owner to postgres;
