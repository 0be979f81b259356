"""Errors a user can hit: each says what went wrong and what to do, never a traceback."""

from __future__ import annotations


class BusymateError(Exception):
    """A failure the CLI reports as one line and a non-zero exit code."""

    exit_code: int = 1
