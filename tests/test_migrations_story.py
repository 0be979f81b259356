"""The migrations read as one story: applied one by one on a throw-away database, each applies cleanly,
defines exactly what its header's `-- Defines:` block says, leaves no function calling one that does not exist
yet, and the last leaves the schema of the committed snapshot (tests/migrations_schema.txt).

After adding a migration, write its `-- Defines:` block (the failure message prints it) and refresh the
snapshot with `BUSYMATE_UPDATE_SCHEMA_SNAPSHOT=1 .venv/bin/pytest tests/test_migrations_story.py`, then read
the diff.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from busymate.errors import BusymateError
from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.db import connect, drop_database
from tests.conftest import PROJECT_DIR

MIGRATIONS = PROJECT_DIR / "supabase" / "migrations"
SNAPSHOT = Path(__file__).with_name("migrations_schema.txt")
DATABASE = "migrations_story"

# Schemas of the cluster itself and of the migration history, which no migration defines.
SYSTEM = "('pg_catalog', 'information_schema', 'pg_toast', 'supabase_migrations')"
# Daily partitions (private.entries_20261203, realtime.messages_2026_12_03) are made by maintenance functions
# for the day the database is built, so neither a header nor the snapshot names them.
DATED = re.compile(r"_\d{4}_?\d{2}_?\d{2}\b")

# Everything a header's `-- Defines:` block may name, one line per object, written as the block writes it.
OBJECTS = f"""
select 'schema ' || n.nspname from pg_namespace as n
where n.nspname not in {SYSTEM} and n.nspname !~ '^pg_'
union all
select 'role ' || r.rolname from pg_roles as r where r.rolname !~ '^pg_'
union all
select format('table %s', c.oid::regclass) from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname not in {SYSTEM}
union all
select format('function %s', p.oid::regprocedure)
from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
where n.nspname not in {SYSTEM}
union all
select format('trigger %s on %s', t.tgname, t.tgrelid::regclass) from pg_trigger as t where not t.tgisinternal
union all
select format('policy %I on %s', p.polname, p.polrelid::regclass) from pg_policy as p
union all
select format('publication %s table %s', p.pubname, r.prrelid::regclass)
from pg_publication_rel as r join pg_publication as p on p.oid = r.prpubid
"""

# A call written as schema.name( in a function body; types and tables are written with a space before `(`.
CALL = re.compile(r"\b(private|public|auth|realtime|extensions|cron)\.([a-z_][a-z0-9_]*)\(")

# The catalog's view of the schema: what pg_dump --schema-only would recreate, one sorted line per fact, with
# function bodies and comments as digests (the snapshot stays short; a changed body is still a changed line).
FINGERPRINT = (
    f"""select format('schema %s owner=%s acl=%s', nspname, nspowner::regrole, nspacl)
    from pg_namespace where nspname not in {SYSTEM} and nspname !~ '^pg_'""",
    f"""select format('class %s kind=%s owner=%s acl=%s rls=%s/%s options=%s persistence=%s replica=%s '
        'bound=%s key=%s',
        c.oid::regclass, c.relkind, c.relowner::regrole, c.relacl, c.relrowsecurity, c.relforcerowsecurity,
        c.reloptions, c.relpersistence, c.relreplident, pg_get_expr(c.relpartbound, c.oid),
        case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end)
    from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
    where n.nspname not in {SYSTEM} and n.nspname !~ '^pg_' and c.relkind <> 'i'""",
    f"""select format('column %s.%s #%s type=%s not_null=%s default=%s identity=%s generated=%s acl=%s',
        c.oid::regclass, a.attname,
        (select count(*) from pg_attribute as b where b.attrelid = a.attrelid and b.attnum > 0
            and not b.attisdropped and b.attnum <= a.attnum),
        format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity,
        a.attgenerated, a.attacl)
    from pg_attribute as a join pg_class as c on c.oid = a.attrelid
    join pg_namespace as n on n.oid = c.relnamespace
    left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where n.nspname not in {SYSTEM} and n.nspname !~ '^pg_' and a.attnum > 0 and not a.attisdropped
        and c.relkind <> 'i'""",
    f"""select format('constraint %s on %s: %s deferrable=%s/%s', co.conname,
        coalesce(co.conrelid::regclass::text, co.contypid::regtype::text), pg_get_constraintdef(co.oid),
        co.condeferrable, co.condeferred)
    from pg_constraint as co join pg_namespace as n on n.oid = co.connamespace
    where n.nspname not in {SYSTEM}""",
    f"""select format('index %s', pg_get_indexdef(i.indexrelid))
    from pg_index as i join pg_class as c on c.oid = i.indexrelid
    join pg_namespace as n on n.oid = c.relnamespace
    where n.nspname not in {SYSTEM}""",
    """select format('policy %I on %s: cmd=%s permissive=%s roles=%s using=%s check=%s', p.polname,
        p.polrelid::regclass, p.polcmd, p.polpermissive,
        (select string_agg(case r when 0 then 'public' else r::regrole::text end, ',' order by 1)
            from unnest(p.polroles) as r),
        pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
    from pg_policy as p""",
    """select format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
    from pg_trigger as t where not t.tgisinternal""",
    """select format('event trigger %s on %s runs %s enabled=%s',
        evtname, evtevent, evtfoid::regproc, evtenabled)
    from pg_event_trigger""",
    f"""select format('function %s returns %s language=%s kind=%s volatility=%s definer=%s strict=%s '
        'leakproof=%s parallel=%s cost=%s rows=%s config=%s owner=%s acl=%s source=%s', p.oid::regprocedure,
        pg_get_function_result(p.oid), l.lanname, p.prokind, p.provolatile, p.prosecdef, p.proisstrict,
        p.proleakproof, p.proparallel, p.procost, p.prorows, p.proconfig, p.proowner::regrole, p.proacl,
        md5(p.prosrc))
    from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
    join pg_language as l on l.oid = p.prolang
    where n.nspname not in {SYSTEM}""",
    f"""select format('function %s arguments %s', p.oid::regprocedure, pg_get_function_arguments(p.oid))
    from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace where n.nspname not in {SYSTEM}""",
    f"""select format('type %s kind=%s owner=%s acl=%s labels=%s base=%s not_null=%s default=%s',
        t.oid::regtype, t.typtype, t.typowner::regrole, t.typacl,
        (select string_agg(e.enumlabel, ',' order by e.enumsortorder)
            from pg_enum as e where e.enumtypid = t.oid),
        nullif(t.typbasetype, 0)::regtype, t.typnotnull, t.typdefault)
    from pg_type as t join pg_namespace as n on n.oid = t.typnamespace
    where n.nspname not in {SYSTEM} and t.typtype in ('e', 'd', 'r', 'm')""",
    f"""select format('view %s: %s', c.oid::regclass, pg_get_viewdef(c.oid))
    from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
    where c.relkind in ('v', 'm') and n.nspname not in {SYSTEM}""",
    """select format('sequence %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s',
        s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,
        s.seqcycle)
    from pg_sequence as s""",
    """select format('default acl of %s in %s on %s: %s', d.defaclrole::regrole,
        coalesce(d.defaclnamespace::regnamespace::text, '-'), d.defaclobjtype, d.defaclacl)
    from pg_default_acl as d""",
    """select format('publication %s all=%s insert=%s update=%s delete=%s truncate=%s via_root=%s owner=%s',
        pubname, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot, pubowner::regrole)
    from pg_publication""",
    """select format('publication %s table %s where=%s columns=%s', p.pubname, r.prrelid::regclass,
        pg_get_expr(r.prqual, r.prrelid), r.prattrs)
    from pg_publication_rel as r join pg_publication as p on p.oid = r.prpubid""",
    """select format('extension %s schema=%s', extname, extnamespace::regnamespace) from pg_extension""",
    """select format('role %s super=%s inherit=%s createrole=%s createdb=%s login=%s replication=%s '
        'bypassrls=%s',
        rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls)
    from pg_roles where rolname !~ '^pg_'""",
    """select format('member %s of %s admin=%s', m.member::regrole, m.roleid::regrole, m.admin_option)
    from pg_auth_members as m where m.roleid::regrole::text !~ '^pg_'""",
    """select format('role setting of %s in %s: %s',
        case s.setrole when 0 then '-' else s.setrole::regrole::text end,
        coalesce((select datname from pg_database where oid = s.setdatabase), '-'), s.setconfig)
    from pg_db_role_setting as s where s.setdatabase in (0, (select oid from pg_database
        where datname = current_database()))""",
    f"""select format('comment on %s: %s',
        pg_describe_object(d.classoid, d.objoid, d.objsubid), md5(d.description))
    from pg_description as d
    where d.classoid in ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_namespace'::regclass,
        'pg_type'::regclass, 'pg_constraint'::regclass, 'pg_policy'::regclass, 'pg_trigger'::regclass)
        and coalesce((select nspname from pg_namespace where oid = case d.classoid
            when 'pg_class'::regclass then (select relnamespace from pg_class where oid = d.objoid)
            when 'pg_proc'::regclass then (select pronamespace from pg_proc where oid = d.objoid)
            when 'pg_type'::regclass then (select typnamespace from pg_type where oid = d.objoid)
            when 'pg_constraint'::regclass then (select connamespace from pg_constraint where oid = d.objoid)
            when 'pg_namespace'::regclass then d.objoid end), '-') not in {SYSTEM}""",
    """select format('comment on role %s: %s', r.rolname, md5(d.description))
    from pg_shdescription as d join pg_roles as r on r.oid = d.objoid
    where d.classoid = 'pg_authid'::regclass""",
)

type Conn = psycopg.Connection[tuple[object, ...]]


def objects(conn: Conn) -> set[str]:
    """Every object a header may name, as the `-- Defines:` block writes it (dated partitions left out)."""
    conn.execute("set search_path = ''")
    return {str(row[0]) for row in conn.execute(OBJECTS) if not DATED.search(str(row[0]))}


def header_defines(path: Path) -> list[str]:
    """The lines of the header's `-- Defines:` block: `--   <kind> <name>`, one per object."""
    lines = path.read_text().splitlines()
    if "-- Defines:" not in lines:
        return []
    found = []
    for line in lines[lines.index("-- Defines:") + 1 :]:
        if not line.startswith("--   "):
            break
        found.append(line.removeprefix("--   "))
    return found


