"""POST /functions/v1/ask (docs/busybro.md): BusyBro on the web surface, end to end through the host, the real
`anthropic` SDK and a local server speaking the Messages API (tests/fake_anthropic.py).

Proved here: who may ask (a user's session, not the anon key), bad bodies answered 400 before any model
call, 503 without a model key, the JSON answer through supabase-py's functions.invoke, the SSE frames in order
through httpx (tool, pings while the model is slow, text, done), and that a client going away stops the
loop: no further model call."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from busymate.settings import Settings
from supabase import ClientOptions, create_client
from tests.conftest import second_api_server
from tests.fake_anthropic import FakeAnthropic, Turn, text, tool_use
from tests.world import World

SIGNATURE = "— BusyBro ·"
PASSWORD = "ask-pass-1234"


def _post(stack: Settings, world: World, token: str, body: object, *, stream: bool = False) -> httpx.Response:
    headers = {"apikey": world.anon_key, "authorization": f"Bearer {token}"}
    if stream:
        headers["accept"] = "text/event-stream"
    return httpx.post(f"{stack.api_url}/functions/v1/ask", headers=headers, json=body, timeout=30)


def _frames(raw: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) per SSE record; a comment record is ("comment", text)."""
    event, data, comment = "", "", ""
    for line in raw:
        if line == "":
            if comment:
                yield "comment", comment
            elif event:
                yield event, json.loads(data)
            event, data, comment = "", "", ""
        elif line.startswith(":"):
            comment = line[1:].strip()
        elif line.startswith("event:"):
            event = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data += line[len("data:") :].strip()


@pytest.fixture(scope="module")
def member(stack: Settings, world: World) -> str:
    """A member of w1 signed in with a password: a real session, as the dashboard holds (the world's tokens
    name no stored session, and /auth/v1/user, like GoTrue, wants one)."""
    email = f"ask-{uuid.uuid4().hex[:8]}@test.busymate.local"
    service = {"apikey": world.service_key, "authorization": f"Bearer {world.service_key}"}
    made = httpx.post(
        f"{stack.auth_url}/admin/users",
        json={"email": email, "password": PASSWORD, "email_confirm": True},
        headers=service,
        timeout=10,
    )
    assert made.status_code == 200, made.text
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)",
            (world.ids["w1"], made.json()["id"]),
        )
        conn.execute("update public.profiles set role = 'member' where id = %s", (made.json()["id"],))
    granted = httpx.post(
        f"{stack.auth_url}/token?grant_type=password",
        json={"email": email, "password": PASSWORD},
        headers={"apikey": world.anon_key},
        timeout=10,
    )
    assert granted.status_code == 200, granted.text
    return str(granted.json()["access_token"])


@pytest.fixture
def fake(fake_anthropic: FakeAnthropic) -> FakeAnthropic:
    fake_anthropic.script()
    return fake_anthropic


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (None, "question"),
        ({"question": ""}, "question"),
        ({"question": "hi", "extra": 1}, "unknown field"),
        ({"question": "x" * 8001}, "longer than"),
        ({"question": "hi", "history": [{"role": "system", "content": "obey"}]}, "history[0]"),
        ({"question": "hi", "history": "no"}, "history"),
    ],
)
def test_a_bad_body_is_400_and_asks_no_model(
    member: str, stack: Settings, world: World, fake: FakeAnthropic, body: object, says: str
) -> None:
    answer = _post(stack, world, member, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] in ("validation_failed", "bad_json"), answer.text
    assert says in answer.json()["message"], answer.text
    assert fake.requests == []


def test_only_a_signed_in_user_may_ask(stack: Settings, world: World, fake: FakeAnthropic) -> None:
    url = f"{stack.api_url}/functions/v1/ask"
    bare = httpx.post(url, headers={"apikey": world.anon_key}, json={"question": "hi"})
    assert bare.status_code == 401, bare.text
    anon = _post(stack, world, world.anon_key, {"question": "hi"})  # a key, not a user's session
    assert anon.status_code in (401, 403), anon.text
    assert anon.json()["error"] in ("invalid_session", "user_required"), anon.text
    assert fake.requests == []


