"""The pgTAP runner must fail loudly: a failed, missing, miscounted or erroring assertion is a failure."""

from __future__ import annotations

from pathlib import Path

import psycopg

from busymate.settings import Settings
from busymate.stack import pgtap
from tests.conftest import PROJECT_DIR


def _parse(text: str) -> pgtap.TapResult:
    return pgtap.parse_tap(pgtap.TapResult(path=Path("x.test.sql")), text)


def test_parse_counts_a_clean_run() -> None:
    result = _parse("1..2\nok 1 - a\nsome select output\nok 2 - b\n")
    assert (result.ok, result.planned, result.passed) == (True, 2, 2)
    assert "some select output" not in result.output


def test_parse_flags_a_failure_a_missing_plan_and_a_short_run() -> None:
    failed = _parse("1..2\nok 1 - a\nnot ok 2 - b\n# Failed test 2\n")
    assert not failed.ok
    assert failed.failures == ["not ok 2 - b"]
    assert "not ok 2 - b" in failed.problem()
    assert not _parse("ok 1 - a\n").ok
    short = _parse("1..3\nok 1 - a\n")
    assert not short.ok
    assert "planned 3" in short.problem()


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_a_failing_assertion_fails_the_file(pg: Settings, pgtap_db: str, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "broken.test.sql",
        "begin; select plan(2); select ok(true, 'fine'); select is(1, 2, 'one is two');"
        " select * from finish(); rollback;",
    )
    result = pgtap.run_file(pg, pgtap_db, path)
    assert not result.ok
    assert result.failures == ["not ok 2 - one is two"]


def test_an_sql_error_fails_the_file_with_its_message(pg: Settings, pgtap_db: str, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "error.test.sql",
        "begin; select plan(1); select * from no_such_table; select ok(true); rollback;",
    )
    result = pgtap.run_file(pg, pgtap_db, path)
    assert not result.ok
    assert result.error is not None
    assert 'relation "no_such_table" does not exist' in result.error


def test_the_lint_file_catches_each_violation(pg: Settings, tmp_path: Path) -> None:
    lint = PROJECT_DIR / "supabase" / "tests" / "database" / "000-lint.test.sql"
    with pgtap.throwaway_database(pg) as database:
        with psycopg.connect(pg.db_url(database=database)) as conn:
            conn.execute("create table public.no_rls (id int primary key)")
            conn.execute("create view public.leaky as select 1 as one")
            conn.execute("create table public.guarded (id uuid primary key)")
            conn.execute("alter table public.guarded enable row level security")
            conn.execute(
                'create policy "guarded: select bare" on public.guarded for select to authenticated'
                " using (id = auth.uid())"
            )
            conn.execute('create policy "guarded: everything" on public.guarded using (true)')
            conn.execute(
                "create schema if not exists private;"
                "create function private.unpinned() returns int language sql security definer as 'select 1'"
            )
        result = pgtap.run_file(pg, database, lint)
    assert not result.ok
    failed = " ".join(result.failures)
    for expected in (
        "row-level security enabled",
        "security_invoker",
        "pins search_path",
        "anon can execute no security-definer function",
        "outside a (select ...)",
        "names the roles",
        "for all commands",
    ):
        assert expected in failed, f"the lint did not catch: {expected}\n{result.output}"
    assert "no_rls" in result.output
    assert "private.unpinned()" in result.output
    assert "guarded: select bare calls auth.uid()" in result.output
