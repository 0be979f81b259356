"""BusyBro in the dashboard (docs/busybro.md, "The dashboard"), in real Chromium against the session stack's
`ask` function, whose model is the scripted fake Messages API (`fake_anthropic`, tests/fake_anthropic.py).

Proven: a slow multi-chunk answer shows its first words while it still streams, then the final answer (as
sanitized Markdown: no image, no javascript: link, external links in a new tab); a tool progress line shows
while a tool_use turn's tool runs and the next model turn is awaited, and is gone after; the next question
carries the thread as history; a link `/devices?uuid=<uuid>` in an answer opens the Devices page on that
device in the app (same tab). Stop keeps the streamed text and tags it "stopped"; Regenerate asks the model
again with the same question and without the stopped text; a model error (529) shows an error bubble whose
Retry answers, with the thread kept and sent as history; the function's own refusal (503
busybro_not_configured) shows its message with Retry. On a 390 px phone: Enter sends, Shift+Enter makes a new
line, the panel fits the width, and a deep link closes it to show the page. An entry's "Ask BusyBro about
this host" asks about that host. Without the function (the viewer, a routed answer): the page sends the
session's bearer token, the anon key, `Accept: text/event-stream` and {question, history}; it reads CRLF
records, skips comments and unknown events; a stream cut before `done` is an error keeping its text.
Screenshots at 1280x800 and 390x844."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, Route, expect

from busymate.settings import Settings
from tests.e2e.dashboard.conftest import PHONE, WAIT_MS, Team, ingest, shoot
from tests.e2e.proxy_helpers import device_token, rpc
from tests.fake_anthropic import FakeAnthropic, Turn, text, tool_use
from tests.world import World

LONG = " ".join(f"word{i}" for i in range(80))  # about 560 characters: 47 chunks of 12 at the fake


@pytest.fixture(scope="module")
def device(stack: Settings, world: World, team: Team) -> dict[str, Any]:
    """A device of the team's workspace owned by the member, with one captured entry of its own host."""
    made: dict[str, Any] = rpc(
        stack,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": team.workspace_id,
            "name": f"bb-phone-{uuid.uuid4().hex[:6]}",
            "source": "ios",
            "owner_user_id": team.people["member"].id,
        },
    )
    host = f"api.bb-{uuid.uuid4().hex[:6]}.example"
    made["entry_host"] = host
    made["entry_id"] = ingest(stack, world, device_token(stack, made), host=host, path="/v1/login")
    return made


def answers(page: Page) -> Locator:
    return page.get_by_test_id("busybro-answer")


def ask(page: Page, question: str) -> None:
    box = page.get_by_test_id("busybro-input")
    box.fill(question)
    box.press("Enter")


def open_panel(page: Page) -> None:
    page.get_by_test_id("busybro-toggle").click()
    expect(page.get_by_test_id("busybro-panel")).to_be_visible()


def sent_messages(body: dict[str, Any]) -> str:
    """The conversation a request to the model carried, as one string to search."""
    return json.dumps(body["messages"], ensure_ascii=False)


def wait_streaming_with(page: Page, fragment: str) -> None:
    """Waits until the last answer is still streaming and already shows `fragment` (both at one moment)."""
    page.wait_for_function(
        """(fragment) => {
            const all = document.querySelectorAll('[data-testid="busybro-answer"]');
            const last = all[all.length - 1];
            return !!last && last.dataset.status === 'streaming' && last.textContent.includes(fragment);
        }""",
        arg=fragment,
        timeout=WAIT_MS,
    )


