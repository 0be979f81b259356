"""The proxy's durable writer: the shared spool (`busymate.spool`) posting to `rpc/ingest_entries`.

The writer moved to `busymate/spool.py` so bmc shares it; this module keeps the proxy's imports working.
"""

from __future__ import annotations

from busymate.spool import BACKOFF, BUSY_ROWS, BUSY_TICK, INGEST, MAX_BYTES, MAX_ROWS, MAX_WAIT, Stats, Writer

__all__ = [
    "BACKOFF",
    "BUSY_ROWS",
    "BUSY_TICK",
    "INGEST",
    "MAX_BYTES",
    "MAX_ROWS",
    "MAX_WAIT",
    "Stats",
    "Writer",
]