def unresolved_calls(conn: Conn) -> list[str]:
    """`schema.name(` calls in the bodies of SQL and PL/pgSQL functions that name no existing function."""
    known = {
        (str(schema), str(name))
        for schema, name in conn.execute(
            "select n.nspname, p.proname from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace"
        )
    }
    rows = conn.execute(
        f"""select p.oid::regprocedure::text, p.prosrc from pg_proc as p
        join pg_namespace as n on n.oid = p.pronamespace join pg_language as l on l.oid = p.prolang
        where l.lanname in ('sql', 'plpgsql') and n.nspname not in {SYSTEM}"""
    ).fetchall()
    return sorted(
        f"{function} calls {schema}.{name}()"
        for function, source in rows
        for schema, name in set(CALL.findall(re.sub(r"--[^\n]*", "", str(source))))
        if (schema, name) not in known
    )


def fingerprint(conn: Conn) -> list[str]:
    """The schema as sorted lines of catalog facts (a line break in one written as \\n), dated partitions
    left out."""
    conn.execute("set search_path = ''")
    lines = [str(row[0]).replace("\n", "\\n") for query in FINGERPRINT for row in conn.execute(query)]
    return sorted(line for line in lines if not DATED.search(line))


@dataclass
class Step:
    """What applying one migration did."""

    name: str
    error: str | None = None
    declared: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


