"""/realtime/v1 driven by the unchanged PyPI clients realtime 2.34.1 and supabase-py 2.34.1, real schema.

The issue's proof list, held to Supabase Realtime's wire protocol and authorization
(https://supabase.com/docs/guides/realtime/protocol, /authorization, /postgres-changes) and to the topics of
docs/security-model.md: public broadcast (self, ack), private joins decided by the policies on
realtime.messages, broadcast from the database (realtime.send and the entries firehose), presence,
postgres_changes with per-subscriber RLS, token refresh and expiry, replay, the HTTP broadcast endpoints,
connect-time refusals and the raw vsn 1.0.0 frames. Each test makes its own topics and rows. A message that
must come gets 5 s; "never" is a quiet second, checked after a later message that did come where the order
allows it.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from realtime import AsyncRealtimeChannel, RealtimeHTTPError
from realtime.message import SuccessSystemPayload
from realtime.types import (
    BroadcastPayload,
    PostgresChangesPayload,
    Presence,
    RealtimeAcknowledgementStatus,
    RealtimePostgresChangesListenEvent,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from busymate import tokens
from busymate.settings import Settings
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from tests.e2e.realtime_helpers import (
    JOIN_TIMEOUT,
    QUIET,
    WAIT,
    Frames,
    Inbox,
    comparable,
    db_send,
    joined,
    now_ms,
    options,
    realtime_client,
    refused,
    run,
    sql,
    system_error,
    table_columns,
    unique,
    until,
)
from tests.world import World, user_token

ALL = RealtimePostgresChangesListenEvent.All
INSERT = RealtimePostgresChangesListenEvent.Insert
UPDATE = RealtimePostgresChangesListenEvent.Update
SUBSCRIBED_TO_POSTGRES = "Subscribed to PostgreSQL"
COMMIT_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def unauthorized(topic: str) -> dict[str, str]:
    """The join refusal of a private topic the caller may not read, as Realtime Authorization words it."""
    return {"reason": f"Unauthorized: You do not have permissions to read from this Channel topic: {topic}"}


def topic_of(world: World, spec: str) -> str:
    """`ws:w1` -> `ws:<id of w1>`; names not in the world stay as they are."""
    kind, _, name = spec.partition(":")
    return f"{kind}:{world.ids[name]}" if name in world.ids else spec


async def email_of(stack: Settings, user_id: str) -> str:
    rows = await sql(stack, "select email::text from auth.users where id = %s", (user_id,))
    return str(rows[0][0])


async def insert_device(stack: Settings, workspace_id: str, owner_id: str, name: str) -> dict[str, Any]:
    """A device row inserted (and committed) by the database owner, as to_jsonb renders it."""
    rows = await sql(
        stack,
        "insert into public.devices as d (workspace_id, owner_user_id, name, source) "
        "values (%s, %s, %s, 'proxy') returning to_jsonb(d)",
        (workspace_id, owner_id, name),
    )
    return cast(dict[str, Any], rows[0][0])


async def delete_devices(stack: Settings, names: list[str]) -> None:
    await sql(stack, "delete from public.devices where name = any(%s)", (names,))


def ack_inbox(push_owner: str) -> Inbox[str]:
    return Inbox(f"reply to {push_owner}'s push")


async def push_broadcast(
    channel: AsyncRealtimeChannel, event: str, payload: dict[str, Any], replies: Inbox[str]
) -> None:
    """The frame send_broadcast sends, keeping hold of the push to see its reply."""
    push = await channel.push("broadcast", {"type": "broadcast", "event": event, "payload": payload})
    push.receive(RealtimeAcknowledgementStatus.Ok, lambda _r: replies.put("ok")).receive(
        RealtimeAcknowledgementStatus.Error, lambda r: replies.put(f"error {r}")
    )


# -- 1. public broadcast -------------------------------------------------------------------------------------


def test_public_broadcast_reaches_the_others_self_only_when_asked_and_ack_replies(stack: Settings) -> None:
    async def scenario() -> None:
        topic = unique("room")
        async with realtime_client(stack) as a, realtime_client(stack) as b, realtime_client(stack) as c:
            to_a: Inbox[BroadcastPayload] = Inbox("a (self, ack)")
            to_b: Inbox[BroadcastPayload] = Inbox("b (every event)")
            to_c: Inbox[BroadcastPayload] = Inbox("c (client defaults)")
            ch_a = a.channel(topic, options(self_=True, ack=True)).on_broadcast("ping", to_a.put)
            ch_b = b.channel(topic, options()).on_broadcast("*", to_b.put)
            ch_c = c.channel(topic).on_broadcast("ping", to_c.put)
            for channel in (ch_a, ch_b, ch_c):
                await joined(channel)

            replies = ack_inbox("a")
            await push_broadcast(ch_a, "ping", {"n": 1}, replies)
            first = {"event": "ping", "payload": {"n": 1}}  # relayed as sent: no meta for WebSocket messages
            assert await replies.wait(1) == ["ok"]
            assert await to_a.wait(1) == [first]  # self: true
            assert await to_b.wait(1) == [first]
            assert await to_c.wait(1) == [first]

            await ch_c.send_broadcast("ping", {"n": 2})  # self and ack false (the client's defaults)
            second = {"event": "ping", "payload": {"n": 2}}
            assert await to_a.wait(2) == [first, second]
            assert await to_b.wait(2) == [first, second]
            assert await to_c.settle() == [first]  # not echoed to the sender
            unanswered = [p for p in ch_c.messages_waiting_for_ack.values() if p.event == "broadcast"]
            assert unanswered, "the server replied to a broadcast push sent without ack"
            assert all(p.received_resp is None for p in unanswered)
            assert await to_a.settle(0) == [first, second]

    run(scenario())


# -- 2. private joins ----------------------------------------------------------------------------------------

JOINS = [
    ("member", "ws:w1", True),
    ("admin", "ws:w1", True),
    ("nocaps", "ws:w1", False),
    ("outsider", "ws:w1", False),
    ("outsider", "ws:w2", True),
    ("anon", "ws:w1", False),
    ("d1", "ws:w1", False),
    ("member", "device:d1", True),
    ("admin", "device:d1", True),
    ("nocaps", "device:d1", False),
    ("d1", "device:d1", True),
    ("d1", "device:d2", False),
    ("nocaps", "settings:global", True),
    ("outsider", "settings:global", True),
    ("d2", "settings:global", True),
    ("anon", "settings:global", False),
    ("admin", "devices:all", True),
    ("member", "devices:all", False),  # every workspace's devices: admins only
    ("nocaps", "devices:all", False),
    ("member", "devices:w1", True),
    ("outsider", "devices:w1", False),  # another workspace's devices
    ("outsider", "devices:w2", True),
    ("member", "proxy-control:w1", True),
    ("member", "proxy-control:w2", False),
    ("nocaps", "proxy-control:w1", False),
    ("d1", "proxy-control:w1", True),
    ("d1", "proxy-control:w2", False),
    ("member", "proxy-control", False),
    ("admin", "proxy-control", False),
]


@pytest.mark.parametrize(("who", "spec", "allowed"), JOINS, ids=[f"{w}-{s}" for w, s, _ in JOINS])
def test_private_joins_follow_the_topic_policies(
    stack: Settings, world: World, who: str, spec: str, allowed: bool
) -> None:
    async def scenario() -> None:
        topic = topic_of(world, spec)
        token = None if who == "anon" else world.tokens[who]
        async with realtime_client(stack, token) as client:
            channel = client.channel(topic, options(private=True))
            if allowed:
                states = await joined(channel)
                assert await states.settle(0.3) == [("SUBSCRIBED", None)]
            else:
                assert await refused(channel) == unauthorized(topic)

    run(scenario())


def test_nobody_sends_on_the_database_only_workspace_topic(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        topic = f"ws:{world.ids['w1']}"
        event = unique("forged")
        async with (
            realtime_client(stack, world.tokens["admin"]) as admin,
            realtime_client(stack, world.tokens["member"]) as member,
        ):
            to_member: Inbox[BroadcastPayload] = Inbox("member")
            ch_admin = admin.channel(topic, options(private=True, ack=True))
            await joined(ch_admin)
            await joined(member.channel(topic, options(private=True)).on_broadcast("*", to_member.put))
            replies = ack_inbox("admin")
            await push_broadcast(
                ch_admin, event, {"forged": True}, replies
            )  # even an admin: no INSERT policy
            await db_send(stack, {"n": 1}, event, topic)
            [only] = await to_member.wait(1)
            assert only["payload"]["n"] == 1
            assert await to_member.settle() == [only]
            assert replies.items == []  # dropped without a reply, even with ack, as Realtime does

    run(scenario())


def test_the_owner_commands_a_device_which_may_answer_only_cdp_result(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        topic = f"device:{world.ids['d1']}"
        async with (
            realtime_client(stack, world.tokens["member"]) as owner,
            realtime_client(stack, world.tokens["d1"]) as device,
            realtime_client(stack, world.tokens["admin"]) as admin,
        ):
            to_owner: Inbox[BroadcastPayload] = Inbox("owner")
            to_device: Inbox[BroadcastPayload] = Inbox("device")
            to_admin: Inbox[BroadcastPayload] = Inbox("admin")
            ch_owner = owner.channel(topic, options(private=True, ack=True)).on_broadcast("*", to_owner.put)
            ch_device = device.channel(topic, options(private=True)).on_broadcast("*", to_device.put)
            ch_admin = admin.channel(topic, options(private=True)).on_broadcast("*", to_admin.put)
            for channel in (ch_owner, ch_device, ch_admin):
                await joined(channel)

            replies = ack_inbox("owner")
            await push_broadcast(ch_owner, "vpn-on", {"reason": "e2e"}, replies)
            assert await replies.wait(1) == ["ok"]
            command = {"event": "vpn-on", "payload": {"reason": "e2e"}}
            assert await to_device.wait(1) == [command]
            assert await to_admin.wait(1) == [command]

            # The device may send `cdp-result` only; anything else is dropped silently, whatever came first.
            for event, n in (("vpn-off", 1), ("cdp-result", 2), ("unpair", 3), ("cdp-result", 4)):
                await ch_device.send_broadcast(event, {"n": n})
            results = [
                {"event": "cdp-result", "payload": {"n": 2}},
                {"event": "cdp-result", "payload": {"n": 4}},
            ]
            assert await to_owner.wait(2) == results
            assert await to_owner.settle() == results
            assert await to_admin.wait(3) == [command, *results]
            assert await to_device.settle(0) == [command]

    run(scenario())


# -- 3. broadcast from the database --------------------------------------------------------------------------


def test_database_broadcasts_reach_the_side_they_were_sent_to(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        topic = f"ws:{world.ids['w1']}"
        event = unique("ping")
        async with realtime_client(stack, world.tokens["member"]) as member, realtime_client(stack) as anon:
            private_in: Inbox[BroadcastPayload] = Inbox("private ws:<w1>")
            public_in: Inbox[BroadcastPayload] = Inbox("public ws:<w1>")
            await joined(member.channel(topic, options(private=True)).on_broadcast(event, private_in.put))
            await joined(anon.channel(topic, options()).on_broadcast(event, public_in.put))

            await db_send(stack, {"n": 1}, event, topic, True)
            [private] = await private_in.wait(1)
            message_id = private.get("meta", {}).get("id")
            assert isinstance(message_id, str)
            uuid.UUID(message_id)
            assert private == {
                "event": event,
                "payload": {"n": 1, "id": message_id},
                "meta": {"id": message_id},
            }
            stored = await sql(
                stack,
                "select payload, private, extension from realtime.messages where id = %s",
                (message_id,),
            )
            assert stored == [({"n": 1, "id": message_id}, True, "broadcast")]

            await db_send(stack, {"n": 2}, event, topic, False)
            [public] = await public_in.wait(1)
            public_id = public.get("meta", {}).get("id")
            assert public == {"event": event, "payload": {"n": 2, "id": public_id}, "meta": {"id": public_id}}
            assert await private_in.settle() == [private]  # public and private ws:<w1> are different topics
            assert await public_in.settle(0) == [public]

    run(scenario())


def entry(host: str, path: str, at: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "captured_at": at.isoformat(),
        "method": "GET",
        "scheme": "https",
        "host": host,
        "path": path,
        "status": 200,
    }


async def device_client(stack: Settings, world: World, device: str) -> AsyncClient:
    """supabase-py acting as a paired device (its JWT as the Authorization header)."""
    return await acreate_client(
        stack.api_url,
        world.anon_key,
        AsyncClientOptions(headers={"Authorization": f"Bearer {world.tokens[device]}"}),
    )


async def ingest(client: AsyncClient, batch: list[dict[str, Any]]) -> None:
    result = await client.rpc("ingest_entries", {"batch": batch}).execute()
    data = cast(dict[str, Any], result.data)
    assert data["inserted"] == len(batch), data
    assert data["ids"] == [e["id"] for e in batch], data


def test_ingested_entries_reach_their_workspace_in_order_and_no_other(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        member = await acreate_client(stack.api_url, world.anon_key)
        outsider = await acreate_client(stack.api_url, world.anon_key)
        d1 = await device_client(stack, world, "d1")
        d2 = await device_client(stack, world, "d2")
        try:
            await member.realtime.set_auth(world.tokens["member"])
            await outsider.realtime.set_auth(world.tokens["outsider"])
            to_member: Inbox[BroadcastPayload] = Inbox("member on ws:<w1>")
            to_outsider: Inbox[BroadcastPayload] = Inbox("outsider on ws:<w2>")
            w1_topic, w2_topic = f"ws:{world.ids['w1']}", f"ws:{world.ids['w2']}"
            await joined(
                member.channel(w1_topic, options(private=True)).on_broadcast("INSERT", to_member.put)
            )
            await joined(
                outsider.channel(w2_topic, options(private=True)).on_broadcast("INSERT", to_outsider.put)
            )

            host = f"{unique('h')}.example.com"
            start = datetime.now(UTC)
            batch1 = [entry(host, "/a", start), entry(host, "/b", start + timedelta(milliseconds=1))]
            batch2 = [entry(host, "/c", start + timedelta(milliseconds=2))]
            await ingest(d1, batch1)
            await ingest(d1, batch2)

            def mine(inbox: Inbox[BroadcastPayload], h: str) -> list[BroadcastPayload]:
                return [m for m in inbox.items if any(h in row for row in m["payload"].get("rows", []))]

            await until(lambda: len(mine(to_member, host)) >= 2, "two firehose messages for the member")
            [cols] = (await sql(stack, "select private.firehose_columns()"))[0]
            found = mine(to_member, host)
            assert len(found) == 2, found
            first, second = found
            envelope = {
                "operation",
                "table",
                "schema",
                "old_record",
                "record",
                "columns",
                "rows",
                "count",
                "id",
            }
            for message, batch in ((first, batch1), (second, batch2)):
                payload = message["payload"]
                assert message["event"] == "INSERT"
                assert set(payload) == envelope
                assert message.get("meta") == {"id": payload["id"]}
                assert (payload["operation"], payload["table"], payload["schema"]) == (
                    "INSERT",
                    "entries",
                    "public",
                )
                assert payload["old_record"] is None
                assert payload["columns"] == cols
                assert payload["count"] == len(batch)
                assert [row[cols.index("id")] for row in payload["rows"]] == [e["id"] for e in batch]
                for row, sent in zip(payload["rows"], batch, strict=True):
                    values = dict(zip(cols, row, strict=True))
                    assert values["device_uuid"] == world.ids["d1"]
                    assert (values["method"], values["host"], values["path"]) == ("GET", host, sent["path"])
                    assert values["status"] == 200
            assert first["payload"]["record"] is None  # two rows: no single record
            assert second["payload"]["record"] == dict(zip(cols, second["payload"]["rows"][0], strict=True))

            # w2's traffic goes to w2's subscribers only, and w1's never reached them.
            other_host = f"{unique('h')}.example.com"
            await ingest(d2, [entry(other_host, "/z", datetime.now(UTC))])
            await until(lambda: len(mine(to_outsider, other_host)) == 1, "w2's message for the outsider")
            assert mine(to_outsider, host) == []
            assert mine(to_member, other_host) == []
            await to_member.settle()
            assert len(mine(to_member, host)) == 2
            assert mine(to_member, other_host) == []
        finally:
            for client in (member, outsider):
                await client.realtime.close()
            for device in (d1, d2):
                await device.postgrest.aclose()

    run(scenario())


# -- 4. presence ---------------------------------------------------------------------------------------------


def without_ref(presences: list[Presence]) -> list[dict[str, Any]]:
    return [{k: v for k, v in p.items() if k != "presence_ref"} for p in presences]


def test_presence_state_joins_and_leaves(stack: Settings) -> None:
    async def scenario() -> None:
        topic = unique("lobby")
        async with realtime_client(stack) as a, realtime_client(stack) as b, realtime_client(stack) as c:
            a_syncs: Inbox[int] = Inbox("a's syncs")
            a_joins: Inbox[tuple[str, list[dict[str, Any]]]] = Inbox("a's joins")
            a_leaves: Inbox[tuple[str, list[dict[str, Any]]]] = Inbox("a's leaves")
            ch_a = a.channel(topic, options(presence_key="alice"))
            ch_a.on_presence_sync(lambda: a_syncs.put(1))
            ch_a.on_presence_join(lambda key, _cur, new: a_joins.put((key, without_ref(new))))
            ch_a.on_presence_leave(lambda key, _cur, left: a_leaves.put((key, without_ref(left))))
            await joined(ch_a)
            await a_syncs.wait(1)  # presence_state right after the join, empty
            assert ch_a.presence_state() == {}

            await ch_a.track({"name": "alice"})
            assert await a_joins.wait(1) == [("alice", [{"name": "alice"}])]
            [alice] = ch_a.presence_state()["alice"]
            assert isinstance(alice["presence_ref"], str)

            b_syncs: Inbox[int] = Inbox("b's syncs")
            ch_b = b.channel(topic, options(presence_key="bob")).on_presence_sync(lambda: b_syncs.put(1))
            await joined(ch_b)
            await b_syncs.wait(1)
            assert ch_b.presence_state() == {"alice": [alice]}  # the state a new joiner gets, refs included

            await ch_b.track({"name": "bob", "status": "online"})
            assert await a_joins.wait(2) == [
                ("alice", [{"name": "alice"}]),
                ("bob", [{"name": "bob", "status": "online"}]),
            ]
            await until(lambda: set(ch_b.presence_state()) == {"alice", "bob"}, "b sees both")

            await ch_b.untrack()
            assert await a_leaves.wait(1) == [("bob", [{"name": "bob", "status": "online"}])]
            await until(lambda: set(ch_a.presence_state()) == {"alice"}, "bob gone from a's state")

            # Tracking again updates: one meta per key, the new one.
            await ch_a.track({"name": "alice", "status": "away"})
            await until(
                lambda: (
                    without_ref(ch_b.presence_state().get("alice", []))
                    == [{"name": "alice", "status": "away"}]
                ),
                "b sees alice's update",
            )

            # A socket that goes away leaves.
            ch_c = c.channel(topic, options(presence_key="carol"))
            await joined(ch_c)
            await ch_c.track({"name": "carol"})
            await a_joins.first(lambda j: j[0] == "carol", "carol's join")
            await c.close()
            await a_leaves.first(lambda j: j[0] == "carol", "carol's leave after her socket closed")
            await until(lambda: set(ch_a.presence_state()) == {"alice"}, "carol gone from a's state")

    run(scenario())


# -- 5. postgres_changes -------------------------------------------------------------------------------------


def test_postgres_changes_carry_rows_the_subscriber_may_read(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        n1, n2 = unique("pg-w1"), unique("pg-w2")
        names = [n1, n2]
        columns = await table_columns(stack, "public.devices")
        try:
            async with (
                realtime_client(stack, world.tokens["member"]) as member,
                realtime_client(stack, world.tokens["outsider"]) as outsider,
            ):
                topic = unique("pg")
                to_member: Inbox[PostgresChangesPayload] = Inbox("member's changes")
                to_outsider: Inbox[PostgresChangesPayload] = Inbox("outsider's changes")
                systems: dict[str, Inbox[SuccessSystemPayload]] = {}
                for name, client, inbox in (
                    ("member", member, to_member),
                    ("outsider", outsider, to_outsider),
                ):
                    systems[name] = Inbox(f"{name}'s system messages")
                    channel = client.channel(topic, options()).on_postgres_changes(
                        ALL, inbox.put, table="devices", schema="public", filter=f"name=in.({n1},{n2})"
                    )
                    await joined(channel.on_system(systems[name].put))
                for system in systems.values():
                    [ok] = await system.wait(1)
                    assert ok.model_dump() == {
                        "channel": topic,
                        "extension": "postgres_changes",
                        "message": SUBSCRIBED_TO_POSTGRES,
                        "status": "ok",
                    }

                before = datetime.now(UTC) - timedelta(seconds=5)
                row1 = await insert_device(stack, world.ids["w1"], world.ids["member"], n1)
                row2 = await insert_device(stack, world.ids["w2"], world.ids["outsider"], n2)
                [inserted] = await to_member.wait(1)
                data = inserted["data"]
                assert set(data) == {
                    "schema",
                    "table",
                    "commit_timestamp",
                    "type",
                    "columns",
                    "record",
                    "errors",
                }
                assert (data["schema"], data["table"], data["type"], data["errors"]) == (
                    "public",
                    "devices",
                    "INSERT",
                    None,
                )
                assert data["columns"] == columns
                assert comparable(data.get("record") or {}, columns) == comparable(row1, columns)
                assert COMMIT_TIMESTAMP.match(data["commit_timestamp"]), data["commit_timestamp"]
                committed = datetime.fromisoformat(data["commit_timestamp"].replace("Z", "+00:00"))
                assert before < committed < datetime.now(UTC) + timedelta(seconds=5)
                member_binding = member.channels[f"realtime:{topic}"].postgres_changes_callbacks[0].id
                assert inserted["ids"] == [member_binding]

                [theirs] = await to_outsider.wait(1)  # RLS: the outsider reads w2's device, not w1's
                assert theirs["data"]["type"] == "INSERT"
                assert comparable(theirs["data"].get("record") or {}, columns) == comparable(row2, columns)

                updated = cast(
                    dict[str, Any],
                    (
                        await sql(
                            stack,
                            "update public.devices as d set model = 'm-2', os = 'os-2' where name = %s "
                            "returning to_jsonb(d)",
                            (n1,),
                        )
                    )[0][0],
                )
                # The RLS check reads the row as it is when the change is polled (so does Realtime's
                # apply_rls): a row deleted by then is not visible, so wait for the UPDATE before deleting.
                _, update = await to_member.wait(2)
                await sql(stack, "delete from public.devices where name = %s", (n1,))
                delete = (await to_member.wait(3))[2]
                assert update["data"]["type"] == "UPDATE"
                assert update["data"]["errors"] is None
                assert comparable(update["data"].get("record") or {}, columns) == comparable(updated, columns)
                # REPLICA IDENTITY FULL: the whole previous row.
                assert comparable(update["data"].get("old_record") or {}, columns) == comparable(
                    row1, columns
                )
                assert delete["data"]["type"] == "DELETE"
                assert "record" not in delete["data"]
                # RLS on: a DELETE is not checked per subscriber, so it carries the primary key only.
                assert delete["data"].get("old_record") == {"uuid": row1["uuid"]}

                assert len(await to_member.settle()) == 3  # w2's device never reached the member
                for change in to_outsider.items:  # nothing of w1's row beyond, at most, a bare DELETE key
                    record = change["data"].get("record") or {}
                    old = change["data"].get("old_record") or {}
                    assert record.get("name") != n1
                    assert old.get("name") != n1
        finally:
            await delete_devices(stack, names)

    run(scenario())


def test_postgres_changes_bindings_filter_by_event_and_column(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        n1, n2 = unique("bind-1"), unique("bind-2")
        try:
            async with realtime_client(stack, world.tokens["member"]) as member:
                topic = unique("bindings")
                inserts: Inbox[PostgresChangesPayload] = Inbox("INSERT name=eq.n1")
                updates: Inbox[PostgresChangesPayload] = Inbox("UPDATE name=eq.n2")
                system: Inbox[SuccessSystemPayload] = Inbox("system")
                channel = (
                    member.channel(topic, options())
                    .on_postgres_changes(INSERT, inserts.put, table="devices", filter=f"name=eq.{n1}")
                    .on_postgres_changes(UPDATE, updates.put, table="devices", filter=f"name=eq.{n2}")
                    .on_system(system.put)
                )
                await joined(channel)
                await system.wait(1)
                insert_id, update_id = (c.id for c in channel.postgres_changes_callbacks)
                assert insert_id
                assert update_id
                assert insert_id != update_id

                for name in (n1, n2):
                    await insert_device(stack, world.ids["w1"], world.ids["member"], name)
                for name in (n1, n2):
                    await sql(stack, "update public.devices set model = 'x' where name = %s", (name,))

                [inserted] = await inserts.wait(1)
                [update] = await updates.wait(1)
                assert (inserted["data"]["type"], (inserted["data"].get("record") or {}).get("name")) == (
                    "INSERT",
                    n1,
                )
                assert inserted["ids"] == [insert_id]
                assert (update["data"]["type"], (update["data"].get("record") or {}).get("name")) == (
                    "UPDATE",
                    n2,
                )
                assert update["ids"] == [update_id]
                assert len(await inserts.settle()) == 1
                assert len(updates.items) == 1
        finally:
            await delete_devices(stack, [n1, n2])

    run(scenario())


def test_postgres_changes_on_a_table_outside_the_publication_is_a_system_error(
    stack: Settings, world: World
) -> None:
    async def scenario() -> None:
        topic = unique("nopub")
        async with realtime_client(stack, world.tokens["member"]) as member:
            changes: Inbox[PostgresChangesPayload] = Inbox("changes")
            channel = member.channel(topic, options()).on_postgres_changes(
                ALL, changes.put, table="workspaces"
            )
            states = await joined(channel)
            # The Python client turns every system error, postgres_changes ones included, into CHANNEL_ERROR.
            seen = await states.wait(2)
            payload = system_error(seen)
            await member.close()  # before the client's rejoin timer fires
            prefix = (
                "Unable to subscribe to changes with given parameters. "
                "Please check Realtime is enabled for the given connect parameters: ["
            )
            assert payload["message"].startswith(prefix), payload
            assert "table: workspaces" in payload["message"], payload
            assert {k: v for k, v in payload.items() if k != "message"} == {
                "channel": topic,
                "extension": "postgres_changes",
                "status": "error",
            }
            assert changes.items == []

    run(scenario())


# -- 6. tokens -----------------------------------------------------------------------------------------------


def test_set_auth_keeps_the_channel_and_a_token_that_may_not_read_closes_it(
    stack: Settings, world: World
) -> None:
    async def scenario() -> None:
        topic = f"ws:{world.ids['w1']}"
        event = unique("refresh")
        email = await email_of(stack, world.ids["member"])
        async with realtime_client(stack, world.tokens["member"]) as client:
            received: Inbox[BroadcastPayload] = Inbox("member")
            channel = client.channel(topic, options(private=True)).on_broadcast(event, received.put)
            states = await joined(channel)

            await client.set_auth(user_token(stack, world.ids["member"], email, ttl=600))
            await received.settle(0.3)
            await db_send(stack, {"n": 1}, event, topic)
            [message] = await received.wait(1)
            assert message["payload"]["n"] == 1
            assert states.items == [("SUBSCRIBED", None)]
            assert channel.is_joined

            await client.set_auth(
                world.tokens["nocaps"]
            )  # the same socket, a token that may not read ws:<w1>
            seen = await states.wait(3)
            payload = system_error(seen)
            assert payload == {
                "channel": topic,
                "extension": "system",
                "message": f"You no longer have permission to read from this Channel topic: {topic}",
                "status": "error",
            }
            assert seen[-1] == ("CLOSED", None)  # the server's phx_close
            assert f"realtime:{topic}" not in client.channels

    run(scenario())


def test_an_expiring_token_closes_the_private_channel(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        topic = f"ws:{world.ids['w1']}"
        email = await email_of(stack, world.ids["member"])
        short = user_token(stack, world.ids["member"], email, ttl=3)
        async with realtime_client(stack, short) as client:
            channel = client.channel(topic, options(private=True))
            states = await joined(channel)
            seen = await states.wait(3, timeout=3 + WAIT)
            payload = system_error(seen)
            assert re.fullmatch(r"Token has expired \d+ seconds ago", payload["message"]), payload
            assert {k: v for k, v in payload.items() if k != "message"} == {
                "channel": topic,
                "extension": "system",
                "status": "error",
            }
            assert [s for s, _ in seen] == ["SUBSCRIBED", "CHANNEL_ERROR", "CLOSED"]
            assert not channel.is_joined

    run(scenario())


def test_a_join_with_an_expired_access_token_is_refused(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        expired = tokens.sign_hs256(
            {
                "sub": world.ids["member"],
                "role": "authenticated",
                "exp": int(datetime.now(UTC).timestamp()) - 30,
            },
            stack.jwt_secret,
        )
        async with realtime_client(stack, expired) as client:
            response = await refused(client.channel(f"ws:{world.ids['w1']}", options(private=True)))
            assert re.fullmatch(r"InvalidJWTToken: Token has expired \d+ seconds ago", response["reason"]), (
                response
            )

    run(scenario())


# -- 7. replay -----------------------------------------------------------------------------------------------


def test_replay_delivers_what_a_private_subscriber_missed(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        topic = f"ws:{world.ids['w1']}"
        event = unique("replay")
        since = now_ms()
        async with realtime_client(stack, world.tokens["admin"]) as watcher:
            # A barrier: once the watcher has the last message, the server has delivered all three live (to
            # nobody on `event`), so the replaying join below cannot also get them live.
            barrier: Inbox[BroadcastPayload] = Inbox("watcher")
            await joined(
                watcher.channel(topic, options(private=True)).on_broadcast(f"{event}-barrier", barrier.put)
            )
            for n in range(3):
                await db_send(stack, {"n": n}, event, topic)
            await db_send(stack, {}, f"{event}-barrier", topic)
            await barrier.wait(1)
        async with realtime_client(stack, world.tokens["member"]) as client:
            received: Inbox[BroadcastPayload] = Inbox("replayed")
            replay = options(private=True, replay={"since": since, "limit": 10})
            await joined(client.channel(topic, replay).on_broadcast(event, received.put))
            replayed = await received.wait(3)
            assert [m["payload"]["n"] for m in replayed] == [0, 1, 2]  # oldest first
            for message in replayed:
                message_id = message["payload"]["id"]
                assert message == {
                    "event": event,
                    "payload": {"n": message["payload"]["n"], "id": message_id},
                    "meta": {"replayed": True, "id": message_id},
                }
            await db_send(stack, {"n": 3}, event, topic)  # live again: no `replayed`
            live = (await received.wait(4))[3]
            assert live == {
                "event": event,
                "payload": {"n": 3, "id": live["payload"]["id"]},
                "meta": {"id": live["payload"]["id"]},
            }
            assert len(await received.settle()) == 4

        async with realtime_client(stack, world.tokens["member"]) as client:
            limited: Inbox[BroadcastPayload] = Inbox("replayed, limit 2")
            replay = options(private=True, replay={"since": since, "limit": 2})
            await joined(client.channel(topic, replay).on_broadcast(event, limited.put))
            await limited.wait(2)
            got = await limited.settle()
            assert len(got) == 2, got
            ns = [m["payload"]["n"] for m in got]
            assert ns == sorted(ns)

        async with realtime_client(stack, world.tokens["member"]) as client:
            later: Inbox[BroadcastPayload] = Inbox("replay since after the messages")
            replay = options(private=True, replay={"since": now_ms() + 60_000, "limit": 10})
            await joined(client.channel(topic, replay).on_broadcast(event, later.put))
            assert await later.settle() == []

    run(scenario())


def test_replay_is_refused_on_public_channels(stack: Settings) -> None:
    async def scenario() -> None:
        async with realtime_client(stack) as client:
            channel = client.channel(
                unique("public"), options(replay={"since": now_ms() - 60_000, "limit": 5})
            )
            assert await refused(channel) == {
                "reason": "UnableToReplayMessages: Replay is not allowed for public channels"
            }

    run(scenario())


# -- 8. HTTP broadcast ---------------------------------------------------------------------------------------


def test_http_broadcasts_are_delivered_and_private_ones_checked(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        topic = unique("http")
        ws_topic, device_topic = f"ws:{world.ids['w1']}", f"device:{world.ids['d1']}"
        ws_event = unique("from-http")
        async with (
            realtime_client(stack) as listener,
            realtime_client(stack, world.tokens["d1"]) as device,
            realtime_client(stack, world.tokens["member"]) as member,
        ):
            public_in: Inbox[BroadcastPayload] = Inbox("public listener")
            device_in: Inbox[BroadcastPayload] = Inbox("device")
            ws_in: Inbox[BroadcastPayload] = Inbox("member on ws:<w1>")
            await joined(listener.channel(topic, options()).on_broadcast("*", public_in.put))
            await joined(device.channel(device_topic, options(private=True)).on_broadcast("*", device_in.put))
            await joined(member.channel(ws_topic, options(private=True)).on_broadcast(ws_event, ws_in.put))

            # http_send: the client's explicit REST send, on channels never joined.
            async with realtime_client(stack, world.tokens["member"], connect=False) as sender:
                await sender.channel(topic, options()).http_send("ping", {"n": 1})
                await sender.channel(device_topic, options(private=True)).http_send("vpn-on", {"n": 2})
                with pytest.raises(RealtimeHTTPError) as denied:
                    await sender.channel(ws_topic, options(private=True)).http_send(ws_event, {"n": 3})
                assert (denied.value.status, denied.value.message) == (403, "Unauthorized")
            assert await public_in.wait(1) == [{"event": "ping", "payload": {"n": 1}}]
            [command] = await device_in.wait(1)
            assert {k: v for k, v in command.items() if k != "meta"} == {
                "event": "vpn-on",
                "payload": {"n": 2},
            }

            message_id = str(uuid.uuid4())
            async with httpx.AsyncClient(timeout=WAIT) as http:
                answer = await http.post(
                    f"{stack.api_url}/realtime/v1/api/broadcast",
                    headers={"apikey": world.anon_key, "Authorization": f"Bearer {world.tokens['member']}"},
                    json={
                        "messages": [
                            {"topic": topic, "event": "batch", "payload": {"n": 4}, "id": message_id},
                            {"topic": ws_topic, "event": ws_event, "payload": {"n": 5}, "private": True},
                            {"topic": device_topic, "event": "vpn-off", "payload": {"n": 6}, "private": True},
                        ]
                    },
                )
            assert (answer.status_code, answer.content) == (202, b"")
            assert (await public_in.wait(2))[1] == {
                "event": "batch",
                "payload": {"n": 4},
                "meta": {"id": message_id},
            }
            batched = (await device_in.wait(2))[1]
            assert {k: v for k, v in batched.items() if k != "meta"} == {
                "event": "vpn-off",
                "payload": {"n": 6},
            }

            # The member may not write on ws:<w1>: http_send and the batch never got there.
            await db_send(stack, {"n": 7}, ws_event, ws_topic)
            [only] = await ws_in.wait(1)
            assert only["payload"]["n"] == 7
            assert await ws_in.settle() == [only]
            assert len(public_in.items) == 2
            assert len(device_in.items) == 2
            # Going past Realtime (docs/realtime.md): a private HTTP broadcast is stored in realtime.messages
            # as the caller, so it arrives from the database with the stored row's id, and stays for replay.
            assert isinstance(command.get("meta", {}).get("id"), str), command
            assert isinstance(batched.get("meta", {}).get("id"), str), batched

    run(scenario())


def test_http_broadcast_refusals(stack: Settings, world: World) -> None:
    base = f"{stack.api_url}/realtime/v1/api/broadcast"
    message = {"topic": unique("http"), "event": "e", "payload": {"n": 1}}
    anon = {"apikey": world.anon_key}
    with httpx.Client(timeout=WAIT) as http:
        garbage = http.post(
            base, headers={**anon, "Authorization": "Bearer not-a-jwt"}, json={"messages": [message]}
        )
        assert (garbage.status_code, garbage.json()) == (401, {"message": "Unauthorized"})
        invalid = http.post(base, headers=anon, json={"messages": [{"event": "e", "payload": {}}]})
        assert invalid.status_code == 422, invalid.text
        assert "messages" in invalid.json()["errors"]
        text = http.post(
            f"{base}/{message['topic']}/events/e",
            headers={**anon, "Content-Type": "text/plain"},
            content=b"hi",
        )
        assert text.status_code == 415, text.text
        assert "error" in text.json()
        nocaps = http.post(
            f"{base}/device%3A{world.ids['d1']}/events/vpn-on",
            params={"private": "true"},
            headers={**anon, "Authorization": f"Bearer {world.tokens['nocaps']}"},
            json={"n": 1},
        )
        assert (nocaps.status_code, nocaps.json()) == (403, {"message": "Unauthorized"})
        public = http.post(f"{base}/{message['topic']}/events/e", headers=anon, json={"n": 1})
        assert (public.status_code, public.content) == (202, b"")


# -- connect time and raw frames -----------------------------------------------------------------------------


def ws_url(stack: Settings, apikey: str | None) -> str:
    query = f"apikey={apikey}&vsn=1.0.0" if apikey is not None else "vsn=1.0.0"
    return f"{stack.api_url.replace('http://', 'ws://')}/realtime/v1/websocket?{query}"


def refusal_cases(secret: str) -> list[tuple[str, str | None, str]]:
    now = int(datetime.now(UTC).timestamp())
    return [
        ("missing", None, "API key is missing"),
        ("expired", tokens.sign_hs256({"role": "anon", "exp": now - 60}, secret), "Token has expired"),
        ("garbage", "not-a-jwt", "The token provided is not a valid JWT"),
        (
            "bad-signature",
            tokens.sign_hs256({"role": "anon", "exp": now + 600}, "another-secret-of-at-least-32-characters"),
            "Failed to validate JWT signature",
        ),
        (
            "no-exp",
            tokens.sign_hs256({"role": "anon"}, secret),
            "Fields `role` and `exp` are required in JWT",
        ),
    ]


@pytest.mark.parametrize("case", ["missing", "expired", "garbage", "bad-signature", "no-exp"])
def test_connect_time_refusals(stack: Settings, case: str) -> None:
    [(_, apikey, message)] = [c for c in refusal_cases(stack.jwt_secret) if c[0] == case]

    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as refused_:
            async with connect(ws_url(stack, apikey), open_timeout=JOIN_TIMEOUT):
                pass
        response = refused_.value.response
        assert response.status_code == 401
        assert json.loads(response.body) == {"error": message}

    run(scenario())


@pytest.mark.parametrize("key", ["anon", "publishable", "user-jwt"])
def test_accepted_keys_upgrade_and_answer_heartbeats(stack: Settings, world: World, key: str) -> None:
    apikey = {
        "anon": world.anon_key,
        "publishable": stack.publishable_key,
        "user-jwt": world.tokens["member"],
    }[key]

    async def scenario() -> None:
        async with connect(ws_url(stack, apikey), open_timeout=JOIN_TIMEOUT) as ws:
            frames = Frames(ws)
            await frames.send("phoenix", "heartbeat", {}, "1", None)
            reply = await frames.next_where(lambda f: f.get("topic") == "phoenix")
            assert reply == {
                "topic": "phoenix",
                "event": "phx_reply",
                "payload": {"status": "ok", "response": {}},
                "ref": "1",
            }

    run(scenario())


def test_raw_frames_follow_the_v1_serializer(stack: Settings, world: World) -> None:
    async def scenario() -> None:
        sub = unique("raw")
        topic = f"realtime:{sub}"
        binding = {"event": "INSERT", "schema": "public", "table": "devices", "filter": "name=eq.nobody"}
        async with connect(ws_url(stack, world.anon_key), open_timeout=JOIN_TIMEOUT) as ws:
            frames = Frames(ws)

            def reply_to(ref: str) -> Any:
                return lambda f: f.get("event") == "phx_reply" and f.get("ref") == ref

            await frames.send("phoenix", "heartbeat", {}, None, None)  # Python's heartbeat: ref null
            assert await frames.next_where(lambda f: f.get("topic") == "phoenix") == {
                "topic": "phoenix",
                "event": "phx_reply",
                "payload": {"status": "ok", "response": {}},
                "ref": None,
            }
            await ws.send("this is not json")
            await frames.send(topic, "no_such_event", {}, "2", "2")
            await frames.send("phoenix", "heartbeat", {}, "3", None)
            await frames.next_where(
                reply_to("3")
            )  # malformed and unknown frames are ignored, the socket lives

            config = {
                "broadcast": None,
                "presence": {"key": "", "enabled": False},
                "private": False,
                "postgres_changes": [binding],
            }
            # anon may not SELECT public.devices, so it may not filter on its columns: the join itself is ok,
            # the postgres_changes extension reports the error.
            denied_sub = unique("raw-anon")
            await frames.send(
                f"realtime:{denied_sub}",
                "phx_join",
                {"config": config, "access_token": world.anon_key},
                "40",
                "40",
            )
            assert (await frames.next_where(reply_to("40")))["payload"]["status"] == "ok"
            denied = await frames.next_where(
                lambda f: f.get("event") == "system" and f.get("topic") == f"realtime:{denied_sub}"
            )
            assert denied["ref"] is None
            assert {k: v for k, v in denied["payload"].items() if k != "message"} == {
                "channel": denied_sub,
                "extension": "postgres_changes",
                "status": "error",
            }
            assert denied["payload"]["message"].startswith(
                "Unable to subscribe to changes with given parameters. An exception happened"
            ), denied

            member_join = {"config": config, "access_token": world.tokens["member"]}
            await frames.send(topic, "phx_join", member_join, "4", "4")
            reply = await frames.next_where(reply_to("4"))
            assert set(reply) == {"topic", "event", "payload", "ref"}  # no join_ref on vsn 1.0.0
            assert reply["topic"] == topic
            assert reply["payload"]["status"] == "ok"
            [echo] = reply["payload"]["response"]["postgres_changes"]
            assert isinstance(echo.get("id"), int)
            assert echo["id"] != 0
            assert echo == {**binding, "id": echo["id"]}
            system = await frames.next_where(lambda f: f.get("event") == "system" and f.get("topic") == topic)
            assert system == {
                "topic": topic,
                "event": "system",
                "payload": {
                    "channel": sub,
                    "extension": "postgres_changes",
                    "message": SUBSCRIBED_TO_POSTGRES,
                    "status": "ok",
                },
                "ref": None,
            }

            await frames.send("realtime:", "phx_join", {"config": config}, "5", "5")
            assert (await frames.next_where(reply_to("5")))["payload"] == {
                "status": "error",
                "response": {"reason": "TopicNameRequired: You must provide a topic name"},
            }
            await frames.send("elsewhere", "phx_join", {"config": config}, "6", "6")
            assert (await frames.next_where(reply_to("6")))["payload"] == {
                "status": "error",
                "response": {"reason": "unmatched topic"},
            }

            # Joining a joined topic again closes the old channel, then joins anew.
            await frames.send(topic, "phx_join", member_join, "8", "8")
            replaced = await frames.next_where(lambda f: f.get("event") == "phx_close")
            assert replaced == {"topic": topic, "event": "phx_close", "payload": {}, "ref": "4"}
            assert (await frames.next_where(reply_to("8")))["payload"]["status"] == "ok"

            await frames.send(topic, "phx_leave", {}, "7", "8")
            assert (await frames.next_where(reply_to("7")))["payload"] == {"status": "ok", "response": {}}
            closed = await frames.next_where(lambda f: f.get("event") == "phx_close")
            assert closed == {"topic": topic, "event": "phx_close", "payload": {}, "ref": "8"}
            await frames.nothing_where(lambda f: f.get("topic") == topic, QUIET)

    run(scenario())
