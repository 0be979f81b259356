-- Testing: data-driven permission checks, so a file can try every identity on every statement compactly.
-- Affects: tests.world (named ids), tests.q(), tests.act_as(), tests.snapshot(), tests.attempt(),
-- tests.can_receive(), tests.can_send().
-- Caveats: attempt() runs the statement in a subtransaction: an error rolls back only that statement, and a
-- success keeps its effects, as it would for a client. Identity always returns to the file's owner afterwards.

create table if not exists tests.world (name text primary key, id uuid not null);
grant select on tests.world to anon, authenticated, service_role;
grant all on tests.world to postgres;

create or replace function tests.id(name text)
returns uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    found uuid;
begin
    -- A definer so statements tried under any identity can name fixtures.
    select w.id into found from tests.world as w where w.name = id.name;
    if found is null then
        raise exception 'tests: nothing named % in tests.world', name;
    end if;
    return found;
end;
$$;

create or replace function tests.remember(name text, id uuid)
returns uuid
language sql
as $$
    insert into tests.world (name, id) values (name, id)
    on conflict (name) do update set id = excluded.id
    returning id
$$;

create or replace function tests.q(query text)
returns text
language plpgsql
stable
as $$
declare
    result text := query;
    token text;
begin
    -- {name} becomes the quoted uuid remembered under that name.
    for token in select distinct m[1] from regexp_matches(query, '\{([a-z0-9_]+)\}', 'g') as m loop
        result := replace(result, '{' || token || '}', quote_literal(tests.id(token)) || '::uuid');
    end loop;
    return result;
end;
$$;

create or replace function tests.t(topic text)
returns text
language plpgsql
stable
as $$
declare
    result text := topic;
    token text;
begin
    -- {name} becomes the bare uuid remembered under that name, as topics spell it.
    for token in select distinct m[1] from regexp_matches(topic, '\{([a-z0-9_]+)\}', 'g') as m loop
        result := replace(result, '{' || token || '}', tests.id(token)::text);
    end loop;
    return result;
end;
$$;

create or replace function tests.act_as(who text)
returns void
language plpgsql
as $$
begin
    if who = 'anon' then
        perform tests.clear_authentication();
    elsif who = 'service_role' then
        perform tests.authenticate_as_service_role();
    elsif who like 'device:%' then
        perform tests.authenticate_as_device(tests.id(substr(who, 8)));
    else
        perform tests.authenticate_as(who);
    end if;
end;
$$;

create or replace function tests.act_as_owner()
returns void
language plpgsql
as $$
begin
    execute 'reset role';
    perform tests.set_claims(current_user, null);
    execute 'reset role';
end;
$$;

create or replace function tests.snapshot(watched regclass)
returns text
language plpgsql
as $$
declare
    digest text;
begin
    execute format(
        'select md5(coalesce(string_agg(t::text, %L order by t::text), %L)) from %s as t', ',', '', watched
    ) into digest;
    return digest;
end;
$$;

create or replace function tests.attempt(
    who text, query text, expected text, description text, watched regclass default null
)
returns text
language plpgsql
as $$
declare
    statement text := tests.q(query);
    before text;
    got text;
    n bigint;
begin
    -- expected: 'rows=N' (the statement returned or touched N rows) or 'error=SQLSTATE'.
    if watched is not null then
        before := tests.snapshot(watched);
    end if;
    begin
        perform tests.act_as(who);
        -- The where clause makes every row be computed: count(*) alone lets the planner skip a call.
        execute 'with attempted as (' || statement || ') select count(*) from attempted where attempted::text is not null'
        into n;
        got := 'rows=' || n;
    exception when others then
        got := 'error=' || sqlstate;
    end;
    perform tests.act_as_owner();
    if got is distinct from expected then
        return extensions.is(got, expected, description);
    end if;
    if watched is not null and (expected like 'error=%' or expected = 'rows=0')
        and tests.snapshot(watched) is distinct from before then
        return extensions.ok(false, description) || e'\n' || extensions.diag('the refused statement changed ' || watched);
    end if;
    return extensions.ok(true, description);
end;
$$;

create or replace function tests.can_receive(who text, topic text)
returns boolean
language plpgsql
as $$
declare
    probe uuid := gen_random_uuid();
    seen boolean := false;
begin
    -- As Realtime authorizes a private join: a probe row, then a select under the caller's claims.
    insert into realtime.messages (id, topic, extension) values (probe, tests.t(topic), 'broadcast');
    begin
        perform tests.act_as(who);
        perform set_config('realtime.topic', tests.t(topic), true);
        seen := exists (select from realtime.messages as m where m.id = probe);
    exception when others then
        seen := false;
    end;
    perform tests.act_as_owner();
    delete from realtime.messages as m where m.id = probe;
    return seen;
end;
$$;

create or replace function tests.can_send(who text, topic text, event text default 'probe')
returns boolean
language plpgsql
as $$
declare
    allowed boolean := false;
begin
    -- As Realtime authorizes a send: an insert under the caller's claims, rolled back either way.
    begin
        perform tests.act_as(who);
        perform set_config('realtime.topic', tests.t(topic), true);
        insert into realtime.messages (topic, extension, event) values (tests.t(topic), 'broadcast', event);
        allowed := true;
        raise exception using errcode = 'P0004', message = 'roll the probe back';
    exception
        when sqlstate 'P0004' then null;
        when others then allowed := false;
    end;
    perform tests.act_as_owner();
    return allowed;
end;
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

create or replace function tests.explain(query text)
returns text
language plpgsql
as $$
declare
    line text;
    plan text := '';
begin
    -- The plan as the current identity would get it, one text block.
    for line in execute 'explain (costs off) ' || query loop
        plan := plan || line || e'\n';
    end loop;
    return plan;
end;
$$;
grant execute on function tests.explain(text) to anon, authenticated, service_role;

create or replace function tests.result(who text, query text)
returns jsonb
language plpgsql
as $$
declare
    answer jsonb;
begin
    -- The first column of the first row, as JSON, of a statement run as `who`; errors propagate.
    perform tests.act_as(who);
    execute 'select to_jsonb(q) -> (select k from jsonb_object_keys(to_jsonb(q)) as k limit 1) from (' || tests.q(query)
        || ') as q limit 1' into answer;
    perform tests.act_as_owner();
    return answer;
end;
$$;
grant execute on function tests.result(text, text) to anon, authenticated, service_role;
