"""The API server's log: api.log rotated by size, and a failure's traceback written once.

Whatever a client sends must not be able to fill the disk: RotatingFileHandler keeps api.log under
`api_log_max_bytes` (three old files beside it), a traceback keeps its last TRACEBACK_FRAMES frames (a deep
recursion is thousands), and a failure seen before (same exception type, raised at the same line, logged by
the same logger) becomes one line with how many times it happened.
"""

from __future__ import annotations

import logging
import logging.handlers
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

BACKUPS = 3
TRACEBACK_FRAMES = 30
MAX_MESSAGE = 2000  # characters of a message, so a log line cannot carry a whole request
MAX_KEYS = 10_000
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class RepeatedFailures(logging.Filter):
    """The first record of a failure keeps its traceback; a repeat becomes one line with a count."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[str, str, str, int], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite `record` in place when its failure was logged before; never drops a record."""
        exc_info = record.exc_info
        if not exc_info or exc_info[0] is None or exc_info[1] is None:
            return True
        kind, error, tb = exc_info
        key = (record.name, kind.__qualname__, *_origin(tb))
        count = self._seen.get(key, 0) + 1
        if len(self._seen) < MAX_KEYS or key in self._seen:
            self._seen[key] = count
        if count == 1:
            return True
        where = f"{key[2]}:{key[3]}" if key[2] else "?"
        detail = str(error).splitlines()[0][:200] if str(error).strip() else ""
        record.msg = f"{record.getMessage()} ({kind.__qualname__} at {where}: {detail}; {count} times, "
        record.msg += "traceback logged the first time)"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


class Formatter(logging.Formatter):
    """FORMAT, with long messages cut and tracebacks kept to their last TRACEBACK_FRAMES frames."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line, its message cut at MAX_MESSAGE characters."""
        if len(record.message) > MAX_MESSAGE:
            record.message = record.message[:MAX_MESSAGE] + f"... ({len(record.message)} characters)"
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        """The traceback's last frames."""
        lines = traceback.format_exception(ei[0], ei[1], ei[2], limit=-TRACEBACK_FRAMES)
        return "".join(lines).rstrip("\n")


def configure(log_file: Path | None, max_bytes: int) -> None:
    """Send every logger's records (uvicorn's too) to `log_file`, rotated at `max_bytes`, or to stderr."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler()
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=max_bytes, backupCount=BACKUPS, encoding="utf-8"
        )
    handler.setFormatter(Formatter(FORMAT))
    handler.addFilter(RepeatedFailures())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _origin(tb: TracebackType | None) -> tuple[str, int]:
    """Where the exception was raised: the innermost frame's file and line."""
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return "", 0
    return last.tb_frame.f_code.co_filename, last.tb_lineno