def test_a_streamed_answer_with_a_tool_line_history_and_a_deep_link(
    team: Team, fake_anthropic: FakeAnthropic, device: dict[str, Any], screens: Path
) -> None:
    uuid_ = device["uuid"]
    final = (
        f"Your **{device['name']}** is [{device['name']}](/devices?uuid={uuid_}). "
        f"{LONG}\n\n"
        "- see [the docs](https://example.com/docs)\n"
        '- <img src="https://tracker.example/pixel.png" onerror="window.__bbPwned = 1"> '
        "[bad](javascript:window.__bbPwned=1)\n"
    )
    fake_anthropic.script(
        Turn([text("Let me check your devices."), tool_use("list_devices", {})], stop_reason="tool_use"),
        Turn([text(final)], delay=2.5, chunk_delay=0.08),
    )
    context = team.context("member")
    try:
        watched = team.open(context, "/")
        page = watched.page
        expect(page.get_by_test_id("busybro-panel")).to_have_count(0)
        open_panel(page)
        expect(page.get_by_test_id("busybro-empty")).to_be_visible()
        ask(page, "Which devices do I have?")
        expect(page.get_by_test_id("busybro-question")).to_have_text("Which devices do I have?")

        # The tool's progress line while the tool runs and the next model turn is awaited.
        page.wait_for_function(
            """() => {
                const tool = document.querySelector('[data-testid="busybro-tool"]');
                return !!tool && tool.textContent.trim().length > 0;
            }""",
            timeout=WAIT_MS,
        )
        print("tool line:", page.get_by_test_id("busybro-tool").first.text_content())
        shoot(page, screens, "busybro-tool")  # evidence only: the line may be gone by the second size
        # Partial text while the answer still streams, then the final answer.
        wait_streaming_with(page, "word3 ")
        expect(page.get_by_test_id("busybro-tool")).to_have_count(0)  # the text resumed: the line is gone
        expect(page.get_by_test_id("busybro-stop")).to_be_visible()
        answer = answers(page).first  # the first answer, also once a second one follows
        expect(answer).to_have_attribute("data-status", "done", timeout=WAIT_MS)
        expect(answer).to_contain_text("word79")
        expect(page.get_by_test_id("busybro-regenerate")).to_be_visible()
        expect(page.get_by_test_id("busybro-stop")).to_have_count(0)
        bodies = fake_anthropic.wait_for_requests(2)
        assert "Which devices do I have?" in sent_messages(bodies[0])
        assert "tool_result" in sent_messages(bodies[1])

        # Markdown, sanitized: bold, a list, no image, no javascript: link, external links in a new tab.
        rendered = answer.get_by_test_id("busybro-answer-text")
        expect(rendered.locator("strong").first).to_have_text(device["name"])
        expect(rendered.locator("li")).to_have_count(2)
        expect(rendered.locator("img")).to_have_count(0)
        expect(rendered.locator('a[href^="javascript"]')).to_have_count(0)
        external = rendered.get_by_role("link", name="the docs")
        expect(external).to_have_attribute("target", "_blank")
        expect(external).to_have_attribute("rel", "noopener noreferrer")
        assert page.evaluate("window.__bbPwned") is None
        in_app = rendered.get_by_role("link", name=device["name"])
        expect(in_app).to_have_attribute("data-route", f"/devices?uuid={uuid_}")

        # A follow-up carries the thread (question and answer) as history.
        fake_anthropic.script(Turn([text("It is online.")]))
        ask(page, "Is it online?")
        expect(answers(page).last).to_have_attribute("data-status", "done", timeout=WAIT_MS)
        expect(answers(page).last).to_contain_text("It is online.")
        [follow_up] = fake_anthropic.wait_for_requests(1)
        conversation = sent_messages(follow_up)
        assert "Which devices do I have?" in conversation
        assert "word79" in conversation
        assert "Is it online?" in conversation
        shoot(page, screens, "busybro")

        # The deep link opens the Devices page on that device, in this tab, through the router.
        pages_before = len(context.pages)
        in_app.click()
        expect(page).to_have_url(f"{team.url}/devices?uuid={uuid_}")
        expect(page.get_by_test_id("device-detail-name")).to_have_text(device["name"], timeout=WAIT_MS)
        assert len(context.pages) == pages_before
        expect(page.get_by_test_id("busybro-panel")).to_be_visible()  # docked beside the page at 1280 px
        expect(answers(page)).to_have_count(2)  # the thread survives the navigation
        shoot(page, screens, "busybro-deep-link")
        assert not watched.errors, watched.errors
    finally:
        context.close()


