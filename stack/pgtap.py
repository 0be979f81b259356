"""Run pgTAP files against a throw-away clone of a migrated template, never the developer's data."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from busymate.errors import BusymateError
from busymate.settings import Settings
from busymate.stack.db import connect, create_database, drop_database
from busymate.stack.migrate import APP_USER, apply_platform, migrate, recreate_database, run_script
from busymate.stack.postgres import find_bindir

TEMPLATE = "busymate_test_template"
_PLAN = re.compile(r"^1\.\.(\d+)")
_TEST = re.compile(r"^(not )?ok (\d+)(.*)$")


@dataclass(slots=True)
class TapResult:
    """What one pgTAP file reported."""

    path: Path
    planned: int | None = None
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    output: str = ""

    @property
    def run(self) -> int:
        """Assertions that reported, passed or not."""
        return self.passed + len(self.failures)

    @property
    def ok(self) -> bool:
        """True only for a clean run of exactly the planned assertions, all passing."""
        return (
            self.error is None and not self.failures and self.planned is not None and self.planned == self.run
        )

    def problem(self) -> str:
        """One paragraph saying why the file failed."""
        if self.error:
            return f"{self.path.name}: {self.error}"
        if self.planned is None:
            return f"{self.path.name}: no plan (call select plan(N) first)"
        if self.failures:
            return f"{self.path.name}: " + "; ".join(self.failures)
        return f"{self.path.name}: planned {self.planned} assertions but ran {self.run}"


def parse_tap(result: TapResult, output: str) -> TapResult:
    """Fill `result` from pgTAP's output lines; what a file's own selects print is left out."""
    kept: list[str] = []
    for raw in output.splitlines():
        line = raw.strip()
        if _PLAN.match(line) or _TEST.match(line) or line.startswith("#"):
            kept.append(raw.rstrip())
        if plan := _PLAN.match(line):
            result.planned = int(plan.group(1))
        elif test := _TEST.match(line):
            if test.group(1):
                result.failures.append(f"not ok {test.group(2)}{test.group(3)}")
            else:
                result.passed += 1
    result.output = "\n".join(kept)
    return result


def _content_hash(settings: Settings) -> str:
    digest = hashlib.sha256()
    folders = (settings.platform_dir, settings.migrations_dir, settings.testing_dir)
    for path in sorted(p for folder in folders for p in folder.glob("*.sql")):
        digest.update(str(path.relative_to(settings.project_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_template(settings: Settings) -> bool:
    """Build the migrated test template unless one for this exact SQL exists; True when rebuilt."""
    wanted = f"busymate template {_content_hash(settings)}"
    with connect(settings, database="template1", autocommit=True) as conn:
        row = conn.execute(
            "select shobj_description(oid, 'pg_database') from pg_database where datname = %s", (TEMPLATE,)
        ).fetchone()
    if row and row[0] == wanted:
        return False
    recreate_database(settings, TEMPLATE)
    apply_platform(settings, TEMPLATE)
    migrate(settings, database=TEMPLATE)
    with connect(settings, database=TEMPLATE) as conn, conn.transaction():
        for path in sorted(settings.testing_dir.glob("*.sql")):
            run_script(conn, path)
    with connect(settings, database="template1", autocommit=True) as conn:
        conn.execute(
            sql.SQL("comment on database {} is {}").format(sql.Identifier(TEMPLATE), sql.Literal(wanted))
        )
    return True


@contextmanager
def throwaway_database(settings: Settings) -> Iterator[str]:
    """A fresh clone of the test template, dropped afterwards."""
    ensure_template(settings)
    name = f"busymate_test_{os.getpid()}_{secrets.token_hex(3)}"
    with connect(settings, database="template1", autocommit=True) as conn:
        create_database(conn, name, owner=APP_USER, template=TEMPLATE)
    try:
        yield name
    finally:
        with connect(settings, database="template1", autocommit=True) as conn:
            drop_database(conn, name)


def run_file(settings: Settings, database: str, path: Path, timeout: float = 300) -> TapResult:
    """Run one pgTAP file with psql as the app user, the way pg_prove does."""
    psql = find_bindir(settings) / "psql"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGPASSWORD": settings.db_password,
        "PGCONNECT_TIMEOUT": "10",
        "PGOPTIONS": "--client-min-messages=warning",
    }
    args = [
        str(psql), "--no-psqlrc", "--no-align", "--quiet", "--tuples-only", "--pset", "pager=off",
        "--set", "ON_ERROR_STOP=1", "--host", settings.db_host, "--port", str(settings.db_port),
        "--username", APP_USER, "--dbname", database, "--file", str(path),
    ]  # fmt: skip
    result = TapResult(path=path)
    try:
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        result.error = f"did not finish within {timeout:.0f} s"
        return result
    parse_tap(result, proc.stdout)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "ERROR" in line or "FATAL" in line]
        result.error = (
            errors[0] if errors else proc.stderr.strip() or f"psql exit {proc.returncode}"
        ).strip()
    return result


def discover(settings: Settings, paths: Sequence[Path] = ()) -> list[Path]:
    """The pgTAP files to run: the given ones, else every supabase/tests/**/*.test.sql, in name order."""
    if paths:
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise BusymateError(f"no such test file: {missing[0]}")
        return list(paths)
    return sorted(settings.db_tests_dir.rglob("*.test.sql"))
