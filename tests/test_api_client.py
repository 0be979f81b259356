"""The API client library (busymate.api_core, busymate.client, busymate.api_client) against httpx's mock
transport: each refusal maps to its typed error with the server's message and Retry-After, a server that
does not answer is ApiUnreachable, and the token source is asked before every call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from busymate.api_client import AsyncApi
from busymate.api_core import (
    ApiRefused,
    ApiUnreachable,
    Conflict,
    Forbidden,
    NotFound,
    NotThisProject,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    refusal,
)
from busymate.client import Api

KEY = "sb_publishable_test"
URL = "http://api.test"

STATUSES: list[tuple[int, type[ApiRefused]]] = [
    (400, ApiRefused),
    (401, Unauthorized),
    (403, Forbidden),
    (404, NotFound),
    (409, Conflict),
    (413, TooLarge),
    (429, RateLimited),
    (500, ApiRefused),
    (503, Unavailable),
]


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", f"{URL}/rest/v1/rpc/x")
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(("status", "kind"), STATUSES)
def test_each_status_maps_to_its_error_with_the_servers_words(status: int, kind: type[ApiRefused]) -> None:
    body = {"code": "23505", "message": "duplicate key", "details": "Key (name)=(a)", "hint": "rename it"}
    error = refusal("POST /rest/v1/rpc/x", answer(status, body))
    assert type(error) is kind
    assert (error.status, error.code, error.message, error.details, error.hint) == (
        status,
        "23505",
        "duplicate key",
        "Key (name)=(a)",
        "rename it",
    )
    assert str(error) == f"POST /rest/v1/rpc/x: {status} duplicate key (hint: rename it)"


def test_gotrue_and_oauth_shapes_and_plain_text() -> None:
    gotrue = refusal("POST /auth/v1/token", answer(400, {"error_code": "invalid_credentials", "msg": "nope"}))
    assert (gotrue.code, gotrue.message) == ("invalid_credentials", "nope")
    oauth = refusal(
        "POST /auth/v1/oauth/token", answer(400, {"error": "invalid_grant", "error_description": "x"})
    )
    assert (oauth.code, oauth.message) == ("invalid_grant", "x")
    plain = refusal("GET /", httpx.Response(502, text="bad gateway", request=httpx.Request("GET", URL)))
    assert (plain.status, plain.code, plain.message) == (502, "", "bad gateway")


def test_retry_after_is_read_on_429_and_503_only() -> None:
    assert refusal("x", answer(503, {"message": "down"}, {"retry-after": "2"})).retry_after == 2.0
    assert refusal("x", answer(429, {"message": "slow"}, {"retry-after": "30"})).retry_after == 30.0
    assert refusal("x", answer(503, {"message": "down"})).retry_after is None
    assert refusal("x", answer(503, {"message": "down"}, {"retry-after": "soon"})).retry_after is None
    past = refusal("x", answer(429, {"message": "slow"}, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert past.retry_after == 0.0
    assert refusal("x", answer(400, {"message": "no"}, {"retry-after": "5"})).retry_after is None


def mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def test_async_calls_carry_the_key_and_ask_the_token_source_each_time() -> None:
    seen: list[tuple[str, str]] = []
    tokens = iter(["t1", "t2", "t3"])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["apikey"], request.headers["authorization"]))
        return httpx.Response(200, json=[{"n": len(seen)}])

    async def token() -> str:
        return next(tokens)

    async def scenario() -> None:
        async with mock(handler) as http:
            api = AsyncApi(URL, KEY, token, http)
            assert await api.select("t", {"select": "*"}) == [{"n": 1}]
            assert await api.rpc("f", {}) == [{"n": 2}]
            await api.request("GET", "/rest/v1/t", token="device-token")  # a call's own token wins
            await AsyncApi(URL, KEY, lambda: "plain", http).request("GET", "/rest/v1/t")
            await api.with_token(None).request("GET", "/rest/v1/t")  # no token: the key alone

    asyncio.run(scenario())
    assert seen == [
        (KEY, "Bearer t1"),
        (KEY, "Bearer t2"),
        (KEY, "Bearer device-token"),
        (KEY, "Bearer plain"),
        (KEY, f"Bearer {KEY}"),
    ]
    assert next(tokens) == "t3"  # not asked when the call named its own


def test_async_refusals_and_transport_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/down":
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/slow":
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(401, json={"code": "PGRST301", "message": "JWT expired"})

    async def scenario() -> None:
        async with mock(handler) as http:
            api = AsyncApi(URL, KEY, "t", http)
            with pytest.raises(Unauthorized, match="JWT expired"):
                await api.request("GET", "/rest/v1/t")
            raw = await api.send("GET", "/rest/v1/t")  # the raw answer, whatever its status
            assert raw.status_code == 401
            with pytest.raises(ApiUnreachable, match=f"does not answer at {URL}") as down:
                await api.request("GET", "/down")
            assert isinstance(down.value.__cause__, httpx.ConnectError)
            with pytest.raises(ApiUnreachable, match="GET /slow failed: timed out"):
                await api.request("GET", "/slow")

    asyncio.run(scenario())


def test_an_empty_answer_is_none_and_json_bodies_go_out_as_given() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(204)

    async def scenario() -> None:
        async with mock(handler) as http:
            api = AsyncApi(URL, KEY, None, http)
            assert await api.request("POST", "/rest/v1/rpc/f", content=b'{"batch":[]}') is None
            assert await api.rpc("f", {"a": 1}) is None

    asyncio.run(scenario())
    assert bodies[0] == b'{"batch":[]}'
    assert json.loads(bodies[1]) == {"a": 1}


def test_sync_calls_ask_the_token_source_each_time_and_wait_out_a_503() -> None:
    seen: list[str] = []
    answers = iter(
        [
            httpx.Response(503, json={"message": "restarting"}, headers={"retry-after": "0"}),
            httpx.Response(200, json={"ok": 1}),
            httpx.Response(503, json={"message": "down for good"}),  # no Retry-After: at once
        ]
    )
    tokens = iter(["t1", "t2"])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return next(answers)

    with Api(URL, KEY, lambda: next(tokens), transport=httpx.MockTransport(handler)) as api:
        assert api.rpc("f", {}) == {"ok": 1}
        with pytest.raises(Unavailable, match="down for good"):
            api.select("t", {})
    assert seen == ["Bearer t1", "Bearer t1", "Bearer t2"]  # asked per call, not per retry


def test_sync_checks_the_server_before_the_first_call_and_says_what_to_do_when_it_is_down() -> None:
    checks: list[str] = []

    def check(http: httpx.Client) -> bool:
        checks.append("asked")
        if len(checks) == 1:
            return False  # nothing listens yet: asked again next time
        raise NotThisProject("another project's server")

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with Api(URL, KEY, "t", check=check, down_hint="start it", transport=httpx.MockTransport(handler)) as api:
        with pytest.raises(ApiUnreachable, match=f"^the API server does not answer at {URL}: start it$"):
            api.rpc("f", {})
        with pytest.raises(NotThisProject):
            api.rpc("f", {})
    assert checks == ["asked", "asked"]
