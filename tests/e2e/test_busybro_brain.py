"""BusyBro's brain against the fake Messages API, through the real `anthropic` SDK, with tools on the session
stack under each person's own token. Every assertion is on what the brain sent (the raw request bodies the
fake recorded) or on the events it yielded."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar

import anthropic
import httpx
import psycopg
import pytest

from busymate import tokens
from busymate.api_client import AsyncApi
from busymate.functions.busybro import brain, docs_context, prompt
from busymate.functions.busybro.core import Done, Event, Failed, Identity, Surface, TextDelta, ToolProgress
from busymate.functions.busybro.prompt import SIGNATURE_PREFIX, has_signature
from busymate.functions.busybro.tools.registry import all_tools, find
from busymate.settings import Settings
from tests.fake_anthropic import FakeAnthropic, Turn, citation, text, tool_use, web_search
from tests.world import World, add_user

KEY = "sk-ant-fake-key"
WRITE_TOOLS = {tool.name for tool in all_tools() if tool.kind == "write"}
T = TypeVar("T")


def run[T](coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run one scenario, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def identity_of(api: AsyncApi) -> Identity:
    """The caller as `ask` resolves them: their profile row and my_capabilities, under their own token (the
    world's tokens name no auth session, so the user id is read from the token's claims)."""
    assert isinstance(api.token, str)
    payload = api.token.split(".")[1]
    user_id = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
    [profile] = await api.select(
        "profiles", {"select": "display_name,email,role,busybro_prefs", "id": f"eq.{user_id}"}
    )
    caps = await api.rpc("my_capabilities", {})
    return Identity(
        user_id=str(user_id),
        email=profile.get("email"),
        display_name=profile.get("display_name") or "",
        role=profile.get("role"),
        grants_all=caps.get("grants_all") is True,
        capabilities=caps.get("capabilities") or {},
        prefs=profile.get("busybro_prefs") or {},
    )


async def ask(
    stack: Settings,
    world: World,
    fake: FakeAnthropic,
    token: str,
    question: str = "What is going on?",
    surface: Surface = "web",
) -> list[Event]:
    """Every event of one answer, the brain in-process, its tools on the stack under `token`."""
    async with AsyncApi(stack.api_url, world.anon_key, token) as db:
        identity = await identity_of(db)
        client = anthropic.AsyncAnthropic(base_url=fake.url, api_key=KEY, max_retries=0)
        try:
            return [
                event
                async for event in brain.answer(
                    question,
                    identity=identity,
                    db=db,
                    client=client,
                    surface=surface,
                    dash_origin="https://dash.example",
                )
            ]
        finally:
            await client.close()


def ingest(stack: Settings, world: World, device_token: str, **fields: Any) -> None:
    """One captured flow through ingest_entries under a device's token, as a proxy would send it."""
    flow: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "captured_at": datetime.now(UTC).isoformat(),
        "method": "GET",
        "scheme": "https",
        "port": 443,
        "status": 200,
        "duration_ms": 12.5,
        "response_content_type": "application/json",
        **fields,
    }
    answer = httpx.post(
        f"{stack.api_url}/rest/v1/rpc/ingest_entries",
        json={"batch": [flow]},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {device_token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["inserted"] == 1, answer.text


def final(events: list[Event]) -> Done:
    """The one Done, last."""
    assert isinstance(events[-1], Done), events[-1]
    assert sum(isinstance(event, Done | Failed) for event in events) == 1
    return events[-1]


def tool_names(body: dict[str, Any]) -> list[str]:
    return [tool["name"] for tool in body["tools"]]


@pytest.fixture(scope="module")
def viewer_token(stack: Settings, world: World) -> str:
    """A user with the stock viewer role (the world's `nocaps` has a role with no capability at all)."""
    _, token = add_user(stack, world.ids["w1"], "viewer", "brain-viewer")
    return token


def test_the_tools_offered_follow_the_role(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic, viewer_token: str
) -> None:
    offered: dict[str, list[str]] = {}
    people = {
        "nocaps": world.tokens["nocaps"],
        "viewer": viewer_token,
        "member": world.tokens["member"],
        "admin": world.tokens["admin"],
    }
    for person, token in people.items():
        fake_anthropic.script(Turn([text("Hi.")]))
        events = run(ask(stack, world, fake_anthropic, token))
        assert has_signature(final(events).answer)
        [body] = fake_anthropic.requests
        assert body["stream"] is True
        assert body["model"] == brain.DEFAULT_MODEL
        assert body["tools"][-1] == {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
        offered[person] = tool_names(body)

    for person in ("nocaps", "viewer"):  # no write tool, whatever is asked
        assert not WRITE_TOOLS & set(offered[person]), person
    assert "list_users" not in offered["nocaps"]
    assert "list_breakpoints" not in offered["nocaps"]
    assert "list_breakpoints" in offered["viewer"]
    assert "list_users" not in offered["viewer"]
    assert {"list_devices", "recent_entries", "inspect_requests"} <= set(offered["nocaps"])
    # a member edits devices, services and tags, not the global settings
    assert {"rename_device", "vpn_on_device", "upsert_tag", "set_service_group_agents", "list_users"} <= set(
        offered["member"]
    )
    assert "set_global_connection_type" not in offered["member"]
    assert set(offered["admin"]) >= WRITE_TOOLS
    assert set(offered["nocaps"]) < set(offered["viewer"]) < set(offered["member"]) < set(offered["admin"])


def test_the_cached_prefix_is_byte_identical_across_users(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    systems = []
    for person in ("member", "admin"):
        fake_anthropic.script(Turn([text("Hi.")]))
        run(ask(stack, world, fake_anthropic, world.tokens[person]))
        [body] = fake_anthropic.requests
        systems.append(body["system"])
    member, admin = systems
    assert len(member) == len(admin) == 3
    for index in (0, 1):  # [instructions, docs]: the same bytes, cached
        assert json.dumps(member[index], ensure_ascii=False) == json.dumps(admin[index], ensure_ascii=False)
        assert member[index]["cache_control"] == {"type": "ephemeral"}
    assert "BusyBro" in member[0]["text"]
    assert "🛡️ Security specialist" in member[0]["text"]
    assert '<doc path="README.md">' in member[1]["text"]
    # the caller rides in the uncached tail
    assert "cache_control" not in member[2]
    assert "cache_control" not in admin[2]
    assert member[2]["text"] != admin[2]["text"]
    assert "member-e2e@" in member[2]["text"]
    assert "admin-e2e@" in admin[2]["text"]
    assert "member-e2e@" not in member[0]["text"] + member[1]["text"]

    fake_anthropic.script(Turn([text("Hi.")]))
    run(ask(stack, world, fake_anthropic, world.tokens["member"], surface="telegram"))
    [telegram] = fake_anthropic.requests
    assert telegram["system"][1] == member[1]  # the docs are the docs
    assert telegram["system"][0] != member[0]  # the surface changes the formatting section
    assert "https://dash.example/devices?uuid=" in telegram["system"][0]["text"]


def test_the_loop_stops_after_six_tool_rounds_with_a_final_tool_choice_none(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(
        *[Turn([text(f"Step {n}."), tool_use("list_tags", {})], "tool_use") for n in range(1, 8)],
        Turn([text("never asked for")]),
    )
    events = run(ask(stack, world, fake_anthropic, world.tokens["member"]))
    bodies = fake_anthropic.requests
    assert len(bodies) == 7
    assert all("tool_choice" not in body for body in bodies[:6])
    assert bodies[6]["tool_choice"] == {"type": "none"}
    assert sum(isinstance(event, ToolProgress) for event in events) == 6
    results = [m for m in bodies[6]["messages"] if m["role"] == "user" and isinstance(m["content"], list)]
    assert len(results) == 6
    assert all(m["content"][0]["type"] == "tool_result" for m in results)
    # the final turn still asked for a tool: the answer is the best text there is, signed
    assert final(events).answer.startswith("Step 7.")
    assert fake_anthropic.pending() == 1


def test_a_max_tokens_stop_is_continued(stack: Settings, world: World, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(
        Turn([text("The proxy gives each device a port ")], "max_tokens"),
        Turn([text(" and keeps a certificate authority.")]),
    )
    events = run(ask(stack, world, fake_anthropic, world.tokens["member"]))
    first, second = fake_anthropic.wait_for_requests(2)
    assert second["messages"][:-1] == first["messages"]
    assert second["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "The proxy gives each device a port"}],
    }
    answer = final(events).answer
    assert answer.startswith("The proxy gives each device a port and keeps a certificate authority.")
    streamed = "".join(event.delta for event in events if isinstance(event, TextDelta))
    assert streamed.count("The proxy gives") == 1
    assert "certificate authority" in streamed


def test_pause_turn_is_resumed_and_web_search_blocks_go_back_untouched(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    search = web_search(
        "mitmproxy 12 release notes", [{"url": "https://mitmproxy.org/", "title": "mitmproxy"}]
    )
    cited = text("mitmproxy 12 is out.", [citation("https://mitmproxy.org/", "mitmproxy", "mitmproxy 12")])
    fake_anthropic.script(
        Turn(search, "pause_turn"),
        Turn([cited, tool_use("list_tags", {})], "tool_use"),
        Turn([text("Your proxy runs it.")]),
    )
    events = run(ask(stack, world, fake_anthropic, world.tokens["member"]))
    first, second, third = fake_anthropic.wait_for_requests(3)
    assert second["messages"][-1] == {"role": "assistant", "content": search}
    assert second["messages"][:-1] == first["messages"]
    # the resumed turn and the next one form one assistant turn, every block as the API sent it
    assert third["messages"][-2] == {
        "role": "assistant",
        "content": [*search, cited, third["messages"][-2]["content"][-1]],
    }
    assert third["messages"][-2]["content"][-1]["name"] == "list_tags"
    assert final(events).answer.startswith("Your proxy runs it.")
    list_tags = find("list_tags")
    assert list_tags is not None
    labels = [e.label for e in events if isinstance(e, ToolProgress)]
    assert labels == [brain.WEB_LABEL, list_tags.label({})]


def test_web_citations_become_a_sources_line(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    search = web_search(
        "httpx timeouts", [{"url": "https://www.python-httpx.org/advanced/timeouts/", "title": "Timeouts"}]
    )
    fake_anthropic.script(
        Turn(
            [
                *search,
                text(
                    "httpx defaults to five seconds.",
                    [citation(search[1]["content"][0]["url"], "Timeouts", "5s")],
                ),
            ]
        )
    )
    answer = final(run(ask(stack, world, fake_anthropic, world.tokens["member"]))).answer
    assert answer == (
        "httpx defaults to five seconds.\n\n"
        "Sources: [Timeouts](https://www.python-httpx.org/advanced/timeouts/)\n\n"
        "— BusyBro · 🧭 Architecture guide"
    )


def test_closing_the_generator_makes_no_further_model_call(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(
        Turn([text("Let me look."), tool_use("list_tags", {})], "tool_use"),
        Turn([text("Too late.")], delay=1.0),
    )

    async def scenario() -> list[Event]:
        seen: list[Event] = []
        async with AsyncApi(stack.api_url, world.anon_key, world.tokens["member"]) as db:
            client = anthropic.AsyncAnthropic(base_url=fake_anthropic.url, api_key=KEY, max_retries=0)
            events = brain.answer("Tags?", identity=await identity_of(db), db=db, client=client)
            async for event in events:
                seen.append(event)
                if isinstance(event, ToolProgress):
                    await events.aclose()
                    break
            await asyncio.sleep(1.5)  # time for a second request, were one coming
            await client.close()
        return seen

    seen = run(scenario())
    assert isinstance(seen[-1], ToolProgress)
    assert len(fake_anthropic.requests) == 1
    assert fake_anthropic.pending() == 1


def test_cancelling_while_the_model_is_slow_stops_the_loop(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Turn([text("Slow.")], delay=3.0), Turn([text("never asked for")]))

    async def scenario() -> None:
        async with AsyncApi(stack.api_url, world.anon_key, world.tokens["member"]) as db:
            client = anthropic.AsyncAnthropic(base_url=fake_anthropic.url, api_key=KEY, max_retries=0)
            identity = await identity_of(db)

            async def consume() -> list[Event]:
                return [event async for event in brain.answer("Hi", identity=identity, db=db, client=client)]

            task = asyncio.create_task(consume())
            await asyncio.to_thread(fake_anthropic.wait_for_requests, 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await client.close()

    run(scenario())
    assert len(fake_anthropic.requests) == 1
    assert fake_anthropic.pending() == 1


@pytest.mark.parametrize("status", [529, 429, 401, 500])
def test_an_api_error_is_a_friendly_failure(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic, status: int
) -> None:
    fake_anthropic.script(Turn([], status=status, error_message=f"boom {KEY}"))
    events = run(ask(stack, world, fake_anthropic, world.tokens["member"]))
    assert len(events) == 1
    assert isinstance(events[0], Failed)
    message = events[0].message
    assert "try again" in message.lower()
    assert KEY not in message
    assert "boom" not in message
    assert "Traceback" not in message


def test_an_error_after_a_tool_round_is_still_a_failure_not_an_exception(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Turn([tool_use("list_tags", {})], "tool_use"), Turn([], status=529))
    events = run(ask(stack, world, fake_anthropic, world.tokens["member"]))
    assert [type(event) for event in events] == [ToolProgress, Failed]

    # the API's mid-stream error event, after some text streamed
    fake_anthropic.script(Turn([text("Half an ans"), text("wer")], stream_error="overloaded_error"))
    events = run(ask(stack, world, fake_anthropic, world.tokens["member"]))
    assert isinstance(events[0], TextDelta)
    failure = events[-1]
    assert isinstance(failure, Failed)
    assert "overloaded" in failure.message
    assert not any(isinstance(event, Done) for event in events)


def test_every_answer_is_signed_once(stack: Settings, world: World, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(Turn([text("No signature here.")]))
    forgot = final(run(ask(stack, world, fake_anthropic, world.tokens["member"]))).answer
    assert forgot == "No signature here.\n\n— BusyBro · 🧭 Architecture guide"

    signed = "RLS scopes every read.\n\n— BusyBro · 🛡️ Security specialist"
    fake_anthropic.script(Turn([text(signed)]))
    assert final(run(ask(stack, world, fake_anthropic, world.tokens["member"]))).answer == signed

    fake_anthropic.script(Turn([text("Hallo.")]))
    telegram = final(
        run(ask(stack, world, fake_anthropic, world.tokens["member"], surface="telegram"))
    ).answer
    assert telegram.endswith(f"<i>{SIGNATURE_PREFIX}🧭 Architecture guide</i>")


def test_a_forged_tool_call_is_refused_when_run(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(
        Turn([tool_use("rename_device", {"device": world.ids["d1"], "name": "pwned"})], "tool_use"),
        Turn([text("I cannot rename devices for you.")]),
    )
    run(ask(stack, world, fake_anthropic, world.tokens["nocaps"]))
    first, second = fake_anthropic.wait_for_requests(2)
    assert "rename_device" not in tool_names(first)
    [result] = second["messages"][-1]["content"]
    assert result["is_error"] is True
    assert "not available" in result["content"]
    with psycopg.connect(stack.db_url()) as conn:
        row = conn.execute("select name from public.devices where uuid = %s", (world.ids["d1"],)).fetchone()
    assert row is not None
    assert row[0] != "pwned"


def test_run_task_delegates_to_the_groups_agents_primary_first(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    tag = uuid.uuid4().hex[:8]
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        group = conn.execute(
            "insert into public.service_groups (name, domains) values (%s, %s) returning id",
            (f"Shop {tag}", [f"api.shop-{tag}.example"]),
        ).fetchone()
        agents = [
            conn.execute(
                "insert into public.busybro_agents (name, emoji, instructions) values (%s, %s, %s) "
                "returning id",
                (f"{name} {tag}", emoji, f"You are the {name} lens {tag}."),
            ).fetchone()
            for name, emoji in (("Shop helper", "🛒"), ("Shop auth", "🔑"))
        ]
        assert group is not None
        assert agents[0] is not None
        assert agents[1] is not None
        conn.execute(
            "insert into public.service_group_agents (service_group_id, agent_id, is_primary, position) "
            "values (%s, %s, false, 0), (%s, %s, true, 1)",
            (group[0], agents[0][0], group[0], agents[1][0]),
        )
    fake_anthropic.script(
        Turn(
            [tool_use("run_task", {"task": "How does login work?", "service_group_id": str(group[0])})],
            "tool_use",
        ),
        Turn([text("Login posts to /v1/login with a bearer token.")]),  # the sub-call, not streamed
        Turn([text("It posts to /v1/login.")]),
    )
    events = run(ask(stack, world, fake_anthropic, world.tokens["member"]))
    main, sub, last = fake_anthropic.wait_for_requests(3)
    assert "run_task" in tool_names(main)
    assert str(agents[1][0]) in main["system"][-1]["text"]
    assert not sub.get("stream")
    assert f"You are the Shop auth lens {tag}." in sub["system"]  # the primary, though it sits second
    assert not WRITE_TOOLS & set(tool_names(sub))
    assert "web_search" not in tool_names(sub)
    assert "Login posts to /v1/login" in last["messages"][-1]["content"][0]["content"]
    assert any(isinstance(e, ToolProgress) and "Shop auth" in e.label for e in events)

    fake_anthropic.script(Turn([text("Hi.")]))
    run(ask(stack, world, fake_anthropic, world.tokens["nocaps"]))  # no services:view: no pool, no run_task
    assert "run_task" not in tool_names(fake_anthropic.requests[0])


def test_no_captured_secret_reaches_the_model(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    host = f"api.secrets-{uuid.uuid4().hex[:8]}.example"
    jwt = tokens.sign_hs256(
        {"sub": "victim", "role": "authenticated", "nonce": secrets.token_hex(8)}, "k" * 32
    )
    known = {
        "bearer": secrets.token_urlsafe(32),
        "cookie": secrets.token_hex(20),
        "set_cookie": secrets.token_hex(20),
        "api_key": secrets.token_hex(18),
        "query": secrets.token_urlsafe(24),
        "refresh": secrets.token_urlsafe(30),
        "password": "pw-" + secrets.token_hex(10),
        "jwt": jwt,
        "loose_jwt": tokens.sign_hs256({"sub": "someone", "n": secrets.token_hex(6)}, "q" * 32),
    }
    device = world.tokens["d1"]
    ingest(
        stack,
        world,
        device,
        host=host,
        path="/v1/oauth/token",
        query=f"access_token={known['query']}&page=2",
        request_headers=[
            ["Content-Type", "application/json"],
            ["Authorization", f"Bearer {known['bearer']}"],
            ["Cookie", f"sid={known['cookie']}; theme=dark"],
            ["X-Api-Key", known["api_key"]],
        ],
        request_body_b64=base64.b64encode(
            json.dumps({"grant_type": "refresh_token", "refresh_token": known["refresh"]}).encode()
        ).decode(),
        response_headers=[
            ["Content-Type", "application/json"],
            ["Set-Cookie", f"session={known['set_cookie']}; Path=/; HttpOnly"],
        ],
        response_body_b64=base64.b64encode(
            json.dumps(
                {"access_token": known["jwt"], "note": known["loose_jwt"], "display_name": "Visible Marker"}
            ).encode()
        ).decode(),
    )
    ingest(
        stack,
        world,
        device,
        host=host,
        method="POST",
        path="/v1/login",
        request_headers=[["Content-Type", "application/x-www-form-urlencoded"]],
        request_body_b64=base64.b64encode(f"username=bob&password={known['password']}".encode()).decode(),
    )
    fake_anthropic.script(
        Turn([text("Let me look."), tool_use("inspect_requests", {"host": host})], "tool_use"),
        Turn(
            [text("It trades a refresh token for a bearer: curl -H 'Authorization: Bearer <access_token>'")]
        ),
    )
    events = run(
        ask(stack, world, fake_anthropic, world.tokens["member"], question=f"How does {host} log in?")
    )
    assert final(events)
    bodies = fake_anthropic.wait_for_requests(2)
    [result] = bodies[1]["messages"][-1]["content"]
    # the captured flows did reach the model: the tool ran and the harmless parts are there
    assert result.get("is_error") is not True
    assert "Visible Marker" in result["content"]
    assert "/v1/oauth/token" in result["content"]
    assert "/v1/login" in result["content"]
    assert "<redacted" in result["content"]
    for body in bodies:
        for raw in (json.dumps(body), json.dumps(body, ensure_ascii=False)):
            for name, value in known.items():
                assert value not in raw, f"the {name} secret reached the model"
    for header in fake_anthropic.request_headers:
        assert not any(value in json.dumps(header) for value in known.values())


def test_history_rides_before_the_question(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Turn([text("Yes.")]))

    async def scenario() -> None:
        async with AsyncApi(stack.api_url, world.anon_key, world.tokens["member"]) as db:
            client = anthropic.AsyncAnthropic(base_url=fake_anthropic.url, api_key=KEY, max_retries=0)
            history = [
                {"role": "assistant", "content": "Hi, I am BusyBro."},  # a thread starts with the user
                {"role": "user", "content": "Which proxy do we run?"},
                {"role": "assistant", "content": "mitmproxy 12."},
            ]
            events = brain.answer(
                "Is it current?", identity=await identity_of(db), db=db, client=client, history=history
            )
            assert isinstance([event async for event in events][-1], Done)
            await client.close()

    run(scenario())
    [body] = fake_anthropic.requests
    assert body["messages"] == [
        {"role": "user", "content": "Which proxy do we run?"},
        {"role": "assistant", "content": "mitmproxy 12."},
        {"role": "user", "content": "Is it current?"},
    ]


class _GitHub(BaseHTTPRequestHandler):
    """A contents API with README.md and docs/architecture.md of a repository `acme/busymate`."""

    seen: ClassVar[list[tuple[str, str]]] = []
    files: ClassVar[dict[str, str]] = {
        "README.md": "# Remote README\nfrom GitHub",
        "docs/architecture.md": "# Remote architecture\n" + "x" * 9_000,
    }

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("authorization", "")))
        prefix = "/repos/acme/busymate/contents/"
        name = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
        if name not in self.files:
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps(
            {
                "type": "file",
                "encoding": "base64",
                "content": base64.b64encode(self.files[name].encode()).decode(),
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_the_docs_come_from_the_checkout_or_github_and_fall_back() -> None:
    docs_context.clear_cache()
    local = run(docs_context.docs_text({}))
    assert '<doc path="README.md">\n# Busymate' in local
    assert '<doc path="docs/security-model.md">' in local
    # cut to the budget each, and served from the cache within the TTL (the same bytes)
    assert all(len(part) < docs_context.MAX_FILE_CHARS + 200 for part in local.split("\n\n<doc ")[1:])
    assert run(docs_context.docs_text({})) is local

    server = ThreadingHTTPServer(("127.0.0.1", 0), _GitHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            "BUSYBRO_DOCS_REPO": "acme/busymate",
            "GITHUB_API_URL": f"http://127.0.0.1:{server.server_address[1]}",
            "GITHUB_TOKEN": "ghp_test",
        }
        remote = run(docs_context.docs_text(env))
        assert remote.startswith('<doc path="README.md">\n# Remote README\nfrom GitHub\n</doc>')
        assert "# Remote architecture" in remote
        assert "[docs/architecture.md truncated]" in remote
        assert "# Busymate" not in remote
        assert ("/repos/acme/busymate/contents/README.md", "Bearer ghp_test") in _GitHub.seen

        broken = {**env, "BUSYBRO_DOCS_REPO": "acme/elsewhere"}  # nothing there: the local files
        assert run(docs_context.docs_text(broken)) == local
    finally:
        server.shutdown()
        server.server_close()
        docs_context.clear_cache()


def test_a_bug_inside_the_brain_is_still_a_failure(
    stack: Settings, world: World, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(answer: str, surface: Surface) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(prompt, "ensure_signature", broken)
    fake_anthropic.script(Turn([text("Almost.")]))
    events = run(ask(stack, world, fake_anthropic, world.tokens["member"]))
    assert isinstance(events[-1], Failed)
    assert "a bug" not in events[-1].message
    assert not any(isinstance(event, Done) for event in events)