def test_stop_regenerate_retry_and_a_refusal(
    team: Team, fake_anthropic: FakeAnthropic, screens: Path
) -> None:
    context = team.context("member")
    try:
        watched = team.open(context, "/devices")
        page = watched.page
        open_panel(page)

        # Stop mid-stream: the text so far stays, tagged "stopped".
        fake_anthropic.script(Turn([text(f"Slow start. {LONG}")], chunk_delay=0.25))
        ask(page, "Tell me a long story")
        wait_streaming_with(page, "word1 ")
        shoot(page, screens, "busybro-streaming")  # evidence only: the answer streams on meanwhile
        page.get_by_test_id("busybro-stop").click()
        stopped = answers(page).last
        expect(stopped).to_have_attribute("data-status", "stopped")
        expect(page.get_by_test_id("busybro-stopped")).to_have_text("stopped")
        kept = stopped.get_by_test_id("busybro-answer-text").inner_text()
        assert kept.startswith("Slow start."), kept
        assert "word79" not in kept, kept
        page.wait_for_timeout(1000)  # the stream would have gone on: the bubble does not change after Stop
        assert stopped.get_by_test_id("busybro-answer-text").inner_text() == kept
        expect(page.get_by_test_id("busybro-send")).to_be_visible()

        # Regenerate: the same question again, without the stopped answer (the thread before it is empty).
        fake_anthropic.script(Turn([text("A short story.")]))
        page.get_by_test_id("busybro-regenerate").click()
        expect(answers(page)).to_have_count(1)
        expect(answers(page).last).to_have_attribute("data-status", "done", timeout=WAIT_MS)
        expect(answers(page).last).to_contain_text("A short story.")
        [again] = fake_anthropic.wait_for_requests(1)
        assert "Tell me a long story" in sent_messages(again)
        assert "Slow start." not in sent_messages(again)
        expect(page.get_by_test_id("busybro-question")).to_have_count(1)

        # The model fails (529 overloaded): an error bubble with Retry; the thread survives.
        fake_anthropic.script(Turn([], status=529))
        ask(page, "And another one?")
        failed = answers(page).last
        expect(failed).to_have_attribute("data-status", "error", timeout=WAIT_MS)
        expect(failed.get_by_test_id("busybro-error")).not_to_be_empty()
        expect(page.get_by_test_id("busybro-regenerate")).to_have_count(0)
        print("model error shown:", failed.get_by_test_id("busybro-error").inner_text())
        shoot(page, screens, "busybro-error")
        fake_anthropic.script(Turn([text("Another one, recovered.")]))
        failed.get_by_test_id("busybro-retry").click()
        expect(answers(page).last).to_have_attribute("data-status", "done", timeout=WAIT_MS)
        expect(answers(page).last).to_contain_text("Another one, recovered.")
        expect(answers(page)).to_have_count(2)
        expect(page.get_by_test_id("busybro-question")).to_have_count(2)
        [retried] = fake_anthropic.wait_for_requests(1)
        conversation = sent_messages(retried)
        assert "And another one?" in conversation
        assert "Tell me a long story" in conversation
        assert "A short story." in conversation

        # The function's own refusal (what a stack without ANTHROPIC_API_KEY answers): its message, Retry.
        refusal = {
            "error": "busybro_not_configured",
            "message": "BusyBro has no model key: set ANTHROPIC_API_KEY",
        }

        def refuse(route: Route) -> None:
            route.fulfill(status=503, content_type="application/json", body=json.dumps(refusal))

        page.route("**/functions/v1/ask", refuse)
        ask(page, "Are you there?")
        refused = answers(page).last
        expect(refused).to_have_attribute("data-status", "error", timeout=WAIT_MS)
        expect(refused.get_by_test_id("busybro-error")).to_contain_text("BusyBro has no model key")
        expect(refused.get_by_test_id("busybro-error")).to_contain_text("503")
        page.unroute("**/functions/v1/ask", refuse)
        fake_anthropic.script(Turn([text("Here now.")]))
        refused.get_by_test_id("busybro-retry").click()
        expect(answers(page).last).to_have_attribute("data-status", "done", timeout=WAIT_MS)
        expect(answers(page).last).to_contain_text("Here now.")
        unexpected = [e for e in watched.errors if "503" not in e]
        assert not unexpected, unexpected
    finally:
        context.close()


