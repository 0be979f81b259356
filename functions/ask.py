"""POST /functions/v1/ask: BusyBro on the web surface (docs/busybro.md).

The caller is the dashboard's signed-in user: the bearer token is validated by the auth server
(`GET /auth/v1/user`, as `auth.getUser(token)`), `role=authenticated` is required, and the profile (display
name, role, BusyBro preferences) and the role's capabilities (`my_capabilities`) become the brain's identity.
The tools run under the same token, so Row Level Security applies to every read and write a second time.

Body: `{"question": "...", "history": [{"role": "user" | "assistant", "content": "..."}, ...]}`. The answer is
JSON (`{"answer": "..."}`) unless the request accepts `text/event-stream`: then server-sent events, one frame
per brain event (`text {delta}`, `tool {label}`, `done {answer}`, `error {message}`) and a `: ping` comment
while nothing else is said (every 15 s by default). When the client goes away the host closes the stream, the
brain is cancelled where it waits and no further model call is made.

The model is reached with the official `anthropic` SDK: ANTHROPIC_API_KEY (without it: 503
`busybro_not_configured`), ANTHROPIC_BASE_URL (a proxy or a local test server) and BUSYBRO_MODEL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import anthropic
import orjson

from busymate.api_core import ApiRefused, ApiUnreachable
from busymate.functions.busybro.brain import DEFAULT_MODEL, answer
from busymate.functions.busybro.core import Done, Event, Failed, Identity, TextDelta, ToolProgress
from busymate.functions.busybro.identity import load_identity
from busymate.functions_api import FunctionContext, FunctionRequest, FunctionResponse

NEEDS = ("env",)
ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "BUSYBRO_MODEL",
    "BUSYBRO_PING_SECONDS",
    "DASH_ORIGIN",
    "BUSYBRO_DOCS_REPO",
    "GITHUB_TOKEN",
    "GITHUB_API_URL",
)

MAX_QUESTION = 8_000
MAX_HISTORY = 20
MAX_HISTORY_CHARS = 20_000
PING_SECONDS = 15.0

log = logging.getLogger(__name__)


def _refuse(status: int, error: str, message: str) -> FunctionResponse:
    return FunctionResponse.json(status, {"error": error, "message": message})


def _question(request: FunctionRequest) -> tuple[str, list[dict[str, str]]] | FunctionResponse:
    """The question and the history, or a 400 saying what is wrong."""
    try:
        body = request.json()
    except ValueError as exc:
        return _refuse(400, "bad_json", str(exc))
    usage = 'send {"question": "...", "history": [{"role": "user" | "assistant", "content": "..."}]}'
    if not isinstance(body, dict):
        return _refuse(400, "validation_failed", usage)
    unknown = set(body) - {"question", "history"}
    if unknown:
        return _refuse(400, "validation_failed", f"unknown field(s) {sorted(unknown)}: {usage}")
    question = body.get("question")
    if not isinstance(question, str) or not question.strip():
        return _refuse(400, "validation_failed", f"question must be a non-empty string: {usage}")
    if len(question) > MAX_QUESTION:
        return _refuse(400, "validation_failed", f"question is longer than {MAX_QUESTION} characters")
    history = body.get("history") or []
    if not isinstance(history, list) or len(history) > MAX_HISTORY:
        return _refuse(400, "validation_failed", f"history is a list of at most {MAX_HISTORY} turns: {usage}")
    turns: list[dict[str, str]] = []
    for index, turn in enumerate(history):
        if (
            not isinstance(turn, dict)
            or set(turn) != {"role", "content"}
            or turn["role"] not in ("user", "assistant")
            or not isinstance(turn["content"], str)
            or len(turn["content"]) > MAX_HISTORY_CHARS
        ):
            return _refuse(
                400,
                "validation_failed",
                f"history[{index}] must be {{role: user | assistant, content: a string of at most "
                f"{MAX_HISTORY_CHARS} characters}}",
            )
        turns.append({"role": turn["role"], "content": turn["content"]})
    return question.strip(), turns


async def _identity(ctx: FunctionContext) -> Identity | FunctionResponse:
    """The caller as the auth server and the database know them, or the refusal to send."""
    try:
        user = await ctx.api.request("GET", "/auth/v1/user")
    except ApiRefused as exc:
        if exc.status == 401:
            return _refuse(401, "invalid_session", f"sign in again: {exc.message}")
        return _refuse(403, "user_required", "BusyBro answers signed-in users (a user's session token)")
    if not isinstance(user, dict) or user.get("role") != "authenticated" or not user.get("id"):
        return _refuse(403, "user_required", "BusyBro answers signed-in users (a user's session token)")
    return await load_identity(ctx.api, user)


def _frame(event: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _encode(item: Event) -> bytes:
    if isinstance(item, TextDelta):
        return _frame("text", {"delta": item.delta})
    if isinstance(item, ToolProgress):
        return _frame("tool", {"label": item.label})
    if isinstance(item, Done):
        return _frame("done", {"answer": item.answer})
    return _frame("error", {"message": item.message})


async def _sse(
    events: AsyncGenerator[Event], client: anthropic.AsyncAnthropic, ping: float
) -> AsyncIterator[bytes]:
    """The brain's events as SSE frames, with a ping comment whenever `ping` seconds pass in silence. The
    brain runs in its own task; closing this generator (the client left) cancels it."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def produce() -> None:
        try:
            async for item in events:
                await queue.put(item)
        except Exception:  # the brain promises not to raise; if it does, the client still hears an error
            log.exception("BusyBro failed")
            await queue.put(Failed("BusyBro stumbled on this one. Please try again."))
        finally:
            await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), ping)
            except TimeoutError:
                yield b": ping\n\n"
                continue
            if item is None:
                return
            yield _encode(item)
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer
        with contextlib.suppress(Exception):
            await events.aclose()
        await client.close()


