"""The function contract (docs/functions.md) through the example function, /functions/v1/whoami: the
caller's token is what /rest/v1 sees (their own identity, RLS on what they may read), no token is a 401 when
the function verifies JWTs, a bad body a 400; and a module gets a capability only when it declares it.
Through supabase-py's functions.invoke and httpx."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import types
from typing import Any

import httpx
import pytest
from supabase_functions.errors import FunctionsHttpError

from busymate.api_core import ApiRefused
from busymate.functions_api import FunctionContext, FunctionRequest, FunctionResponse
from busymate.gateway.functions import FunctionsHost, _check_needs, loopback_url
from busymate.settings import Settings
from supabase import ClientOptions, create_client
from tests.world import World


def _invoke(stack: Settings, world: World, who: str, body: object = None) -> dict[str, Any]:
    client = create_client(
        stack.api_url,
        world.anon_key,
        ClientOptions(headers={"Authorization": f"Bearer {world.tokens[who]}"}),
    )
    answer = client.functions.invoke("whoami", {"body": body} if body is not None else {})
    loaded: dict[str, Any] = answer if isinstance(answer, dict) else json.loads(answer)
    return loaded


@pytest.mark.parametrize(("who", "own", "other"), [("member", "d1", "d2"), ("outsider", "d2", "d1")])
def test_the_callers_token_is_what_rest_sees(
    stack: Settings, world: World, who: str, own: str, other: str
) -> None:
    me = _invoke(stack, world, who)
    assert me["kind"] == "user", me
    assert me["id"] == world.ids[who], me
    assert world.ids[own] in me["visible_devices"], me  # RLS: the caller's workspace's devices ...
    assert world.ids[other] not in me["visible_devices"], me  # ... and nothing of another workspace


def test_the_body_narrows_the_answer(stack: Settings, world: World) -> None:
    assert _invoke(stack, world, "member", {"fields": ["id"]}) == {"id": world.ids["member"]}


def test_no_token_or_a_bad_one_is_401(stack: Settings, world: World) -> None:
    url = f"{stack.api_url}/functions/v1/whoami"
    bare = httpx.post(url, headers={"apikey": world.anon_key})
    assert bare.status_code == 401, bare.text
    assert bare.json()["code"] == "UNAUTHORIZED_NO_AUTH_HEADER", bare.text
    forged = httpx.post(url, headers={"apikey": world.anon_key, "authorization": "Bearer not.a.jwt"})
    assert forged.status_code == 401, forged.text
    assert forged.json()["code"] == "UNAUTHORIZED_INVALID_JWT_FORMAT", forged.text


def test_the_anon_key_alone_gets_the_apis_own_refusal(stack: Settings, world: World) -> None:
    """A valid JWT passes verify_jwt, and then /rest/v1 decides: whoami is not granted to anon."""
    client = create_client(stack.api_url, world.anon_key)
    with pytest.raises(FunctionsHttpError) as refused:
        client.functions.invoke("whoami", {})
    assert refused.value.status == 401, refused.value


def test_bad_input_is_400(stack: Settings, world: World) -> None:
    headers = {"apikey": world.anon_key, "authorization": f"Bearer {world.tokens['member']}"}
    url = f"{stack.api_url}/functions/v1/whoami"
    bad = httpx.post(url, content=b"{not json", headers={**headers, "content-type": "application/json"})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"] == "bad_json", bad.text
    wrong = httpx.post(url, json={"fields": "id"}, headers=headers)
    assert wrong.status_code == 400, wrong.text
    assert wrong.json()["error"] == "validation_failed", wrong.text


def test_a_capability_is_lent_only_when_declared() -> None:
    ctx = FunctionContext("whoami", api=None, anon=None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="NEEDS"):
        ctx.sign_device_token("d", "w", "c")
    with pytest.raises(RuntimeError, match="NEEDS"):
        ctx.limit()
    with pytest.raises(RuntimeError, match="NEEDS"):
        _ = ctx.service
    with pytest.raises(RuntimeError, match="SERVICE_ROLE_BECAUSE"):
        _check_needs("x", types.SimpleNamespace(NEEDS=("service_role",)))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="lends"):
        _check_needs("x", types.SimpleNamespace(NEEDS=("settings",)))  # type: ignore[arg-type]
    _check_needs("x", types.SimpleNamespace(NEEDS=("service_role",), SERVICE_ROLE_BECAUSE="it must"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:5"),
        ("0.0.0.0", "http://127.0.0.1:5"),  # noqa: S104
        ("::", "http://[::1]:5"),
        ("::1", "http://[::1]:5"),
        ("localhost", "http://localhost:5"),
    ],
)
def test_the_host_calls_its_own_api_on_a_loopback_address(stack: Settings, host: str, url: str) -> None:
    assert loopback_url(dataclasses.replace(stack, api_host=host, api_port=5)) == url


@pytest.mark.parametrize(("status", "answered"), [(403, 403), (409, 409), (500, 502)])
def test_a_refusal_the_function_leaves_unhandled_keeps_its_status(
    stack: Settings, world: World, status: int, answered: int
) -> None:
    async def handle(request: FunctionRequest, ctx: FunctionContext) -> FunctionResponse:
        raise ApiRefused("POST /rest/v1/rpc/x", status, "42501", "permission denied for x")

    host = FunctionsHost(stack, None, lambda token: None, world.anon_key, world.service_key)  # type: ignore[arg-type]
    host._modules["boom"] = types.SimpleNamespace(handle=handle, VERIFY_JWT=False)  # type: ignore[assignment]

    async def call() -> FunctionResponse:
        try:
            return await host.call("/boom", "POST", "", {}, b"", "127.0.0.1")
        finally:
            await host.aclose()

    answer = asyncio.run(call())
    assert answer.status == answered
    assert isinstance(answer.body, bytes)
    assert json.loads(answer.body) == {"error": "42501", "message": "permission denied for x"}