def test_on_a_phone_and_from_an_entry(
    team: Team, fake_anthropic: FakeAnthropic, device: dict[str, Any], screens: Path
) -> None:
    context = team.context("member", viewport=PHONE)
    try:
        watched = team.open(context, f"/?entry={device['entry_id']}")
        page = watched.page
        expect(page.get_by_test_id("entry-detail")).to_be_visible(timeout=WAIT_MS)

        # "Ask BusyBro about this host" opens the panel and asks about the entry's host.
        host = device["entry_host"]
        fake_anthropic.script(
            Turn([text(f"{host} takes a JSON login. See [the device](/devices?uuid={device['uuid']}).")])
        )
        page.get_by_test_id("ask-busybro-host").click()
        panel = page.get_by_test_id("busybro-panel")
        expect(panel).to_be_visible()
        expect(page.get_by_test_id("busybro-question")).to_have_text(
            f"How does {host} work? Inspect its captured requests."
        )
        expect(answers(page).last).to_have_attribute("data-status", "done", timeout=WAIT_MS)
        [asked] = fake_anthropic.wait_for_requests(1)
        assert f"How does {host} work?" in sent_messages(asked)

        # The panel takes the phone's width and nothing scrolls sideways.
        box = panel.bounding_box()
        assert box is not None
        assert box["x"] >= 0, box
        assert box["width"] <= PHONE["width"], box
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        # Shift+Enter is a new line, Enter sends.
        fake_anthropic.script(Turn([text("Two lines read.")]))
        entry = page.get_by_test_id("busybro-input")
        entry.fill("first line")
        entry.press("Shift+Enter")
        entry.press_sequentially("second line")
        expect(entry).to_have_value("first line\nsecond line")
        expect(page.get_by_test_id("busybro-question")).to_have_count(1)
        entry.press("Enter")
        expect(page.get_by_test_id("busybro-question").last).to_have_text("first line\nsecond line")
        expect(entry).to_have_value("")
        expect(answers(page).last).to_contain_text("Two lines read.", timeout=WAIT_MS)
        shoot(page, screens, "busybro-phone")

        # Escape in the panel closes the panel, not the entry detail behind it; the toggle brings it back.
        entry.press("Escape")
        expect(panel).to_have_count(0)
        expect(page.get_by_test_id("entry-detail")).to_be_visible()
        page.get_by_test_id("busybro-toggle").click()
        expect(answers(page)).to_have_count(2)

        # On a phone a deep link closes the panel and shows the page.
        answers(page).first.get_by_role("link", name="the device").click()
        expect(page).to_have_url(f"{team.url}/devices?uuid={device['uuid']}")
        expect(panel).to_have_count(0)
        expect(page.get_by_test_id("device-detail-name")).to_have_text(device["name"], timeout=WAIT_MS)
        assert not watched.errors, watched.errors
    finally:
        context.close()


def test_the_wire_as_the_page_sends_and_reads_it(team: Team) -> None:
    """Without the function: what the page sends (headers, body, history) and how it reads a stream with CRLF
    line ends, comments, an unknown event and a split record; a stream that ends without `done` is an error
    that keeps the partial text."""
    seen: list[dict[str, Any]] = []
    streams = [
        ': ping\r\n\r\nevent: text\r\ndata: {"delta": "Hello "}\r\n\r\n'
        "event: mystery\ndata: {}\n\n"
        'event: tool\ndata: {"label": "Looking"}\n\n'
        'event: text\ndata: {"delta": "**world**"}\n\n'
        'event: done\ndata: {"answer": "Hello **world**, final."}\n\n',
        'event: text\ndata: {"delta": "Half an ans"}\n\nevent: text\ndata: {"delta": "wer"}\n\n',
    ]

    def answer(route: Route) -> None:
        request = route.request
        seen.append({"headers": request.headers, "body": json.loads(request.post_data or "{}")})
        route.fulfill(status=200, content_type="text/event-stream", body=streams[len(seen) - 1])

    context = team.context("viewer")
    try:
        watched = team.open(context, "/")
        page = watched.page
        page.route("**/functions/v1/ask", answer)
        open_panel(page)
        ask(page, "First?")
        expect(answers(page).last).to_have_attribute("data-status", "done", timeout=WAIT_MS)
        expect(answers(page).last.get_by_test_id("busybro-answer-text")).to_have_text("Hello world, final.")
        expect(answers(page).last.locator("strong")).to_have_text("world")
        ask(page, "Second?")
        cut = answers(page).last
        expect(cut).to_have_attribute("data-status", "error", timeout=WAIT_MS)
        expect(cut.get_by_test_id("busybro-answer-text")).to_have_text("Half an answer")
        expect(cut.get_by_test_id("busybro-error")).to_contain_text("closed before the answer was finished")
        expect(cut.get_by_test_id("busybro-retry")).to_be_visible()

        first, second = seen
        headers = first["headers"]
        assert headers["authorization"] == f"Bearer {page.evaluate(TOKEN_JS)}"
        assert headers["apikey"] == httpx.get(f"{team.url}/config.json", timeout=10).json()["anonKey"]
        assert headers["accept"] == "text/event-stream"
        assert headers["content-type"].startswith("application/json")
        assert first["body"] == {"question": "First?", "history": []}
        assert second["body"] == {
            "question": "Second?",
            "history": [
                {"role": "user", "content": "First?"},
                {"role": "assistant", "content": "Hello **world**, final."},
            ],
        }
        assert not watched.errors, watched.errors
    finally:
        context.close()


# The page's current access token, from supabase-js's storage (the key starts with busymate-auth-).
TOKEN_JS = """() => {
    const key = Object.keys(localStorage).find((k) => k.startsWith('busymate-auth-'));
    return JSON.parse(localStorage.getItem(key)).access_token;
}"""