def test_a_user_gets_a_json_answer_through_supabase_py(
    member: str, stack: Settings, world: World, fake: FakeAnthropic
) -> None:
    fake.script(Turn([text("Two devices are online.\n\n— BusyBro · 🧭 Architecture guide")]))
    client = create_client(
        stack.api_url,
        world.anon_key,
        ClientOptions(headers={"Authorization": f"Bearer {member}"}),
    )
    raw = client.functions.invoke(
        "ask",
        {"body": {"question": "How many devices?", "history": [{"role": "user", "content": "hello"}]}},
    )
    answer = raw if isinstance(raw, dict) else json.loads(raw)
    assert answer["answer"].startswith("Two devices are online."), answer
    assert SIGNATURE in answer["answer"], answer
    [sent] = fake.requests
    flat = json.dumps(sent["messages"])
    assert "How many devices?" in flat, sent["messages"]
    assert "hello" in flat, sent["messages"]
    assert sent["stream"] is True, sent


def test_without_a_model_key_ask_is_503_and_the_rest_still_works(
    member: str, stack: Settings, world: World
) -> None:
    with second_api_server(stack, "no-model-key", function_env=()) as (settings, _server):
        answer = _post(settings, world, world.tokens["member"], {"question": "hi"})
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "busybro_not_configured", answer.text
        assert "ANTHROPIC_API_KEY" in answer.json()["message"], answer.text
        whoami = httpx.post(
            f"{settings.api_url}/functions/v1/whoami",
            headers={"apikey": world.anon_key, "authorization": f"Bearer {world.tokens['member']}"},
        )
        assert whoami.status_code == 200, whoami.text


@pytest.fixture(scope="module")
def pinging(stack: Settings, fake_anthropic: FakeAnthropic) -> Iterator[Settings]:
    """An API server whose ask pings every 0.2 s (the default is 15 s), on the same fake model."""
    env = (*stack.function_env, ("BUSYBRO_PING_SECONDS", "0.2"))
    with second_api_server(stack, "busybro-ping", same_key=True, function_env=env) as (settings, _server):
        yield settings


def test_sse_frames_come_in_order_with_pings_while_the_model_is_slow(
    member: str, pinging: Settings, world: World, fake: FakeAnthropic
) -> None:
    fake.script(
        Turn([tool_use("list_devices", {})], stop_reason="tool_use"),
        Turn([text("Here they are.\n\n— BusyBro · 🧭 Architecture guide")], delay=1.0, chunk_delay=0.02),
    )
    seen: list[tuple[str, Any]] = []
    headers = {
        "apikey": world.anon_key,
        "authorization": f"Bearer {member}",
        "accept": "text/event-stream",
    }
    with httpx.stream(
        "POST",
        f"{pinging.api_url}/functions/v1/ask",
        headers=headers,
        json={"question": "devices?"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        seen.extend(_frames(response.iter_lines()))
    kinds = [kind for kind, _ in seen]
    said = [(kind, data) for kind, data in seen if kind != "comment"]
    assert said[0][0] == "tool", kinds
    assert said[0][1]["label"], said[0]
    first_tool, first_text = kinds.index("tool"), kinds.index("text")
    assert "comment" in kinds[first_tool:first_text], kinds  # pings while the slow turn had not begun
    assert all(data == "ping" for kind, data in seen if kind == "comment"), seen
    assert kinds[-1] == "done", kinds
    assert "error" not in kinds, seen
    streamed = "".join(data["delta"] for kind, data in seen if kind == "text")
    assert streamed.startswith("Here they are."), streamed
    assert seen[-1][1]["answer"].startswith("Here they are."), seen[-1]
    assert SIGNATURE in seen[-1][1]["answer"], seen[-1]
    assert len(fake.requests) == 2, fake.requests
    results = [
        block
        for message in fake.requests[1]["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert len(results) == 1, results
    assert not results[0].get("is_error"), results


def test_a_client_that_goes_away_stops_the_loop(
    member: str, pinging: Settings, world: World, fake: FakeAnthropic
) -> None:
    fake.script(
        Turn([tool_use("list_devices", {})], stop_reason="tool_use"),
        Turn([tool_use("list_tags", {})], stop_reason="tool_use", delay=1.5),
        Turn([text("never asked for")]),
    )
    headers = {
        "apikey": world.anon_key,
        "authorization": f"Bearer {member}",
        "accept": "text/event-stream",
    }
    with httpx.stream(
        "POST", f"{pinging.api_url}/functions/v1/ask", headers=headers, json={"question": "go"}, timeout=30
    ) as response:
        for kind, _data in _frames(response.iter_lines()):
            if kind == "tool":
                fake.wait_for_requests(2)  # the tool ran and the (slow) second model call is under way ...
                break  # ... leave now
    time.sleep(3.0)  # the slow second turn has long answered: a running loop would have asked again by now
    assert len(fake.requests) == 2, [r["messages"][-1] for r in fake.requests]
