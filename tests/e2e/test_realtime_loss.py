"""No message lost: 100 subscribers on one private `ws:` channel while a device ingests 2,000 rows per second
for 30 seconds through /rest/v1; every subscriber receives every row exactly once, in the order it was stored.

Half the subscribers speak protocol 1.0.0 (JSON objects, as the PyPI client), half 2.0.0 (arrays, as
supabase-js).
They are raw `websockets` clients so one test process can hold a hundred of them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
import orjson
import psycopg
import websockets

from busymate.settings import Settings
from tests.world import World

SUBSCRIBERS = 100
RATE = 2_000  # rows per second
SECONDS = 30
BATCH = 100  # rows per ingest_entries call: 20 calls per second
HOST = "loss.example.com"


class Subscriber:
    """One socket on ws:<workspace>: the ids of the loss rows it received, in order."""

    def __init__(self, url: str, topic: str, token: str, vsn: str) -> None:
        self.url = f"{url}&vsn={vsn}"
        self.topic = f"realtime:{topic}"
        self.token = token
        self.vsn = vsn
        self.ids: list[str] = []
        self.joined = asyncio.Event()
        self.error: str | None = None

    def _frame(self, ref: str, event: str, payload: object, topic: str | None = None) -> str:
        topic = topic or self.topic
        if self.vsn == "2.0.0":
            return orjson.dumps(["1", ref, topic, event, payload]).decode()
        return orjson.dumps(
            {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": "1"}
        ).decode()

    def _parse(self, raw: str | bytes) -> tuple[str, dict[str, object]]:
        data = orjson.loads(raw)
        if self.vsn == "2.0.0":
            return data[3], data[4]
        return data["event"], data["payload"]

    async def run(self, stop: asyncio.Event) -> None:
        async with websockets.connect(self.url, max_size=None) as ws:
            join = {"config": {"private": True, "broadcast": {"self": False}}, "access_token": self.token}
            await ws.send(self._frame("1", "phx_join", join))
            beat = 0
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    beat += 1
                    await ws.send(self._frame(str(100 + beat), "heartbeat", {}, "phoenix"))
                    continue
                event, payload = self._parse(raw)
                if event == "phx_reply" and not self.joined.is_set():
                    if payload.get("status") != "ok":
                        self.error = str(payload)
                    self.joined.set()
                elif event == "broadcast":
                    inner = payload.get("payload")
                    assert isinstance(inner, dict)
                    columns = inner.get("columns")
                    rows = inner.get("rows")
                    if not isinstance(columns, list) or not isinstance(rows, list):
                        continue
                    at_id, at_host = columns.index("id"), columns.index("host")
                    self.ids.extend(row[at_id] for row in rows if row[at_host] == HOST)


async def _ingest(settings: Settings, world: World, ids: list[str]) -> float:
    """Ingest `ids` as device d1 at RATE rows per second; returns the seconds it took."""
    headers = {"apikey": world.anon_key, "Authorization": f"Bearer {world.tokens['d1']}"}
    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=f"{settings.api_url}/rest/v1", headers=headers, timeout=30
    ) as client:
        for n, i in enumerate(range(0, len(ids), BATCH)):
            due = started + n * BATCH / RATE
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = datetime.now(UTC).isoformat()
            batch = [
                {"id": entry_id, "captured_at": now, "method": "GET", "host": HOST, "path": f"/{i + k}"}
                for k, entry_id in enumerate(ids[i : i + BATCH])
            ]
            answer = await client.post("/rpc/ingest_entries", json={"batch": batch})
            assert answer.status_code == 200, answer.text
            assert answer.json()["inserted"] == len(batch), answer.text
    return time.perf_counter() - started


def test_every_subscriber_gets_every_row_once_in_order(stack: Settings, world: World) -> None:
    topic = f"ws:{world.ids['w1']}"
    url = f"{stack.api_url.replace('http', 'ws', 1)}/realtime/v1/websocket?apikey={world.anon_key}"
    ids = [str(uuid.uuid4()) for _ in range(RATE * SECONDS)]

    async def scenario() -> tuple[list[Subscriber], float, float]:
        subscribers = [
            Subscriber(url, topic, world.tokens["member"], "2.0.0" if n % 2 else "1.0.0")
            for n in range(SUBSCRIBERS)
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in subscribers]
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in subscribers)), 30)
        assert [s.error for s in subscribers if s.error] == []
        took = await _ingest(stack, world, ids)
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and any(len(s.ids) < len(ids) for s in subscribers):
            await asyncio.sleep(0.1)
        drained = time.perf_counter() - deadline + 30
        stop.set()
        await asyncio.gather(*tasks)
        return subscribers, took, drained

    subscribers, took, drained = asyncio.run(scenario())
    print(
        f"\n{len(ids)} rows in {took:.1f} s to {SUBSCRIBERS} subscribers; all delivered {drained:.2f} s later"
    )
    with psycopg.connect(stack.db_url()) as conn:
        stored = conn.execute(
            "select count(*) from public.entries where host = %s and id = any(%s::uuid[])", (HOST, ids)
        ).fetchone()
    assert stored == (len(ids),)
    for n, subscriber in enumerate(subscribers):
        assert len(subscriber.ids) == len(ids), f"subscriber {n} ({subscriber.vsn}) got {len(subscriber.ids)}"
        assert subscriber.ids == ids, f"subscriber {n} ({subscriber.vsn}) got rows twice or out of order"
