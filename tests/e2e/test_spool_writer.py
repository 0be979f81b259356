"""The proxy's spool writer against the real API: segments survive a writer that could not reach the API and
are written by the next one, a resent segment is stored once, and a refused credential (401) is reported with
the server's reason while its segments stay on disk."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

from busymate import tokens
from busymate.proxy.spool import Writer
from busymate.settings import Settings
from busymate.stack.postgres import free_port
from tests.e2e.proxy_helpers import sql
from tests.e2e.realtime_helpers import run
from tests.world import World


def rows(marker: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "method": "GET",
            "host": "spool.example",
            "path": f"/{i}",
            "query": marker,
            "status": 200,
        }
        for i in range(n)
    ]


def stored(settings: Settings, marker: str) -> tuple[int, int]:
    [(total, distinct)] = sql(
        settings, "select count(*), count(distinct id) from public.entries where query = %s", (marker,)
    )
    return total, distinct


def test_segments_outlive_an_unreachable_api_and_are_stored_once(
    stack: Settings, world: World, tmp_path: Path
) -> None:
    marker = f"spool={uuid.uuid4().hex}"
    device = world.ids["d1"]
    refused: list[tuple[str, str]] = []
    anon = tokens.anon_key(stack.jwt_secret)

    async def offline() -> None:
        writer = Writer(
            tmp_path, f"http://127.0.0.1:{free_port()}", anon, lambda _d: world.tokens["d1"],
            lambda d, why: refused.append((d, why)),
        )  # fmt: skip
        writer.start()
        for row in rows(marker, 120):
            writer.put(device, row)
        await asyncio.sleep(0.5)
        await writer.stop(drain_for=0.5)
        assert writer.pending_segments() >= 1
        assert writer.stats.failed_posts >= 1

    run(offline())
    segments = sorted((tmp_path / device).glob("*.json"))
    assert segments
    assert stored(stack, marker) == (0, 0)
    # A copy of a segment, as if an answer had been lost after the database stored it.
    shutil.copy(segments[0], segments[0].with_name("99999999999999999999-000001.json"))

    async def online() -> None:
        writer = Writer(tmp_path, stack.api_url, anon, lambda _d: world.tokens["d1"], lambda d, w: None)
        writer.start()
        for _ in range(100):
            if not writer.pending_segments():
                break
            await asyncio.sleep(0.1)
        await writer.stop()
        assert writer.stats.stored == 120
        assert writer.stats.duplicates > 0

    run(online())
    assert stored(stack, marker) == (120, 120)
    assert not list((tmp_path / device).glob("*.json"))
    assert refused == []


def test_a_refused_credential_is_reported_and_its_segments_kept(
    stack: Settings, world: World, tmp_path: Path
) -> None:
    marker = f"spool={uuid.uuid4().hex}"
    device = world.ids["d_unpaired"]
    refused: list[tuple[str, str]] = []

    async def scenario() -> None:
        writer = Writer(
            tmp_path, stack.api_url, tokens.anon_key(stack.jwt_secret), lambda _d: world.tokens["d_unpaired"],
            lambda d, why: refused.append((d, why)),
        )  # fmt: skip
        writer.start()
        for row in rows(marker, 3):
            writer.put(device, row)
        for _ in range(50):
            if refused:
                break
            await asyncio.sleep(0.1)
        await writer.stop(drain_for=0.2)

    run(scenario())
    assert len(refused) == 1
    assert refused[0][0] == device
    assert "credential" in refused[0][1].lower() or "jwt" in refused[0][1].lower(), refused
    assert list((tmp_path / device).glob("*.json"))
    assert stored(stack, marker) == (0, 0)
