"""proxy-control:<workspace_id> end to end: who may join and send there (realtime-py), and a proxy serving two
workspaces that acts only on what the database confirms. A member of W2 with breakpoints:edit forges
`resend-request` and `breakpoint-continue` (with edits) about W1's traffic on every control topic Realtime
lets them send on: the origin sees no second request and no forged edit. The genuine paths (resend_entry,
continue_breakpoint with edits) still work, and so they do when their wake-up is lost.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from realtime import AsyncRealtimeChannel
from realtime.exceptions import RealtimeHTTPError

from busymate.settings import Settings
from tests.e2e.origin import Origin
from tests.e2e.proxy_helpers import (
    device_token,
    entries_with,
    free_port_block,
    fresh_workspace,
    rpc,
    running_proxy,
    sql,
)
from tests.e2e.realtime_helpers import join, options, realtime_client, run
from tests.e2e.test_proxy import Capture, Paused, curl, event_outcome, marker, paused_event, stored
from tests.world import World, add_user


def _member(stack: Settings, workspace_id: str) -> str:
    """A new user with the default member role (breakpoints:edit), in `workspace_id` only: their token."""
    return add_user(stack, workspace_id, "member", "ctl")[1]


@pytest.fixture(scope="module")
def control(stack: Settings, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    """A proxy (run by the admin) serving device a in W1 and device b in W2; a rule pausing a's /json."""
    block = free_port_block(4)
    pool = range(block.start, block.start + 3)
    admin = world.tokens["admin"]
    tag = uuid.uuid4().hex[:6]
    w1, w2 = fresh_workspace(stack, "control-w1"), fresh_workspace(stack, "control-w2")
    devices = {
        name: rpc(
            stack,
            admin,
            "create_device",
            {
                "workspace_id": ws,
                "name": f"control-{name}-{tag}",
                "source": "proxy",
                "allowed_sources": ["127.0.0.1/32"],
                "proxy_port": port,
            },
        )
        for name, ws, port in (("a", w1, pool[0]), ("b", w2, pool[1]))
    }
    with (
        Origin(tmp_path_factory.mktemp("origin")) as origin,
        running_proxy(stack, pool, origin.ca_file, BUSYMATE_BREAKPOINT_TIMEOUT="60") as proxy,
    ):
        proxy.wait_ports(lambda ports: {pool[0], pool[1]} <= ports, "the ports of devices a and b")
        yield Capture(proxy, origin, devices, block[3], w1, w2)


@pytest.fixture(scope="module")
def intruder(stack: Settings, control: Capture) -> str:
    """A member of W2 (breakpoints:edit there, as the default member role has), not of W1."""
    return _member(stack, control.w2)


@pytest.fixture
def pause_json(stack: Settings, world: World, control: Capture) -> Iterator[None]:
    """A request breakpoint on device a's GET /json while the test runs."""
    response = httpx.post(
        f"{stack.api_url}/rest/v1/breakpoints",
        json={
            "workspace_id": control.w1,
            "device_uuid": control.devices["a"]["uuid"],
            "phase": "request",
            "method": "GET",
            "host_pattern": "localhost",
            "path_pattern": "/json",
        },
        headers={
            "apikey": world.anon_key,
            "authorization": f"Bearer {world.tokens['admin']}",
            "prefer": "return=representation",
        },
    )
    assert response.status_code == 201, response.text
    rule = response.json()[0]["id"]
    time.sleep(3)  # the proxy reads rules every 2 s
    try:
        yield
    finally:
        sql(stack, "delete from public.breakpoints where id = %s", (rule,))


def _topics(control: Capture) -> list[str]:
    """Every control topic there is or was: the retired one and each workspace's."""
    return ["proxy-control", f"proxy-control:{control.w1}", f"proxy-control:{control.w2}"]


async def _state(channel: AsyncRealtimeChannel) -> str:
    return (await join(channel)).items[0][0]


def test_control_topics_are_joined_only_in_their_workspace(
    stack: Settings, control: Capture, intruder: str
) -> None:
    async def scenario() -> None:
        async with realtime_client(stack, intruder) as client:
            states = [await _state(client.channel(t, options(private=True))) for t in _topics(control)]
        assert states == ["CHANNEL_ERROR", "CHANNEL_ERROR", "SUBSCRIBED"]
        async with realtime_client(stack, device_token(stack, control.devices["a"])) as client:
            states = [await _state(client.channel(t, options(private=True))) for t in _topics(control)]
        assert states == ["CHANNEL_ERROR", "SUBSCRIBED", "CHANNEL_ERROR"]  # a proxy device: its own only

    run(scenario())


async def _forge(
    stack: Settings, token: str, control: Capture, event: str, payload: dict[str, Any]
) -> list[str]:
    """Broadcast `event` on every control topic with realtime-py's http_send; the topics Realtime took it on
    (stored in commit order, before anything the test does next)."""
    sent, refusals = [], []
    async with realtime_client(stack, token) as client:
        for topic in _topics(control):
            try:
                await client.channel(topic, options(private=True)).http_send(event, payload)
            except RealtimeHTTPError as refused:
                refusals.append(refused.status)
            else:
                sent.append(topic)
    assert set(refusals) <= {401, 403}, refusals
    return sent


