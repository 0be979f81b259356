"""One throw-away Postgres per test session, on a free port, never the developer's cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from busymate.settings import Settings
from busymate.stack import ephemeral, migrate, pgtap
from busymate.stack.api import ApiServer
from busymate.stack.postgres import Cluster, free_port
from tests.world import World, make_world

PROJECT_DIR = Path(__file__).resolve().parent.parent


def base_settings(state_dir: Path) -> Settings:
    """Settings for this checkout with state under `state_dir` and a free port."""
    return ephemeral.settings_for(PROJECT_DIR, state_dir)


def start_cluster(state_dir: Path) -> tuple[Cluster, Settings]:
    """Start a throw-away cluster for this checkout."""
    return ephemeral.start_cluster(PROJECT_DIR, state_dir)


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A started, reset cluster with the platform layer, migrations and seed."""
    with ephemeral.ephemeral_cluster(
        PROJECT_DIR, tmp_path_factory.mktemp("cluster") / ".busymate"
    ) as settings:
        migrate.reset(settings)
        yield settings


@pytest.fixture(scope="session")
def pgtap_db(pg: Settings) -> Iterator[str]:
    """One clone of the migrated test template; every pgTAP file rolls back what it does."""
    with pgtap.throwaway_database(pg) as name:
        yield name


@pytest.fixture(scope="session")
def stack(pg: Settings) -> Iterator[Settings]:
    """The API server on a free port, in front of the session's cluster."""
    settings = pg.with_overrides(api_port=free_port())
    server = ApiServer(settings)
    server.start()
    try:
        yield settings
    finally:
        server.stop()


@pytest.fixture(scope="session")
def world(stack: Settings) -> World:
    """Users, workspaces and devices committed in the session's database, with their tokens."""
    return make_world(stack, "e2e")
