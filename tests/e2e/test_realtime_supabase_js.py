"""/realtime/v1 driven by the unchanged npm client @supabase/supabase-js 2.109 (Node 20, the `ws` transport).

The checks live in tests/e2e/js/realtime.mjs. Node runs once per module and prints one JSON object with a
result per check; each check is one test here, so a failure is reported by name with the WebSocket frames
(binary kind-3/kind-4 frames decoded), subscribe statuses and HTTP exchanges behind it. The expectations are
those of Supabase Realtime (https://supabase.com/docs/guides/realtime/protocol, /broadcast, /presence,
/authorization) and the topics of docs/security-model.md ("Realtime topics").

Before Node starts, this module stores the messages the replay check expects with realtime.send, straight in
the database, so that check does not depend on the HTTP broadcast endpoint.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest

from busymate.settings import Settings
from tests.e2e.test_rest_supabase_js import run_node
from tests.world import World

# Every check realtime.mjs runs, in its order; test_the_script_ran_every_check keeps the two lists equal.
CHECKS = (
    "broadcast_public_kind3_without_self",
    "broadcast_public_with_self",
    "broadcast_ack_resolves_ok",
    "broadcast_vsn1_json_serializer",
    "private_join_ws_as_member_and_admin_ok",
    "private_join_ws_as_nocaps_refused",
    "private_join_ws_as_outsider_refused",
    "private_join_device_as_outsider_refused",
    "private_send_without_write_is_dropped",
    "db_broadcast_entries_to_workspace",
    "device_channel_command_and_result",
    "device_receives_rpc_command_from_database",
    "presence_track_untrack",
    "postgres_changes_filtered_insert_update_delete",
    "postgres_changes_rls_hides_other_workspace",
    "postgres_changes_table_not_published_is_system_error",
    "set_auth_refresh_keeps_channel",
    "set_auth_without_read_closes_channel",
    "expired_token_closes_private_channel",
    "replay_on_join",
    "replay_limit_caps_the_count",
    "http_send_public",
    "http_send_private_and_forbidden",
    "send_before_subscribe_falls_back_to_http",
)


def wait_for_logical_slots(conn: psycopg.Connection[Any], timeout: float = 5.0) -> None:
    """Wait until every logical slot of the database has read the WAL written so far (at most `timeout`).

    The stack delivers stored broadcasts by polling a slot. A message stored just before a channel joins could
    otherwise still be in flight and reach that channel live as well as replayed: a race of the test's making.
    """
    lsn = conn.execute("select pg_catalog.pg_current_wal_lsn()").fetchone()
    assert lsn is not None
    behind = (
        "select count(*) from pg_catalog.pg_replication_slots where slot_type = 'logical' "
        "and database = current_database() and coalesce(confirmed_flush_lsn < %s, true)"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(behind, (lsn[0],)).fetchone()
        if row is not None and row[0] == 0:
            break
        time.sleep(0.02)
    time.sleep(0.2)  # the poller hands what it read to the subscribers right after reading it


def store_replay_messages(stack: Settings, world: World) -> dict[str, Any]:
    """Store broadcasts for replay_on_join on device:<d_unpaired> (the member owns it, no other check sends).

    One private message before `since` and one public message after it must not be replayed; the two private
    messages after it must, oldest first. Each statement commits on its own, so each gets its own inserted_at.
    """
    topic = f"device:{world.ids['d_unpaired']}"
    send = "select realtime.send(%s::jsonb, %s, %s, %s)"
    count = "select count(*) from realtime.messages where topic = %s"
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        before = conn.execute(count, (topic,)).fetchone()
        conn.execute(send, ('{"n": 0}', "replay-before", topic, True))
        time.sleep(0.05)
        row = conn.execute("select floor(extract(epoch from clock_timestamp()) * 1000)::bigint").fetchone()
        assert row is not None
        since = int(row[0])
        time.sleep(0.05)
        conn.execute(send, ('{"n": 1}', "replay-1", topic, True))
        conn.execute(send, ('{"n": 3}', "replay-public", topic, False))
        conn.execute(send, ('{"n": 2}', "replay-2", topic, True))
        after = conn.execute(count, (topic,)).fetchone()
        wait_for_logical_slots(conn)
    assert before is not None
    assert after is not None
    assert after[0] - before[0] == 4, f"realtime.send stored {after[0] - before[0]} messages, expected 4"
    return {
        "topic": topic,
        "since": since,
        "before": "replay-before",
        "events": ["replay-1", "replay-2"],
        "public_event": "replay-public",
    }


@pytest.fixture(scope="module")
def js_results(stack: Settings, world: World) -> dict[str, Any]:
    """Run realtime.mjs once against the started stack and return its parsed output."""
    replay = json.dumps(store_replay_messages(stack, world))
    return run_node("realtime.mjs", stack, world, {"REPLAY": replay}, 300)


def test_the_script_ran_every_check(js_results: dict[str, Any]) -> None:
    assert tuple(js_results["checks"]) == CHECKS


@pytest.mark.parametrize("name", CHECKS)
def test_supabase_js_realtime(js_results: dict[str, Any], name: str) -> None:
    result = js_results["checks"].get(name)
    if result is None:
        pytest.fail(f"realtime.mjs reported no result for {name}")
    if not result["ok"]:
        report = json.dumps({"failure": result["details"], "frames": result.get("frames", [])}, indent=2)
        pytest.fail(
            f"supabase-js {js_results['supabase_js']} on node {js_results['node']}: {name} failed\n{report}",
            pytrace=False,
        )
