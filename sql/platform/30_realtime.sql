-- Platform layer: the `realtime` schema as Realtime's tenant migrations generate it
-- (https://github.com/supabase/realtime).
-- Affects: types, realtime.messages (partitioned by day, RLS on, no policies), topic(), send(), send_binary(),
-- broadcast_changes(), and maintain_partitions() which stands in for Realtime's janitor.
-- Caveats: a default partition catches any row whose day has no partition yet, so a send never fails for want
-- of one; maintain_partitions() moves such rows into their day when it creates it.

create schema if not exists realtime authorization supabase_admin;
grant usage on schema realtime to anon, authenticated, service_role;
grant usage on schema realtime to postgres with grant option;
grant all on schema realtime to supabase_realtime_admin;

do $types$
begin
    if to_regtype('realtime.action') is null then
        create type realtime.action as enum ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'ERROR');
    end if;
    if to_regtype('realtime.equality_op') is null then
        create type realtime.equality_op as enum (
            'eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'in', 'like', 'ilike', 'is', 'match', 'imatch', 'isdistinct'
        );
    end if;
    if to_regtype('realtime.user_defined_filter') is null then
        create type realtime.user_defined_filter as (
            column_name text, op realtime.equality_op, value text, negate boolean
        );
    end if;
    if to_regtype('realtime.wal_column') is null then
        create type realtime.wal_column as (
            name text, type_name text, type_oid oid, value jsonb, is_pkey boolean, is_selectable boolean
        );
    end if;
    if to_regtype('realtime.wal_rls') is null then
        create type realtime.wal_rls as (wal jsonb, is_rls_enabled boolean, subscription_ids uuid [], errors text []);
    end if;
end
$types$;

create table if not exists realtime.messages (
    topic text not null,
    extension text not null,
    payload jsonb,
    event text,
    private boolean default false,
    updated_at timestamp not null default now(),
    inserted_at timestamp not null default now(),
    id uuid not null default gen_random_uuid(),
    binary_payload bytea,
    constraint messages_pkey primary key (id, inserted_at),
    constraint messages_payload_exclusivity check (payload is null or binary_payload is null)
) partition by range (inserted_at);
create index if not exists messages_inserted_at_topic_index on realtime.messages (inserted_at desc, topic)
where extension = 'broadcast' and private is true;
create table if not exists realtime.messages_default partition of realtime.messages default;
alter table realtime.messages owner to supabase_realtime_admin;
alter table realtime.messages_default owner to supabase_realtime_admin;
alter table realtime.messages enable row level security;
-- Busymate's firehose writes payloads of 100+ kB at a high rate: lz4 compresses them several times faster than
-- pglz (the default), at a similar ratio. Set on the parent and every existing partition (ALTER does not recurse
-- for this); maintain_partitions creates new ones LIKE the parent INCLUDING COMPRESSION.
do $lz4$
declare
    rel regclass;
begin
    for rel in
        select 'realtime.messages'::regclass
        union all
        select i.inhrelid::regclass from pg_catalog.pg_inherits as i where i.inhparent = 'realtime.messages'::regclass
    loop
        execute format('alter table %s alter column payload set compression lz4', rel);
    end loop;
exception when feature_not_supported then
    null;  -- a server built without lz4 keeps pglz
end
$lz4$;
grant insert, select, update on realtime.messages to anon, authenticated, service_role;
grant all on realtime.messages to postgres, dashboard_user;

create or replace function realtime.topic() returns text
language sql stable
as $$
    select nullif(current_setting('realtime.topic', true), '')::text
$$;

create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
declare
    generated_id uuid := gen_random_uuid();
    final_payload jsonb := payload;
begin
    begin
        if jsonb_typeof(payload) = 'object' and not payload ? 'id' then
            final_payload := payload || jsonb_build_object('id', generated_id);
        end if;
        perform set_config('realtime.topic', topic, true);
        insert into realtime.messages (id, payload, event, topic, private, extension)
        values (generated_id, final_payload, event, topic, private, 'broadcast');
    exception when others then
        raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
    end;
end;
$$;

create or replace function realtime.send_binary(payload bytea, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
begin
    begin
        perform set_config('realtime.topic', topic, true);
        insert into realtime.messages (binary_payload, event, topic, private, extension)
        values (payload, event, topic, private, 'broadcast');
    exception when others then
        raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
    end;
end;
$$;

create or replace function realtime.broadcast_changes(
    topic_name text, event_name text, operation text, table_name text, table_schema text,
    new record, old record, level text default 'ROW'
) returns void
language plpgsql
as $$
declare
    envelope jsonb;
begin
    if level = 'STATEMENT' then
        raise exception 'function can only be triggered for each row, not for each statement';
    end if;
    if operation not in ('INSERT', 'UPDATE', 'DELETE') then
        raise exception 'Unexpected operation type: %', operation;
    end if;
    envelope := jsonb_build_object(
        'old_record', to_jsonb(old),
        'record', to_jsonb(new),
        'operation', operation,
        'table', table_name,
        'schema', table_schema
    );
    perform realtime.send(envelope, event_name, topic_name);
exception when others then
    raise exception 'Failed to process the row: %', sqlerrm;
end;
$$;
