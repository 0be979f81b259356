"""`busymate db`: the project-local Postgres, its migrations and its pgTAP tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from busymate.cli.common import err, fail, friendly, out, settings_from
from busymate.cli.session import forget_local_sessions
from busymate.cli.status import Output, print_status
from busymate.stack import migrate as migrations
from busymate.stack import pgtap
from busymate.stack.postgres import Cluster

app = typer.Typer(
    help="Run the project's local Postgres, apply migrations and run pgTAP tests.", no_args_is_help=True
)


def _require_running(cluster: Cluster) -> None:
    if not cluster.status().running:
        fail("the database is not running; start it with `busymate db start`")


@app.command()
@friendly
def start(ctx: typer.Context) -> None:
    """Start Postgres (creating and migrating it on first run) and say where it is."""
    settings = settings_from(ctx)
    cluster = Cluster(settings)
    started = cluster.start()
    state = migrations.ensure_ready(settings, progress=lambda line: err.print(f"  {line}"))
    verb = "started" if started else "already running"
    out.print(f"Postgres {verb} on {settings.db_host}:{settings.db_port} (database {state})")
    out.print(f'DB_URL="{settings.db_url()}"', soft_wrap=True)


@app.command()
@friendly
def stop(ctx: typer.Context) -> None:
    """Stop Postgres; stopping a stopped database is fine."""
    stopped = Cluster(settings_from(ctx)).stop()
    out.print("Postgres stopped" if stopped else "Postgres was not running")


@app.command()
@friendly
def status(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="pretty, json or env")] = Output.pretty,
) -> None:
    """Say whether Postgres runs and how to reach it."""
    if not print_status(settings_from(ctx), output):
        raise typer.Exit(1)


@app.command()
@friendly
def migrate(ctx: typer.Context) -> None:
    """Apply the pending migrations of supabase/migrations, each in its own transaction."""
    settings = settings_from(ctx)
    _require_running(Cluster(settings))
    applied = migrations.migrate(settings, progress=lambda line: out.print(line))
    out.print(f"{len(applied)} migration(s) applied" if applied else "database is up to date")


@app.command()
@friendly
def reset(ctx: typer.Context) -> None:
    """Rebuild the database from nothing: platform layer, every migration, then supabase/seed.sql."""
    settings = settings_from(ctx)
    _require_running(Cluster(settings))
    seconds = migrations.reset(settings, progress=lambda line: out.print(f"  {line}"))
    out.print(f"database reset in {seconds:.2f} s")
    for what in forget_local_sessions(settings):  # their users and sessions went with the database
        err.print(f"forgot {what}: the database no longer has it")


@app.command("test")
@friendly
def run_tests(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None, typer.Argument(help="pgTAP files; default: supabase/tests/**/*.test.sql")
    ] = None,
) -> None:
    """Run the pgTAP files against a throw-away clone of the migrated template and print TAP."""
    settings = settings_from(ctx)
    _require_running(Cluster(settings))
    paths = pgtap.discover(settings, files or [])
    if not paths:
        fail(f"no pgTAP files found under {settings.db_tests_dir}")
    results = []
    with pgtap.throwaway_database(settings) as database:
        for path in paths:
            result = pgtap.run_file(settings, database, path)
            results.append(result)
            shown = (
                path.relative_to(settings.project_dir) if path.is_relative_to(settings.project_dir) else path
            )
            out.print(f"# {shown}")
            out.print(result.output.rstrip(), soft_wrap=True, markup=False)
            if not result.ok:
                err.print(f"[red]FAIL[/] {result.problem()}", soft_wrap=True)
    failed = [r for r in results if not r.ok]
    assertions = sum(r.run for r in results)
    out.print(
        f"Files={len(results)}, Tests={assertions}, "
        + ("Result: PASS" if not failed else f"Failed files={len(failed)}, Result: FAIL")
    )
    if failed:
        raise typer.Exit(1)
