"""What every command shares: the settings from the edge and one-line errors."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from busymate import tokens
from busymate.api_core import ApiRefused
from busymate.errors import BusymateError
from busymate.project import with_remembered
from busymate.settings import Settings


class _Console(Console):
    """A console whose reader may go away (`| head`, a `tee` ended by Ctrl-C): it falls silent rather than
    exit, so what a command does after printing (stopping servers, say) still happens."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.file.fileno())


out = _Console(highlight=False)
err = _Console(stderr=True, highlight=False)


def settings_from(ctx: typer.Context) -> Settings:
    """The settings the root callback built, built once per process: the environment, then what the
    project remembers (the ports it last started on) for what the environment does not say."""
    obj = ctx.find_root().obj
    if isinstance(obj, Settings):
        return obj
    built = Settings.from_env()
    built = with_remembered(built, os.environ)
    built = local_endpoint(built)
    ctx.find_root().obj = built
    return built


def local_endpoint(settings: Settings) -> Settings:
    """The URL and anon key workers use, from the local stack the CLI runs when the environment does not name
    them (BUSYMATE_URL / BUSYMATE_ANON_KEY): the CLI is that stack's operator, so it may derive the key."""
    return settings.with_overrides(
        url=settings.url or settings.api_url,
        anon_key=settings.anon_key or tokens.anon_key(settings.jwt_secret),
    )


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` as one line on stderr and exit with `code`."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def friendly[**P, R](fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a BusymateError into one line on stderr and a non-zero exit, never a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ApiRefused as exc:
            fail(explain(exc), exc.exit_code)
        except BusymateError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper


# What a refusal from the database means, and what to do, by SQLSTATE (PostgREST passes them through).
_SQLSTATES = {
    "23505": "that value is already taken ({details})",
    "23503": "it refers to something that does not exist ({details})",
    "23514": "a value is out of range or not allowed ({message})",
    "23502": "a required value is missing ({message})",
    "22P02": "a value is not in the right form ({message})",
    "22001": "a value is too long ({message})",
    "42501": "{message}",
    "PT404": "{message}",
    "57014": "the database took too long ({message}); try again, or ask for less",
}


def explain(exc: ApiRefused) -> str:
    """A refusal in words: what was wrong, the server's hint as what to do, never a bare SQL error."""
    if exc.status == 503:
        return (
            f"the API server cannot serve this now ({exc.message}): check that Postgres runs "
            "(`busymate status`; `busymate start` starts it), then try again"
        )
    if exc.status == 429:
        return f"{exc.message}: too many attempts from this address; wait, then try again"
    if exc.code == "invalid_credentials":
        return "Invalid login credentials: check the email and password (or run `busymate login` again)"
    template = _SQLSTATES.get(exc.code)
    if template is None:
        said = exc.message + (f" ({exc.details})" if exc.details else "")
        hint = exc.hint or "check the command's arguments (`busymate --help`)"
        return f"the server refused it: {said}; {hint}"
    said = template.format(message=exc.message, details=exc.details or exc.message)
    return f"{said}; {exc.hint}" if exc.hint else said