async def handle(request: FunctionRequest, ctx: FunctionContext) -> FunctionResponse:
    """Answer one question, as JSON or as a stream of server-sent events."""
    if request.method != "POST":
        return _refuse(405, "method_not_allowed", "ask with POST and a JSON body")
    parsed = _question(request)
    if isinstance(parsed, FunctionResponse):
        return parsed
    question, history = parsed
    key = ctx.env.get("ANTHROPIC_API_KEY")
    if not key:
        return _refuse(
            503,
            "busybro_not_configured",
            "BusyBro has no model key: set ANTHROPIC_API_KEY in the API server's environment and restart it",
        )
    try:
        who = await _identity(ctx)
    except ApiUnreachable:
        return _refuse(503, "api_unreachable", "the Busymate API did not answer; try again shortly")
    if isinstance(who, FunctionResponse):
        return who
    client = anthropic.AsyncAnthropic(api_key=key, base_url=ctx.env.get("ANTHROPIC_BASE_URL") or None)
    events = answer(
        question,
        identity=who,
        db=ctx.api,
        client=client,
        model=ctx.env.get("BUSYBRO_MODEL") or DEFAULT_MODEL,
        surface="web",
        history=history,
        dash_origin=ctx.env.get("DASH_ORIGIN", ""),
        env=ctx.env,
    )
    if "text/event-stream" in request.headers.get("accept", ""):
        try:
            ping = float(ctx.env.get("BUSYBRO_PING_SECONDS") or PING_SECONDS)
        except ValueError:
            ping = PING_SECONDS
        return FunctionResponse(
            200,
            {
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
            },
            _sse(events, client, max(ping, 0.05)),
        )
    try:
        async for item in events:
            if isinstance(item, Done):
                return FunctionResponse.json(200, {"answer": item.answer})
            if isinstance(item, Failed):
                return _refuse(502, "busybro_failed", item.message)
    finally:
        await client.close()
    return _refuse(502, "busybro_failed", "BusyBro ended without an answer; please try again")
