"""postgres_changes: a subscriber whose row-level security check fails (its own policy raises) gets nothing,
and the other subscribers of the same change still get it.

The failing subscriber holds a signed token whose `sub` is not a uuid, so `auth.uid()` in the devices policies
raises for it alone; its check runs in its own transaction.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import psycopg
import websockets

from busymate import tokens
from busymate.settings import Settings
from tests.world import World


async def _subscribe(url: str, token: str, topic: str) -> websockets.ClientConnection:
    ws = await websockets.connect(url)
    binding = {"event": "INSERT", "schema": "public", "table": "devices"}
    join = {"config": {"postgres_changes": [binding]}, "access_token": token}
    await ws.send(
        orjson.dumps(
            {"topic": topic, "event": "phx_join", "payload": join, "ref": "1", "join_ref": "1"}
        ).decode()
    )
    for _ in range(5):
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame["event"] == "system":
            assert frame["payload"]["status"] == "ok", frame
            return ws
    raise AssertionError("no Subscribed message")


async def _names(ws: websockets.ClientConnection, seconds: float) -> list[str]:
    names = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            break
        if frame["event"] == "postgres_changes":
            names.append(frame["payload"]["data"]["record"]["name"])
    return names


def test_a_failing_policy_check_only_costs_its_own_subscriber(stack: Settings, world: World) -> None:
    now = int(time.time())
    broken = tokens.sign_hs256(
        {"sub": "not-a-uuid", "role": "authenticated", "iat": now, "exp": now + 600}, stack.jwt_secret
    )
    url = f"{stack.api_url.replace('http', 'ws', 1)}/realtime/v1/websocket?apikey={world.anon_key}&vsn=1.0.0"
    name = f"isolation-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[str], list[str]]:
        topic = f"realtime:iso-{name}"
        bad = await _subscribe(url, broken, topic)
        good = await _subscribe(url, world.tokens["member"], topic)
        with psycopg.connect(stack.db_url(), autocommit=True) as conn:
            conn.execute(
                "insert into public.devices (workspace_id, owner_user_id, name, source) "
                "values (%s, %s, %s, 'proxy')",
                (world.ids["w1"], world.ids["member"], name),
            )
        got_good, got_bad = await asyncio.gather(_names(good, 3), _names(bad, 3))
        await bad.close()
        await good.close()
        return got_good, got_bad

    try:
        got_good, got_bad = asyncio.run(scenario())
    finally:  # the world is shared with the REST suites, which count the member's devices
        with psycopg.connect(stack.db_url(), autocommit=True) as conn:
            conn.execute("delete from public.devices where name = %s", (name,))
    assert got_good == [name]
    assert got_bad == []
