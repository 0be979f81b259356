"""`busymate db reset` (platform, migrations, seed) beside its floor: dropping and creating an empty database.

Prints one JSON line per figure, as every script in bench/ does. Runs on a throw-away cluster.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from busymate.stack import ephemeral, migrate

PROJECT_DIR = Path(__file__).resolve().parent.parent
ROUNDS = 7


def main() -> None:
    """Time both, median of ROUNDS runs each, in the same cluster."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        ephemeral.ephemeral_cluster(PROJECT_DIR, Path(tmp)) as settings,
    ):
        migrate.reset(settings)  # warm the cluster once
        resets, floors = [], []
        for _ in range(ROUNDS):
            resets.append(migrate.reset(settings))
            started = time.perf_counter()
            migrate.recreate_database(settings, "bench_floor")
            floors.append(time.perf_counter() - started)
        value, baseline = statistics.median(resets), statistics.median(floors)
        print(
            json.dumps(
                {
                    "bench": "db_reset",
                    "figure": "busymate db reset, median seconds",
                    "value": round(value, 4),
                    "unit": "s",
                    "baseline": "drop and create an empty database",
                    "baseline_value": round(baseline, 4),
                    "ratio": round(value / baseline, 2),
                }
            )
        )


if __name__ == "__main__":
    main()