def test_a_forged_resend_request_replays_nothing(
    stack: Settings, world: World, control: Capture, intruder: str
) -> None:
    mine, theirs = marker(), marker()
    assert (
        curl(control, control.port("a"), f"/json?{theirs}", "-H", "cookie: session=w1-secret").returncode == 0
    )
    assert curl(control, control.port("b"), f"/json?{mine}").returncode == 0
    [target], [own] = stored(stack, theirs), stored(stack, mine)
    forged = {
        "entry_id": target["id"],
        "captured_at": target["captured_at"],
        "device_uuid": control.devices["a"]["uuid"],
        "workspace_id": control.w1,
        "requested_by": str(uuid.uuid4()),
    }
    sent = asyncio.run(_forge(stack, intruder, control, "resend-request", forged))
    # The intruder's genuine resend of their own entry is committed after the forgeries and reaches the proxy
    # behind them on the same socket: once it has been replayed, every forgery has been handled too.
    rpc(stack, intruder, "resend_entry", {"entry_id": own["id"]})
    assert len(stored(stack, mine, count=2)) == 2
    assert len(entries_with(stack, theirs)) == 1, "W1's request reached the origin a second time"
    assert sent == [f"proxy-control:{control.w2}"]  # the one topic the intruder may send on


@pytest.mark.usefixtures("pause_json")
def test_a_forged_continue_with_edits_changes_nothing(
    stack: Settings, world: World, control: Capture, intruder: str
) -> None:
    mark = marker()
    held = Paused(control, f"/json?{mark}")
    event = paused_event(stack, mark)
    forged = {
        "event_id": event["id"],
        "device_uuid": control.devices["a"]["uuid"],
        "flow_id": event["flow_id"],
        "action": "edit",
        "edits": {"headers": {"x-forged": "yes"}, "url": f"{control.origin.url}/json?forged"},
    }
    sent = asyncio.run(_forge(stack, intruder, control, "breakpoint-continue", forged))
    _barrier(stack, control, intruder)
    assert held.result is None, "a forged continue let the paused flow go"
    assert event_outcome(stack, event["id"]) is None
    rpc(
        stack,
        world.tokens["admin"],
        "continue_breakpoint",
        {"event_id": event["id"], "action": "edit", "edits": {"headers": {"x-edited": "yes"}}},
    )
    done = held.done()
    assert done.returncode == 0, done.stderr
    headers = json.loads(done.stdout)["headers"]
    assert headers.get("x-edited") == "yes"  # the edits of the row, which the wake-up no longer carries
    assert "x-forged" not in headers
    [entry] = stored(stack, mark)
    assert ["x-edited", "yes"] in entry["request_headers"]
    assert sent == [f"proxy-control:{control.w2}"]


def _barrier(stack: Settings, control: Capture, intruder: str) -> None:
    """The intruder resends an entry of their own and waits for the replay: the proxy has then handled every
    control message committed before it."""
    mark = marker()
    assert curl(control, control.port("b"), f"/hello?{mark}").returncode == 0
    rpc(stack, intruder, "resend_entry", {"entry_id": stored(stack, mark)[0]["id"]})
    assert len(stored(stack, mark, count=2)) == 2


@pytest.mark.usefixtures("pause_json")
def test_a_lost_wake_up_neither_hangs_a_flow_nor_loses_a_resend(stack: Settings, control: Capture) -> None:
    # Resolved in the database without a word on Realtime: the proxy reads the row back on its own.
    mark = marker()
    held = Paused(control, f"/json?{mark}")
    event = paused_event(stack, mark)
    with psycopg.connect(stack.db_url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")  # no trigger: nothing is broadcast
        conn.execute(
            "update public.breakpoint_events set active = false, outcome = 'edited', resolved_at = now(), "
            'edits = \'{"headers": {"x-quiet": "yes"}}\' where id = %s',
            (event["id"],),
        )
    done = held.done()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["headers"].get("x-quiet") == "yes"  # edited, not timed out (60 s)
    # A resend recorded without its wake-up is claimed and replayed all the same.
    again = marker()
    assert curl(control, control.port("b"), f"/hello?{again}").returncode == 0
    [entry] = stored(stack, again)
    sql(
        stack,
        "insert into public.resend_requests (workspace_id, device_uuid, entry_id, captured_at) "
        "values (%s, %s, %s, %s)",
        (control.w2, control.devices["b"]["uuid"], entry["id"], entry["captured_at"]),
    )
    assert len(stored(stack, again, count=2)) == 2


def test_resend_entry_replays_once_through_the_capturing_device(
    stack: Settings, world: World, control: Capture
) -> None:
    mark = marker()
    assert curl(control, control.port("a"), f"/json?{mark}", "-H", "x-sent: once").returncode == 0
    [first] = stored(stack, mark)
    answer = rpc(stack, world.tokens["admin"], "resend_entry", {"entry_id": first["id"]})
    _, second = stored(stack, mark, count=2)
    assert second["device_uuid"] == control.devices["a"]["uuid"]
    assert json.loads(bytes(second["response_body"]))["headers"]["x-sent"] == "once"
    [(claimed,)] = sql(
        stack,
        "select claimed_at is not null from public.resend_requests where id = %s",
        (answer["request_id"],),
    )
    assert claimed is True
