"""/realtime/v1 under attack from a client, through the unchanged PyPI clients (issue 15, items 5, 8 and 9).

5. One anon client may not take what other users need: postgres_changes bindings share Realtime's database
   connections (REST keeps its own), channels and joins per socket are capped with Supabase's reasons, and a
   presence payload (and all presence together) is held to a limit.
8. A DELETE filter on a column the subscriber may not read tells it nothing.
9. Removing a member, or taking a capability away, closes their private channels at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any, cast

import httpx
import psycopg
import pytest
from realtime import AsyncRealtimeChannel, AsyncRealtimeClient
from realtime.types import RealtimeAcknowledgementStatus, RealtimePostgresChangesListenEvent
from websockets.asyncio.client import connect

from busymate.gateway.realtime.limits import PRESENCE_FULL, TOO_MANY_CHANNELS, TOO_MANY_JOINS, TRACK_TOO_LARGE
from busymate.settings import Settings
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from tests.conftest import second_api_server
from tests.e2e.realtime_helpers import (
    QUIET,
    Frames,
    Inbox,
    State,
    anon_key,
    db_send,
    delete_users,
    join,
    joined,
    make_user,
    options,
    realtime_client,
    refused,
    run,
    sql,
    system_error,
    unique,
    until,
    ws_url,
)
from tests.world import World

DELETE = RealtimePostgresChangesListenEvent.Delete
ALL = RealtimePostgresChangesListenEvent.All
FLOOD_TABLES = ("devices", "device_status", "entries", "tags", "workspace_tabs")  # published; anon reads none
SUBSCRIBED_TO_POSTGRES = "Subscribed to PostgreSQL"
SAMPLER = "busymate realtime hardening test"


@pytest.fixture(scope="module")
def tight(stack: Settings) -> Iterator[Settings]:
    """An API server on the session's database with small Realtime limits: 5 joins per second per socket and
    1 MiB of presence for the whole server."""
    with second_api_server(
        stack, "realtime-tight", realtime_max_joins_per_second=5, realtime_presence_total_mb=1
    ) as (settings, _server):
        yield settings


async def admin_client(stack: Settings, world: World) -> AsyncClient:
    """supabase-py signed in as the world's admin (the token as the Authorization header)."""
    return await acreate_client(
        stack.api_url,
        world.anon_key,
        AsyncClientOptions(headers={"Authorization": f"Bearer {world.tokens['admin']}"}),
    )


# -- 5. what one client may take -------------------------------------------------------------------------


