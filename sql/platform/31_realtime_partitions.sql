-- Platform layer: daily partitions of realtime.messages, kept as Realtime's janitor keeps them.
-- Affects: realtime.maintain_partitions(), and the partitions for yesterday to three days ahead.
-- Caveats: our own function (hosted Realtime does this from Elixir). A day that gained rows in the default
-- partition before its own partition existed has them moved over, under a short lock on the default.

create or replace function realtime.maintain_partitions(
    days_ahead integer default 3, keep interval default interval '72 hours'
) returns table (action text, partition_name text)
language plpgsql
as $$
declare
    today date := localtimestamp::date;
    day date;
    part text;
begin
    for day in select d::date from generate_series(today - 1, today + days_ahead, interval '1 day') as d loop
        part := 'messages_' || to_char(day, 'YYYY_MM_DD');
        continue when to_regclass(format('realtime.%I', part)) is not null;
        lock table realtime.messages_default in exclusive mode;
        execute format(
            'create table realtime.%I (like realtime.messages including defaults including constraints including compression)', part
        );
        execute format(
            'with moved as (delete from realtime.messages_default where inserted_at >= %L and inserted_at < %L '
            'returning *) insert into realtime.%I select * from moved', day, day + 1, part
        );
        execute format(
            'alter table realtime.messages attach partition realtime.%I for values from (%L) to (%L)',
            part, day, day + 1
        );
        execute format('alter table realtime.%I owner to supabase_realtime_admin', part);
        action := 'created';
        partition_name := part;
        return next;
    end loop;
    for part in
        select c.relname from pg_catalog.pg_inherits as i
        join pg_catalog.pg_class as c on c.oid = i.inhrelid
        where i.inhparent = 'realtime.messages'::regclass and c.relname ~ '^messages_\d{4}_\d{2}_\d{2}$'
        order by c.relname
    loop
        if (to_date(substr(part, 10), 'YYYY_MM_DD') + 1)::timestamp <= localtimestamp - keep then
            execute format('drop table realtime.%I', part);
            action := 'dropped';
            partition_name := part;
            return next;
        end if;
    end loop;
    delete from realtime.messages_default where inserted_at < localtimestamp - keep;
end;
$$;
comment on function realtime.maintain_partitions(integer, interval) is
'Busymate platform layer: creates daily partitions of realtime.messages ahead and drops those past `keep`.';
alter function realtime.maintain_partitions(integer, interval) owner to supabase_realtime_admin;
revoke execute on function realtime.maintain_partitions(integer, interval) from public;

select count(*) from realtime.maintain_partitions();

alter function realtime.topic() owner to supabase_realtime_admin;
alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;
alter function realtime.send_binary(bytea, text, text, boolean) owner to supabase_realtime_admin;
alter function realtime.broadcast_changes(text, text, text, text, text, record, record, text)
owner to supabase_realtime_admin;
grant execute on function realtime.topic() to anon, authenticated, service_role, postgres;
