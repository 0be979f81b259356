-- Purpose: daily partitions of entries, made ahead of time, and the job that keeps making them.
-- Affects: private.ensure_entry_partitions(from, to), private.maintain_entries(); partitions for yesterday
-- to a week ahead; a pg_cron job where pg_cron runs in this database.
-- Caveats: rows that landed in the default partition for a day are moved into that day's partition when it is
-- made, under a short lock on the default. Where there is no pg_cron, the local stack calls
-- private.maintain_entries() on its own schedule.

create or replace function private.ensure_entry_partitions(first_day date, last_day date)
returns setof text
language plpgsql
set search_path = ''
as $$
declare
    day date;
    part text;
    lower_bound timestamptz;
    upper_bound timestamptz;
begin
    for day in select d::date from generate_series(first_day, last_day, interval '1 day') as d loop
        part := 'entries_' || to_char(day, 'YYYYMMDD');
        continue when to_regclass('private.' || part) is not null;
        lower_bound := day::timestamp at time zone 'UTC';
        upper_bound := (day + 1)::timestamp at time zone 'UTC';
        lock table private.entries_default in exclusive mode;
        execute format(
            'create table private.%I (like public.entries including defaults including constraints)', part
        );
        execute format(
            'with moved as (delete from private.entries_default where captured_at >= %L::timestamptz '
            'and captured_at < %L::timestamptz returning *) insert into private.%I select * from moved',
            lower_bound, upper_bound, part
        );
        execute format(
            'alter table public.entries attach partition private.%I for values from (%L) to (%L)',
            part, lower_bound, upper_bound
        );
        execute format('revoke all on private.%I from public, anon, authenticated', part);
        return next part;
    end loop;
end;
$$;
comment on function private.ensure_entry_partitions(date, date) is
'Make the daily partitions of entries from first_day to last_day (UTC days) that do not exist yet.';
revoke execute on function private.ensure_entry_partitions(date, date) from public, anon, authenticated;

-- Days are UTC days, whatever the session's time zone.
select count(*) from private.ensure_entry_partitions(
    (now() at time zone 'UTC')::date - 1, (now() at time zone 'UTC')::date + 7
);
