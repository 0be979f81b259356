"""`busymate db reset` (platform, migrations, seed) beside its floor: dropping and creating an empty database.

Prints one JSON line per figure, as every script in bench/ does. Runs on a throw-away cluster.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from busymate.settings import Settings
from busymate.stack import migrate
from busymate.stack.bench import figure, figures_on_throwaway_cluster

PROJECT_DIR = Path(__file__).resolve().parent.parent
ROUNDS = 7


def run(settings: Settings) -> list[str]:
    """Time both, median of ROUNDS runs each, in the same cluster."""
    migrate.reset(settings)  # warm the cluster once
    resets, floors = [], []
    for _ in range(ROUNDS):
        resets.append(migrate.reset(settings))
        started = time.perf_counter()
        migrate.recreate_database(settings, "bench_floor")
        floors.append(time.perf_counter() - started)
    return [
        figure(
            bench="db_reset",
            figure="busymate db reset, median seconds",
            value=round(statistics.median(resets), 4),
            unit="s",
            baseline="drop and create an empty database",
            baseline_value=round(statistics.median(floors), 4),
        )
    ]


def main() -> None:
    """Run on a throw-away cluster and print the figure."""
    for line in figures_on_throwaway_cluster(PROJECT_DIR, run):
        print(line, flush=True)


if __name__ == "__main__":
    main()
