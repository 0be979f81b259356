-- Purpose: keep traffic only as long as each workspace wants it, and keep partitions made ahead.
-- Affects: private.maintain_entries(days_ahead) (returns a report), a trigger that removes a deleted
-- workspace's traffic, and an hourly pg_cron job where pg_cron runs in this database.
-- Caveats: whole partitions are dropped once they are past every workspace's retention (cheap); within the
-- partitions that remain, rows of workspaces with a shorter retention are deleted.

create or replace function private.maintain_entries(days_ahead integer default 7)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    today date := (now() at time zone 'UTC')::date;
    longest integer := coalesce((select max(w.retention_days) from public.workspaces as w), 7);
    horizon timestamptz := now() - make_interval(days => longest);
    created text [];
    dropped text [] := '{}';
    deleted bigint := 0;
    n bigint;
    part text;
    ws record;
begin
    created := array(select private.ensure_entry_partitions(today - 1, today + days_ahead));
    for part in
        select c.relname from pg_catalog.pg_inherits as i
        inner join pg_catalog.pg_class as c on c.oid = i.inhrelid
        where i.inhparent = 'public.entries'::regclass and c.relname ~ '^entries_\d{8}$'
        order by c.relname
    loop
        if (to_date(substr(part, 9), 'YYYYMMDD') + 1)::timestamp at time zone 'UTC' <= horizon then
            execute format('drop table private.%I', part);
            dropped := dropped || part;
        end if;
    end loop;
    for ws in select w.id, w.retention_days from public.workspaces as w where w.retention_days < longest loop
        delete from public.entries as e
        where e.workspace_id = ws.id and e.captured_at < now() - make_interval(days => ws.retention_days);
        get diagnostics n = row_count;
        deleted := deleted + n;
    end loop;
    delete from private.entries_default as e where e.captured_at < horizon;
    get diagnostics n = row_count;
    deleted := deleted + n;
    return jsonb_build_object(
        'created_partitions', to_jsonb(created), 'dropped_partitions', to_jsonb(dropped),
        'deleted_rows', deleted, 'kept_since', horizon
    );
end;
$$;
comment on function private.maintain_entries(integer) is
'Make partitions ahead, drop those past every workspace''s retention, delete older rows of shorter retentions; '
'returns what it did.';
revoke execute on function private.maintain_entries(integer) from public, anon, authenticated;

create or replace function private.forget_workspace_entries()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer: entries carry no foreign key (see create_entries), so a deleted workspace's traffic goes here.
    delete from public.entries as e where e.workspace_id = old.id;
    return null;
end;
$$;
revoke execute on function private.forget_workspace_entries() from public, anon;

create trigger workspaces_forget_entries
after delete on public.workspaces
for each row execute function private.forget_workspace_entries();

do $cron$
begin
    if exists (select from pg_catalog.pg_extension where extname = 'pg_cron') then
        perform cron.schedule('busymate-entries-maintenance', '17 * * * *', 'select private.maintain_entries()');
    end if;
end
$cron$;
