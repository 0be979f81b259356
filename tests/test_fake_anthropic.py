"""The fake Messages API on the wire: the SSE event order and shapes, the Message JSON, the error JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fake_anthropic import NO_TURN_TEXT, FakeAnthropic, Turn, text, tool_use, web_search


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def post(fake: FakeAnthropic, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{fake.url}/v1/messages",
        json={
            "model": "claude-test",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
            **body,
        },
        headers={"x-api-key": "sk-ant-fake-key", "anthropic-version": "2023-06-01"},
        timeout=10,
    )


def frames(raw: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for record in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in record.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_a_streamed_turn_is_the_documented_event_sequence(fake: FakeAnthropic) -> None:
    use = tool_use("list_tags", {"limit": 5, "name": "a long enough value"}, id="toolu_1")
    fake.script(Turn([text("Hello there, streaming world."), use], "tool_use"))
    answer = post(fake, stream=True)
    assert answer.headers["content-type"] == "text/event-stream"
    events = frames(answer.text)
    names = [name for name, _ in events]
    assert all(data["type"] == name for name, data in events)
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert "ping" in names
    start = events[0][1]["message"]
    assert start["role"] == "assistant"
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert "output_tokens" in events[-2][1]["usage"]
    texts = [d["delta"]["text"] for n, d in events if n == "content_block_delta" and d["index"] == 0]
    assert len(texts) > 1
    assert "".join(texts) == "Hello there, streaming world."
    opened = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert opened == [{"type": "text", "text": ""}, {**use, "input": {}}]
    pieces = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1]
    assert len(pieces) > 1
    assert json.loads("".join(pieces)) == use["input"]
    assert [d["index"] for n, d in events if n == "content_block_stop"] == [0, 1]
    [body] = fake.requests
    assert body["stream"] is True
    assert fake.request_headers[0]["x-api-key"] == "sk-ant-fake-key"


def test_web_search_blocks_and_the_message_json(fake: FakeAnthropic) -> None:
    search = web_search("q", [{"url": "https://example.com/", "title": "Example"}])
    fake.script(Turn([*search, text("Found.")]), Turn([text("plain")], "max_tokens"))
    events = frames(post(fake, stream=True).text)
    opened = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert opened[0] == {**search[0], "input": {}}
    assert opened[1] == search[1]  # a search result arrives whole
    message = post(fake).json()
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": "plain"}]
    assert message["stop_reason"] == "max_tokens"
    assert len(fake.wait_for_requests(2)) == 2


def test_errors_and_an_empty_script(fake: FakeAnthropic) -> None:
    fake.script(Turn([], status=429, error_message="slow down"))
    refused = post(fake, stream=True)
    assert refused.status_code == 429
    assert refused.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert refused.headers["x-should-retry"] == "false"
    assert post(fake).json()["content"] == [{"type": "text", "text": NO_TURN_TEXT}]

    fake.script(Turn([text("partial"), text("never")], stream_error="overloaded_error"))
    events = frames(post(fake, stream=True).text)
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    assert "message_stop" not in [name for name, _ in events]