@dataclass
class Story:
    """Every step, and the schema after the last."""

    steps: list[Step]
    final: list[str]


@pytest.fixture(scope="module")
def story(pg: Settings) -> Iterator[Story]:
    """The project's migrations applied one at a time to a fresh database in the session's cluster."""
    migrate.recreate_database(pg, DATABASE)
    migrate.apply_platform(pg, DATABASE)
    steps = []
    try:
        with connect(pg, user=migrate.APP_USER, database=DATABASE) as conn:
            before = objects(conn)
            for migration in migrate.list_migrations(MIGRATIONS):
                step = Step(migration.path.name, declared=header_defines(migration.path))
                steps.append(step)
                try:
                    with conn.transaction():
                        migrate.run_script(conn, migration.path)
                except BusymateError as exc:
                    step.error = str(exc)
                    break
                after = objects(conn)
                # A role outlives the database (it is the cluster's), so it only has to exist.
                step.missing = [
                    line
                    for line in step.declared
                    if line not in (after if line.startswith("role ") else after - before)
                ]
                step.undeclared = sorted(
                    line
                    for line in after - before
                    if line not in step.declared and not line.startswith("role ")
                )
                step.unresolved = unresolved_calls(conn)
                before = after
            final = fingerprint(conn)
        yield Story(steps, final)
    finally:
        with connect(pg, database="template1", autocommit=True) as conn:
            drop_database(conn, DATABASE)


def test_each_migration_applies_cleanly_after_the_ones_before(story: Story) -> None:
    failed = [f"{step.name}: {step.error}" for step in story.steps if step.error]
    assert not failed, failed
    assert len(story.steps) == len(list(MIGRATIONS.glob("*.sql")))


def test_each_header_says_exactly_what_its_file_defines(story: Story) -> None:
    wrong = []
    for step in story.steps:
        if not step.declared:
            wrong.append(f"{step.name}: no `-- Defines:` block in its header")
        if step.missing:
            wrong.append(f"{step.name}: its header names what it does not define: {step.missing}")
        if step.undeclared:
            block = "\n".join(["-- Defines:", *(f"--   {line}" for line in step.undeclared)])
            wrong.append(f"{step.name}: defines what its header does not name:\n{block}")
    assert not wrong, "\n".join(wrong)


def test_no_function_calls_one_that_does_not_exist_yet(story: Story) -> None:
    broken = [f"after {step.name}: {call}" for step in story.steps for call in step.unresolved]
    assert not broken, "\n".join(broken)


def test_the_last_migration_leaves_the_committed_schema(story: Story) -> None:
    text = "\n".join(story.final) + "\n"
    if os.environ.get("BUSYMATE_UPDATE_SCHEMA_SNAPSHOT") == "1":
        SNAPSHOT.write_text(text)
    expected = SNAPSHOT.read_text().splitlines()
    gone = sorted(set(expected) - set(story.final))
    new = sorted(set(story.final) - set(expected))
    assert (gone, new) == ([], []), (
        f"the schema differs from {SNAPSHOT.name} (refresh it with BUSYMATE_UPDATE_SCHEMA_SNAPSHOT=1 if the "
        "change is meant): (only in the snapshot, only in the database)"
    )