async def _own_connections(conn: psycopg.AsyncConnection[Any]) -> int:
    """Backends of the `postgres` role other than this sampler: Realtime's own (slot, catalog), and before
    the fix one more for every binding being subscribed."""
    cur = await conn.execute(
        "select count(*)::integer from pg_catalog.pg_stat_activity where usename = 'postgres' "
        "and backend_type = 'client backend' and pid <> pg_catalog.pg_backend_pid() "
        "and application_name <> %s",
        (SAMPLER,),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _flood_client(stack: Settings, world: World, n: int, subscribed: Inbox[str]) -> None:
    """One anon socket: two public channels of five bindings each (published tables anon reads nothing
    of), and a private ws:<w1> it may not join (its refusal is checked on the shared pool)."""
    mine: Inbox[str] = Inbox(f"flood client {n}")
    async with realtime_client(stack) as client:
        for c in range(2):
            channel = client.channel(unique(f"flood-{n}-{c}"), options())
            for table in FLOOD_TABLES:
                channel.on_postgres_changes(ALL, lambda _p: None, table=table, schema="public")
            channel.on_system(lambda s: mine.put(s.message)).on_system(lambda s: subscribed.put(s.message))
            await joined(channel)
        await join(client.channel(f"ws:{world.ids['w1']}", options(private=True)))
        await mine.wait(2, 60)


def test_an_anon_flood_of_bindings_keeps_realtime_in_its_connections_and_rest_answers(
    stack: Settings, world: World
) -> None:
    async def scenario() -> None:
        clients = 40
        async with (
            await psycopg.AsyncConnection.connect(
                stack.db_url(), autocommit=True, application_name=SAMPLER
            ) as sampler,
            httpx.AsyncClient(timeout=20) as rest,
        ):
            # One subscription first, so the catalog connection Realtime keeps is open before the baseline.
            warm: Inbox[str] = Inbox("warm-up")
            async with realtime_client(stack) as client:
                channel = client.channel(unique("warm"), options()).on_postgres_changes(
                    DELETE, lambda _p: None, table="devices", schema="public"
                )
                await joined(channel.on_system(lambda s: warm.put(s.message)))
                await warm.wait(1)
            baseline = await _own_connections(sampler)

            subscribed: Inbox[str] = Inbox("Subscribed to PostgreSQL")
            flood = asyncio.gather(*(_flood_client(stack, world, n, subscribed) for n in range(clients)))
            peak, statuses = baseline, list[int]()
            headers = {"apikey": world.anon_key, "Authorization": f"Bearer {world.tokens['member']}"}
            while not flood.done():
                peak = max(peak, await _own_connections(sampler))
                if len(statuses) < 20:
                    answer = await rest.get(f"{stack.api_url}/rest/v1/workspaces?select=id", headers=headers)
                    statuses.append(answer.status_code)
                await asyncio.sleep(0.005)
            await flood
            assert subscribed.items.count(SUBSCRIBED_TO_POSTGRES) == 2 * clients  # the flood did subscribe
            assert peak <= baseline, f"Realtime opened {peak - baseline} more connections during the flood"
            assert statuses
            assert set(statuses) == {200}, statuses

            # Channels per socket: Supabase's 100, then its reason.
            async with realtime_client(stack) as client:
                for n in range(100):
                    await joined(client.channel(unique(f"many-{n}"), options()))
                await asyncio.sleep(1.1)  # out of the joins-per-second window, so this is the channel limit
                assert await refused(client.channel(unique("one-too-many"), options())) == {
                    "reason": TOO_MANY_CHANNELS
                }

    run(scenario(), timeout=180)


def test_joins_beyond_the_rate_are_refused_and_the_socket_dropped(tight: Settings) -> None:
    async def scenario() -> None:
        async with realtime_client(tight) as client:
            states = await asyncio.gather(
                *(join(client.channel(unique(f"j{n}"), options())) for n in range(6))
            )
            firsts = [inbox.items[0] for inbox in states]
            assert firsts.count(("SUBSCRIBED", None)) == 5, firsts
            [error] = [e for s, e in firsts if s == "CHANNEL_ERROR"]
            assert error is not None
            assert TOO_MANY_JOINS in error
            await until(lambda: not client.is_connected, "the server dropped the socket")

    run(scenario())


def test_a_presence_payload_over_the_limit_is_refused_and_never_held(stack: Settings) -> None:
    async def scenario() -> None:
        topic = unique("presence-big")
        async with realtime_client(stack) as tracker, realtime_client(stack) as watcher:
            watching = watcher.channel(topic, options(presence_key="watcher"))
            await joined(watching)
            await watching.track({"small": True})
            await until(lambda: set(watching.presence_state()) == {"watcher"}, "the watcher sees itself")

            big = tracker.channel(topic, options(presence_key="big"))
            states = await joined(big)
            await big.track({"blob": "x" * 3_000_000})  # 3 MB, as in the attack
            await states.first(lambda s: s[0] == "CLOSED", "the channel closed")
            assert system_error(states.items)["message"] == TRACK_TOO_LARGE
            await asyncio.sleep(QUIET)
            assert set(watching.presence_state()) == {"watcher"}  # "big" was never held nor announced

            small = tracker.channel(unique("presence-small"), options(presence_key="small"))
            await joined(small)
            await small.track({"blob": "x" * 1000})  # a payload under the limit is still fine
            await until(lambda: set(small.presence_state()) == {"small"}, "a small track is kept")

    run(scenario())


def test_a_broadcast_nested_too_deep_is_refused_and_the_channel_keeps_working(stack: Settings) -> None:
    """A payload that parses (under 1,024 levels) but cannot be written back as JSON (over 254): the sender
    gets an error reply, nobody gets half a message, and the same channel still carries the next one."""

    async def scenario() -> None:
        topic = unique("deep")
        got: Inbox[dict[str, Any]] = Inbox("broadcasts to the watcher")
        async with realtime_client(stack) as watcher, connect(ws_url(stack, anon_key(stack))) as ws:
            watching = watcher.channel(topic, options())
            watching.on_broadcast("poke", lambda m: got.put(m["payload"]))
            await joined(watching)

            frames = Frames(ws)
            join_ref = frames.ref()
            config = {"broadcast": {"self": False, "ack": True}, "presence": {"key": "", "enabled": False}}
            await frames.send(f"realtime:{topic}", "phx_join", {"config": config}, join_ref, join_ref)
            await frames.next_where(lambda m: m["event"] == "phx_reply" and m["ref"] == join_ref)

            deep: Any = "bottom"
            for _ in range(300):
                deep = [deep]
            ref = frames.ref()
            push = {"type": "broadcast", "event": "poke", "payload": {"deep": deep}}
            await frames.send(f"realtime:{topic}", "broadcast", push, ref, join_ref)
            reply = await frames.next_where(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)
            assert reply["payload"]["status"] == "error", reply

            ref = frames.ref()
            push = {"type": "broadcast", "event": "poke", "payload": {"n": 2}}
            await frames.send(f"realtime:{topic}", "broadcast", push, ref, join_ref)
            reply = await frames.next_where(lambda m: m["event"] == "phx_reply" and m["ref"] == ref)
            assert reply["payload"]["status"] == "ok", reply
            assert await got.wait(1) == [{"n": 2}]  # the deep one never arrived, the next one did

    run(scenario())


async def _track(channel: AsyncRealtimeChannel, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Track, and the server's reply: ("ok" | "error", response)."""
    replies: Inbox[tuple[str, dict[str, Any]]] = Inbox(f"track on {channel.topic}")
    push = await channel.push("presence", {"event": "track", "payload": payload})
    push.receive(RealtimeAcknowledgementStatus.Ok, lambda r: replies.put(("ok", cast(dict[str, Any], r))))
    push.receive(RealtimeAcknowledgementStatus.Error, lambda r: replies.put(("error", r)))
    [reply] = await replies.wait(1)
    return reply


def test_presence_for_the_whole_server_is_capped(tight: Settings) -> None:
    async def scenario() -> None:
        topic = unique("presence-budget")
        blob = "x" * 200_000  # under the 256 KB of one payload; five of them are most of the 1 MiB
        async with AsyncExitStack() as opened:
            clients = [await opened.enter_async_context(realtime_client(tight)) for _ in range(6)]
            channels = [c.channel(topic, options(presence_key=f"p{n}")) for n, c in enumerate(clients)]
            for channel in channels:
                await joined(channel)
            for channel in channels[:5]:
                assert (await _track(channel, {"blob": blob}))[0] == "ok"
            assert await _track(channels[5], {"blob": blob}) == ("error", {"reason": PRESENCE_FULL})
            await until(lambda: "p4" in channels[0].presence_state(), "the fifth presence is held")
            await asyncio.sleep(QUIET)
            assert "p5" not in channels[0].presence_state()

            await channels[0].untrack()  # room again
            await until(lambda: "p0" not in channels[1].presence_state(), "the first presence left")
            assert (await _track(channels[5], {"blob": blob}))[0] == "ok"

    run(scenario())


# -- 8. DELETE filters -----------------------------------------------------------------------------------


def test_a_delete_filter_on_a_hidden_row_tells_the_outsider_nothing(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        name = unique("secret-device")
        async with (
            realtime_client(stack, world.tokens["member"]) as member,
            realtime_client(stack, world.tokens["outsider"]) as outsider,
        ):
            got: dict[str, Inbox[Any]] = {}
            subscribed: Inbox[str] = Inbox("Subscribed")
            for who, client, guess in (
                ("member", member, name),  # may read the row: the filter still works for it
                ("right guess", outsider, name),
                ("wrong guess", outsider, f"{name}-not"),
            ):
                got[who] = Inbox(who)
                channel = client.channel(unique("del"), options()).on_postgres_changes(
                    DELETE, got[who].put, table="devices", schema="public", filter=f"name=eq.{guess}"
                )
                await joined(channel.on_system(lambda s: subscribed.put(s.message)))
            await subscribed.wait(3)
            rows = await sql(
                stack,
                "insert into public.devices (workspace_id, owner_user_id, name, source) "
                "values (%s, %s, %s, 'proxy') returning uuid::text",
                (world.ids["w1"], world.ids["member"], name),
            )
            await sql(stack, "delete from public.devices where name = %s", (name,))
            [deleted] = await got["member"].wait(1)
            assert deleted["data"]["old_record"] == {"uuid": rows[0][0]}
            assert await got["right guess"].settle() == []
            assert await got["wrong guess"].settle(0) == []

    run(scenario())


# -- 9. access taken away ------------------------------------------------------------------------------------


async def _watch_w1(
    client: AsyncRealtimeClient, world: World, name: str
) -> tuple[Inbox[State], Inbox[dict[str, Any]]]:
    """`client` joined to private ws:<w1>: its subscribe states and the broadcasts it gets."""
    received: Inbox[dict[str, Any]] = Inbox(f"{name} on ws:<w1>")
    channel = client.channel(f"ws:{world.ids['w1']}", options(private=True)).on_broadcast(
        "probe", lambda m: received.put(cast(dict[str, Any], m))
    )
    states = await joined(channel)
    return states, received


async def _closed_for(states: Inbox[State], topic: str) -> None:
    """The server said why and closed the channel (Realtime's reason on a re-check)."""
    await states.first(lambda s: s[0] == "CLOSED", "the channel closed")
    reason = system_error(states.items)
    assert reason["message"] == f"You no longer have permission to read from this Channel topic: {topic}"
    assert (reason["status"], reason["extension"]) == ("error", "system")


def test_a_removed_member_stops_receiving_at_once(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        user, token = await make_user(stack, world.ids["w1"], "member")
        admin = await admin_client(stack, world)
        try:
            async with (
                realtime_client(stack, token) as leaving,
                realtime_client(stack, world.tokens["member"]) as staying,
            ):
                await _removal(stack, world, admin, user, leaving, staying)
        finally:
            await delete_users(stack, [user])

    run(scenario())


async def _removal(
    stack: Settings,
    world: World,
    admin: AsyncClient,
    user: str,
    leaving: AsyncRealtimeClient,
    staying: AsyncRealtimeClient,
) -> None:
    topic = f"ws:{world.ids['w1']}"
    states, to_leaving = await _watch_w1(leaving, world, "the removed member")
    _states, to_staying = await _watch_w1(staying, world, "a member")
    await db_send(stack, {"n": 1}, "probe", topic)
    await to_leaving.wait(1)  # receiving, before

    await admin.rpc("remove_workspace_member", {"workspace_id": world.ids["w1"], "user_id": user}).execute()
    await _closed_for(states, topic)
    await db_send(stack, {"n": 2}, "probe", topic)
    await to_staying.first(lambda m: m["payload"].get("n") == 2, "the next message, for a member")
    assert [m["payload"]["n"] for m in await to_leaving.settle()] == [1]


def test_a_demotion_closes_the_channel_only_when_it_takes_the_capability(
    stack: Settings, world: World
) -> None:
    async def scenario() -> None:
        role = unique("no_entries").replace("-", "_")
        await sql(
            stack,
            "insert into public.roles (name, description, capabilities) values "
            '(%s, \'every view but entries\', \'{"devices": {"view": true}, "entries": {"view": false}}\')',
            (role,),
        )
        user, token = await make_user(stack, world.ids["w1"], "member")
        admin = await admin_client(stack, world)
        try:
            async with realtime_client(stack, token) as client:
                await _demotions(stack, world, admin, user, role, client)
        finally:
            await delete_users(stack, [user])
            await sql(stack, "delete from public.roles where name = %s", (role,))

    run(scenario())


async def _demotions(
    stack: Settings, world: World, admin: AsyncClient, user: str, role: str, client: AsyncRealtimeClient
) -> None:
    topic = f"ws:{world.ids['w1']}"
    states, received = await _watch_w1(client, world, "the demoted user")

    await admin.rpc("set_user_role", {"user_id": user, "role": "viewer"}).execute()
    await db_send(stack, {"n": 1}, "probe", topic)
    await received.first(lambda m: m["payload"].get("n") == 1, "a viewer still reads the workspace")
    assert [s for s, _ in states.items] == ["SUBSCRIBED"]

    await admin.rpc("set_user_role", {"user_id": user, "role": role}).execute()
    await _closed_for(states, topic)
    await db_send(stack, {"n": 2}, "probe", topic)
    assert [m["payload"]["n"] for m in await received.settle()] == [1]
