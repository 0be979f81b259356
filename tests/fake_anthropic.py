"""A local server speaking the Anthropic Messages API, scripted turn by turn, for the real `anthropic` SDK.

It answers `POST /v1/messages` with the next scripted `Turn`: as Server-Sent Events when the body asks for
`"stream": true` (message_start, per block content_block_start / content_block_delta / content_block_stop, a
ping, message_delta with stop_reason and usage, message_stop), as the Message JSON otherwise, or as the API's
error JSON for a non-200 turn. Every raw request body and its headers are recorded, so tests assert on exactly
what a caller sent to the model.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

NO_TURN_TEXT = "(fake: no scripted turn)"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Turn:
    """One assistant message the fake answers with (one per /v1/messages call)."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"  # "end_turn" | "tool_use" | "max_tokens" | "pause_turn"
    delay: float = 0.0  # seconds before the response starts (a slow model)
    chunk_delay: float = 0.0  # seconds between SSE events
    status: int = 200  # non-200: the API's error JSON
    error_message: str = "Overloaded"
    stream_error: str | None = None  # e.g. "overloaded_error": an SSE `error` event after the first block


def text(s: str, citations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A text block (with web search citations when given)."""
    block: dict[str, Any] = {"type": "text", "text": s}
    if citations:
        block["citations"] = citations
    return block


def tool_use(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    """A client tool_use block."""
    return {"type": "tool_use", "id": id or f"toolu_{secrets.token_hex(12)}", "name": name, "input": input}


def web_search(query: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A server_tool_use + web_search_tool_result pair, as the API returns a search it ran itself.

    Each result needs `url` and `title`; `encrypted_content` and `page_age` get defaults."""
    use_id = f"srvtoolu_{secrets.token_hex(12)}"
    content = [
        {
            "type": "web_search_result",
            "url": result["url"],
            "title": result["title"],
            "encrypted_content": result.get("encrypted_content", f"enc_{secrets.token_hex(16)}"),
            "page_age": result.get("page_age", "April 1, 2026"),
        }
        for result in results
    ]
    return [
        {"type": "server_tool_use", "id": use_id, "name": "web_search", "input": {"query": query}},
        {"type": "web_search_tool_result", "tool_use_id": use_id, "content": content},
    ]


def citation(url: str, title: str, cited_text: str) -> dict[str, Any]:
    """A web_search_result_location citation for a text block."""
    return {
        "type": "web_search_result_location",
        "url": url,
        "title": title,
        "cited_text": cited_text,
        "encrypted_index": f"idx_{secrets.token_hex(8)}",
    }


def _chunks(s: str, size: int = 12) -> list[str]:
    """`s` in small pieces (at least one, possibly empty), so streaming is visible."""
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


def _message(
    turn: Turn, model: str, *, content: list[dict[str, Any]], output_tokens: int, final: bool
) -> dict[str, Any]:
    searches = sum(1 for block in turn.blocks if block.get("type") == "server_tool_use")
    usage: dict[str, Any] = {
        "input_tokens": 100,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    if searches:
        usage["server_tool_use"] = {"web_search_requests": searches}
    return {
        "id": f"msg_{secrets.token_hex(12)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": turn.stop_reason if final else None,
        "stop_sequence": None,
        "usage": usage,
    }


def sse_events(turn: Turn, model: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a streamed `turn`, in order."""
    start = _message(turn, model, content=[], output_tokens=1, final=False)
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, block in enumerate(turn.blocks):
        kind = block["type"]
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas += [{"type": "citations_delta", "citation": c} for c in block.get("citations") or []]
            deltas += [{"type": "text_delta", "text": piece} for piece in _chunks(block["text"])]
        elif kind in ("tool_use", "server_tool_use"):
            opening = {**block, "input": {}}
            raw = json.dumps(block["input"]) if block["input"] else ""
            deltas += [{"type": "input_json_delta", "partial_json": piece} for piece in _chunks(raw, 9)]
        else:  # web_search_tool_result and the like arrive whole in their start event
            opening = block
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": opening})
        )
        for delta in deltas:
            event = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(("content_block_delta", event))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
    if not turn.blocks:
        events.append(("ping", {"type": "ping"}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": 10 + 5 * len(turn.blocks)},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class FakeAnthropic:
    """The fake Messages API on 127.0.0.1 and a free port, served from a background thread."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self._turns: deque[Turn] = deque()
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to hand the SDK (`base_url`) or ANTHROPIC_BASE_URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeAnthropic:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def script(self, *turns: Turn) -> None:
        """Forget the recorded requests and queue `turns`, one per /v1/messages call."""
        with self._cond:
            self.requests.clear()
            self.request_headers.clear()
            self._turns = deque(turns)

    def pending(self) -> int:
        """How many scripted turns are still unanswered."""
        with self._cond:
            return len(self._turns)

    def wait_for_requests(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The recorded bodies once at least `n` arrived; AssertionError after `timeout` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout=timeout):
                got = len(self.requests)
                raise AssertionError(f"expected {n} requests to the fake Anthropic API, got {got}")
            return list(self.requests)

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> Turn:
        with self._cond:
            self.requests.append(body)
            self.request_headers.append(headers)
            self._cond.notify_all()
            return self._turns.popleft() if self._turns else Turn([text(NO_TURN_TEXT)])


def _handler(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-anthropic/1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.send_header("request-id", f"req_{secrets.token_hex(8)}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, status: int, message: str) -> None:
            kind = ERROR_TYPES.get(status, "api_error")
            # x-should-retry: false keeps the SDK's own retries out of the script's turn order
            self._json(
                status,
                {"type": "error", "error": {"type": kind, "message": message}},
                {"x-should-retry": "false"},
            )

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/v1/messages":
                self._error(404, f"no route {self.path}")
                return
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                self._error(400, "the body is not JSON")
                return
            turn = fake._record(body, {name.lower(): value for name, value in self.headers.items()})
            try:
                self._answer(turn, body)
            except (BrokenPipeError, ConnectionResetError):  # the client went away mid-answer
                return

        def _answer(self, turn: Turn, body: dict[str, Any]) -> None:
            if turn.delay:
                time.sleep(turn.delay)
            if turn.status != 200:
                self._error(turn.status, turn.error_message)
                return
            model = str(body.get("model", "claude-fake"))
            if not body.get("stream"):
                self._json(200, _message(turn, model, content=turn.blocks, output_tokens=10, final=True))
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("request-id", f"req_{secrets.token_hex(8)}")
            self.end_headers()
            events = sse_events(turn, model)
            if turn.stream_error:  # the API's mid-stream failure: an error event, then the stream ends
                cut = next((i + 1 for i, (name, _) in enumerate(events) if name == "content_block_stop"), 1)
                error = {"type": "error", "error": {"type": turn.stream_error, "message": turn.error_message}}
                events = [*events[:cut], ("error", error)]
            for name, data in events:
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
                if turn.chunk_delay:
                    time.sleep(turn.chunk_delay)
            self.close_connection = True

    return Handler
