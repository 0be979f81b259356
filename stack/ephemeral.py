"""A throw-away cluster on a free port, for tests and benchmarks that must not touch the developer's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from busymate.errors import BusymateError
from busymate.settings import Settings
from busymate.stack.postgres import Cluster, free_port


def settings_for(project_dir: Path, state_dir: Path) -> Settings:
    """Settings for `project_dir` with state under `state_dir`, a free port and no fsync."""
    env = {"BUSYMATE_PROJECT_DIR": str(project_dir), "BUSYMATE_STATE_DIR": str(state_dir)}
    return Settings.from_env(env).with_overrides(db_port=free_port(), durable=False)


def start_cluster(project_dir: Path, state_dir: Path, tries: int = 5) -> tuple[Cluster, Settings]:
    """Start a cluster, moving to another port if some other program took ours in the meantime."""
    for _ in range(tries):
        settings = settings_for(project_dir, state_dir)
        cluster = Cluster(settings)
        try:
            cluster.start()
        except BusymateError as exc:
            if "already in use" in str(exc):
                continue
            raise
        return cluster, settings
    raise BusymateError(f"no free port for a throw-away cluster after {tries} tries")


@contextmanager
def ephemeral_cluster(project_dir: Path, state_dir: Path) -> Iterator[Settings]:
    """A started cluster that is deleted, data and all, when the block ends."""
    cluster, settings = start_cluster(project_dir, state_dir)
    try:
        yield settings
    finally:
        cluster.destroy()
