"""What every script in bench/ shares: the JSON line it prints and the throw-away cluster it runs on."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
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


def run_on_throwaway_cluster(project_dir: Path, run: Callable[[Settings], Iterable[str]]) -> None:
    """Start a cluster on a free port, print what `run` yields, and delete the cluster."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        ephemeral.ephemeral_cluster(project_dir, Path(tmp)) as settings,
    ):
        for line in run(settings):
            print(line, flush=True)
