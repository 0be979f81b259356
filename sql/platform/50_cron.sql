-- Platform layer: pg_cron, where the server preloads it and this is its database.
-- Affects: extension pg_cron (schema cron), usage for postgres, the realtime partition job.
-- Caveats: pg_cron lives in one database per cluster (cron.database_name); elsewhere (test clones) the
-- local stack's scheduler calls the same maintenance functions instead.

do $cron$
begin
    if current_setting('cron.database_name', true) is distinct from current_database() then
        return;
    end if;
    create extension if not exists pg_cron with schema pg_catalog;
    grant usage on schema cron to postgres;
    grant all on all tables in schema cron to postgres;
    perform cron.schedule(
        'busymate-realtime-partitions', '7 * * * *', 'select count(*) from realtime.maintain_partitions()'
    );
end
$cron$;
