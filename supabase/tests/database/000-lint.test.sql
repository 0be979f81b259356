-- Lint: the catalog rules every migration must keep (docs/database.md, pgTAP). A violation names the object.
begin;
select plan(8);

select is(
    array(
        select c.oid::regclass::text
        from pg_catalog.pg_class as c inner join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity
        order by 1
    ),
    '{}'::text[],
    'every table in public has row-level security enabled'
);

select is(
    array(
        select c.oid::regclass::text
        from pg_catalog.pg_class as c inner join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where
            n.nspname = 'public' and c.relkind = 'v'
            and not coalesce(c.reloptions @> array['security_invoker=true'], false)
        order by 1
    ),
    '{}'::text[],
    'every view in public is security_invoker, so it cannot bypass row-level security'
);

select is(
    array(
        select p.oid::regprocedure::text
        from pg_catalog.pg_proc as p inner join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
        where
            p.prosecdef
            and n.nspname not in ('pg_catalog', 'information_schema')
            and not exists (
                select from pg_catalog.pg_depend as d
                where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
            )
            and not coalesce(p.proconfig @> array['search_path=""'], false)
        order by 1
    ),
    '{}'::text[],
    'every security-definer function pins search_path to an empty string'
);

select is(
    array(
        select p.oid::regprocedure::text
        from pg_catalog.pg_proc as p inner join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
        where p.prosecdef and n.nspname = 'public'
        order by 1
    ),
    '{}'::text[],
    'no security-definer function lives in the exposed public schema'
);

select is(
    array(
        select p.oid::regprocedure::text
        from pg_catalog.pg_proc as p inner join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
        where
            p.prosecdef
            and n.nspname not in ('pg_catalog', 'information_schema', 'tests')
            and pg_catalog.has_function_privilege('anon', p.oid, 'execute')
        order by 1
    ),
    -- The exceptions: pairing, where the activation code is the caller's only credential, and a proxy device's
    -- PAC port, which an operating system fetches without any credential (the device's uuid is the secret, and
    -- the answer is one port number: 054-device-pac).
    '{private.device_pac_port(uuid),private.pair_device(text)}'::text[],
    'anon can execute no security-definer function but pair_device and device_pac_port'
);

select is(
    array(
        select format('%s.%s: %s calls %s()', pol.schemaname, pol.tablename, pol.policyname, f.name)
        from pg_catalog.pg_policies as pol
        cross join
            unnest(array[
                'auth.uid', 'auth.jwt', 'auth.role', 'auth.email', 'realtime.topic', 'private.has_capability'
            ]) as f (name)
        where
            regexp_count(
                coalesce(pol.qual, '') || ' ' || coalesce(pol.with_check, ''), '(?<![\w.])' || replace(f.name, '.', '\.') || '\('
            ) > regexp_count(
                coalesce(pol.qual, '') || ' ' || coalesce(pol.with_check, ''), 'SELECT ' || replace(f.name, '.', '\.') || '\('
            )
        order by 1
    ),
    '{}'::text[],
    'no policy calls auth.uid(), auth.jwt() or another row-independent helper outside a (select ...)'
);

select is(
    array(
        select format('%s.%s: %s', schemaname, tablename, policyname)
        from pg_catalog.pg_policies where roles = '{public}'
        order by 1
    ),
    '{}'::text[],
    'every policy names the roles it applies to (to <role>, never the implicit public)'
);

select is(
    array(
        select format('%s.%s: %s', schemaname, tablename, policyname)
        from pg_catalog.pg_policies where cmd = 'ALL'
        order by 1
    ),
    '{}'::text[],
    'no policy is written for all commands: one policy per command'
);

select * from finish();
rollback;
