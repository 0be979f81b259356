"""Nothing is lost: the API server is stopped for 30 seconds in the middle of a capture of 5,000 requests,
started again, and all 5,000 entries are found, each once. The proxy and the API server here are their own
(the API server on the session's database, its own port and state folder), so stopping it disturbs no other
test.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from busymate.settings import Settings
from busymate.stack.api_process import ApiServer
from tests.conftest import second_api_server
from tests.e2e.origin import Origin
from tests.e2e.proxy_helpers import free_port_block, fresh_workspace, rpc, running_proxy, sql, until
from tests.world import World

REQUESTS = 5000
OUTAGE = 30.0
RATE = 110.0  # requests per second: the capture spans the outage
WORKERS = 4


@pytest.fixture(scope="module")
def own_api(stack: Settings) -> Iterator[tuple[Settings, ApiServer]]:
    """A second API server on the session's database that this module may stop and start."""
    with second_api_server(stack, "spool-test") as started:
        yield started


def test_stopping_the_api_for_30_seconds_loses_nothing(
    own_api: tuple[Settings, ApiServer], world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings, server = own_api
    pool = free_port_block(2)
    device = rpc(
        settings,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": fresh_workspace(settings, "spool"),
            "name": f"spool-{uuid.uuid4().hex[:6]}",
            "source": "proxy",
            "allowed_sources": ["127.0.0.1/32"],
            "proxy_port": pool[0],
        },
    )
    run_id = uuid.uuid4().hex
    sent = [0] * WORKERS
    failures: list[str] = []
    with (
        Origin(tmp_path_factory.mktemp("origin")) as origin,
        running_proxy(settings, pool, origin.ca_file) as proxy,
    ):
        proxy.wait_ports(lambda ports: pool[0] in ports, "the device's port")
        context = ssl.create_default_context(cafile=proxy.ca_file)
        start = time.monotonic()

        def load(worker: int) -> None:
            with httpx.Client(proxy=f"http://127.0.0.1:{pool[0]}", verify=context, timeout=30) as client:
                for i in range(worker, REQUESTS, WORKERS):
                    delay = start + i / RATE - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    try:
                        response = client.get(f"{origin.url}/hello?run={run_id}&i={i}")
                        if response.status_code != 200:
                            failures.append(f"{i}: {response.status_code}")
                    except httpx.HTTPError as exc:
                        failures.append(f"{i}: {exc}")
                    sent[worker] += 1

        workers = [threading.Thread(target=load, args=(w,)) for w in range(WORKERS)]
        for thread in workers:
            thread.start()
        until(lambda: sum(sent) >= 500, "the first 500 requests", 30)
        assert server.stop()
        stopped_at = sum(sent)
        time.sleep(OUTAGE)
        during = sum(sent) - stopped_at
        server.start()
        for thread in workers:
            thread.join(120)
        assert failures == []
        assert sum(sent) == REQUESTS
        # The capture went on while the API was away, and the proxy said where the flows were.
        assert during > 2000, during
        proxy.wait_log("kept in the spool and retried")

        def counted() -> tuple[int, int] | None:
            [(total, distinct)] = sql(
                settings,
                "select count(*), count(distinct query) from public.entries where query like %s",
                (f"run={run_id}&%",),
            )
            return (total, distinct) if total >= REQUESTS else None

        assert until(counted, "all 5,000 entries", 90) == (REQUESTS, REQUESTS)
        [(devices,)] = sql(
            settings,
            "select count(distinct device_uuid) from public.entries where query like %s",
            (f"run={run_id}&%",),
        )
        assert devices == 1
        proxy.wait_log("the API answers again")
        spool = settings.state_dir / "proxy" / "spool" / device["uuid"]
        assert until(lambda: not any(spool.glob("*.json")), "an empty spool", 10)
        proxy.alive()
