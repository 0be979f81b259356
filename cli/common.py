"""What every command shares: the settings from the edge and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import NoReturn

import typer
from rich.console import Console

from busymate.errors import BusymateError
from busymate.settings import Settings

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def settings_from(ctx: typer.Context) -> Settings:
    """The settings the root callback built, built once per process."""
    obj = ctx.find_root().obj
    if isinstance(obj, Settings):
        return obj
    built = Settings.from_env()
    ctx.find_root().obj = built
    return built


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` as one line on stderr and exit with `code`."""
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def friendly[**P, R](fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a BusymateError into one line on stderr and a non-zero exit, never a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except BusymateError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper
