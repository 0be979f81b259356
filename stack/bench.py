"""What every script in bench/ shares: the JSON line it prints and the throw-away cluster it runs on.

It lives in the stack because it starts one (busymate/ may not import the stack: tests/test_boundaries.py),
and it prints nothing: the scripts print what it yields. `make bench` runs them with `python -P`, so they
cannot import a module beside them (bench/realtime.py would shadow the realtime package).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from busymate.settings import Settings
from busymate.stack import ephemeral


def figure(*, bench: str, figure: str, value: float, unit: str, baseline: str, baseline_value: float) -> str:
    """One figure beside its baseline, as the JSON line `make bench` prints (DEVELOPERS.md)."""
    return json.dumps(
        {
            "bench": bench,
            "figure": figure,
            "value": value,
            "unit": unit,
            "baseline": baseline,
            "baseline_value": baseline_value,
            "ratio": round(value / baseline_value, 3) if baseline_value else None,
        }
    )


def figures_on_throwaway_cluster(
    project_dir: Path, run: Callable[[Settings], Iterable[str]]
) -> Iterator[str]:
    """Start a cluster on a free port, yield what `run` yields, and delete the cluster."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        ephemeral.ephemeral_cluster(project_dir, Path(tmp)) as settings,
    ):
        yield from run(settings)
