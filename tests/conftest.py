"""One throw-away Postgres per test session, on a free port, never the developer's cluster."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from busymate.cli.session import ADMIN_FILE, local_admin
from busymate.keys import KEY_FILE
from busymate.settings import Settings
from busymate.stack import ephemeral, migrate, pgtap
from busymate.stack.api_process import ApiServer
from busymate.stack.postgres import Cluster, free_port
from tests.fake_anthropic import FakeAnthropic
from tests.world import World, make_world

PROJECT_DIR = Path(__file__).resolve().parent.parent


def base_settings(state_dir: Path) -> Settings:
    """Settings for this checkout with state under `state_dir` and a free port."""
    return ephemeral.settings_for(PROJECT_DIR, state_dir)


def start_cluster(state_dir: Path) -> tuple[Cluster, Settings]:
    """Start a throw-away cluster for this checkout."""
    return ephemeral.start_cluster(PROJECT_DIR, state_dir)


@contextmanager
def second_api_server(
    stack: Settings, name: str, *, same_key: bool = False, **overrides: Any
) -> Iterator[tuple[Settings, ApiServer]]:
    """Another API server on the session's database, with its own port and state folder, that a test may stop
    and start. The CLI there acts as the main server's local admin (creating it afresh would reset its
    password under the main server's CLI)."""
    local_admin(stack)
    settings = stack.with_overrides(api_port=free_port(), state_dir=stack.state_dir / name, **overrides)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(stack.state_dir / ADMIN_FILE, settings.state_dir / ADMIN_FILE)
    if (
        same_key
    ):  # the main server's ES256 key too: its sessions verify here, as on two replicas of one project
        shutil.copy(stack.state_dir / KEY_FILE, settings.state_dir / KEY_FILE)
    server = ApiServer(settings)
    server.start()
    try:
        yield settings, server
    finally:
        server.stop()


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
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """The scripted Messages API (tests/fake_anthropic.py) on a free port, for the whole session."""
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="session")
def stack(pg: Settings, fake_anthropic: FakeAnthropic) -> Iterator[Settings]:
    """The API server on a free port, in front of the session's cluster.

    It signs sessions with ES256 (the stack's default is HS256, proved by `hs256_stack`), and its per-address
    limits are out of the way: every test signs in from 127.0.0.1. BUSYMATE_DASHBOARD_DIR, when set, is the
    dashboard build it serves (dashboard/dist otherwise). Its functions reach the fake Anthropic API."""
    settings = pg.with_overrides(
        api_port=free_port(),
        jwt_alg="ES256",
        auth_rate_limit=100_000,
        pair_rate_limit=100_000,
        function_env=(("ANTHROPIC_API_KEY", "sk-ant-fake-key"), ("ANTHROPIC_BASE_URL", fake_anthropic.url)),
    )
    if os.environ.get("BUSYMATE_DASHBOARD_DIR"):
        settings = settings.with_overrides(dashboard_dir=Path(os.environ["BUSYMATE_DASHBOARD_DIR"]).resolve())
    server = ApiServer(settings)
    server.start()
    try:
        yield settings
    finally:
        server.stop()


@pytest.fixture(scope="session")
def hs256_stack(pg: Settings) -> Iterator[Settings]:
    """A second API server on the same database: HS256 sessions, its own ES256 key, and tight limits
    (5 sign-ins and 3 pairing attempts per address per 5 minutes) for the rate-limit tests."""
    settings = pg.with_overrides(
        api_port=free_port(),
        state_dir=pg.state_dir / "hs256",
        jwt_alg="HS256",
        auth_rate_limit=5,
        pair_rate_limit=3,
    )
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
