"""POST /functions/v1/device-token: a device's owner or an admin gets a token for it (what the proxy holds
instead of signing its own); nobody else gets anything, an unpaired device has none, and an unpair refuses
every token issued at once. Through supabase-py's functions.invoke and httpx."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from supabase_functions.errors import FunctionsHttpError

from busymate.settings import Settings
from supabase import Client, ClientOptions, create_client
from tests.e2e.proxy_helpers import rpc, sql
from tests.world import World, add_user


def _client(stack: Settings, world: World, token: str) -> Client:
    return create_client(
        stack.api_url, world.anon_key, ClientOptions(headers={"Authorization": f"Bearer {token}"})
    )


def _issue(stack: Settings, world: World, token: str, device: str) -> dict[str, Any]:
    answer = _client(stack, world, token).functions.invoke("device-token", {"body": {"device": device}})
    loaded: dict[str, Any] = answer if isinstance(answer, dict) else json.loads(answer)
    return loaded


def _refused(stack: Settings, world: World, token: str, device: str) -> tuple[int, dict[str, Any]]:
    with pytest.raises(FunctionsHttpError) as refused:
        _issue(stack, world, token, device)
    response = httpx.post(
        f"{stack.api_url}/functions/v1/device-token",
        json={"device": device},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {token}"},
    )
    assert response.status_code == refused.value.status, response.text
    assert "access_token" not in response.text, response.text
    body: dict[str, Any] = response.json()
    return response.status_code, body


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return loaded


def _ingest(stack: Settings, world: World, token: str) -> httpx.Response:
    return httpx.post(
        f"{stack.api_url}/rest/v1/rpc/ingest_entries",
        json={"batch": [{"id": str(uuid.uuid4()), "method": "GET", "host": "token.example", "path": "/"}]},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {token}"},
    )


@pytest.fixture(autouse=True, scope="module")
def _remove_made_devices(stack: Settings) -> Iterator[None]:
    """The devices this file makes live in the shared world's w1 (the member owns them); other suites count
    w1's devices and entries, so they go again, entries first."""
    yield
    sql(stack, "delete from public.entries where host = 'token.example'")
    sql(stack, "delete from public.devices where name like %s", ("token-%",))


def _new_device(stack: Settings, world: World) -> str:
    """A paired proxy device of w1 owned by the member (create_device issues its credential)."""
    created = rpc(
        stack,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": world.ids["w1"],
            "name": f"token-{uuid.uuid4().hex[:8]}",
            "source": "proxy",
            "owner_user_id": world.ids["member"],
        },
    )
    return str(created["uuid"])


@pytest.mark.parametrize("who", ["member", "admin"])
def test_the_owner_and_an_admin_get_a_token_that_writes(stack: Settings, world: World, who: str) -> None:
    device = _new_device(stack, world)
    issued = _issue(stack, world, world.tokens[who], device)
    assert issued["token_type"] == "bearer"
    assert issued["device"]["uuid"] == device
    assert issued["device"]["workspace_id"] == world.ids["w1"]
    claims = _claims(issued["access_token"])
    [(credential,)] = sql(
        stack, "select credential_id::text from private.device_credentials where device_uuid = %s", (device,)
    )
    assert (claims["role"], claims["sub"], claims["cred"]) == ("device", device, credential)
    assert claims["workspace_id"] == world.ids["w1"]
    assert issued["expires_at"] == claims["exp"]
    assert claims["exp"] - claims["iat"] == issued["expires_in"] == stack.device_token_days * 86_400
    written = _ingest(stack, world, issued["access_token"])
    assert written.status_code == 200, written.text
    assert written.json()["inserted"] == 1
    again = _issue(stack, world, world.tokens[who], device)  # no rotation: the first token still writes
    assert _claims(again["access_token"])["cred"] == credential
    assert _ingest(stack, world, issued["access_token"]).status_code == 200


def test_a_viewer_an_outsider_and_anon_get_nothing(stack: Settings, world: World) -> None:
    device = _new_device(stack, world)
    _viewer_id, viewer = add_user(
        stack, world.ids["w1"], "viewer", "viewer"
    )  # devices:view, not devices:edit
    assert _refused(stack, world, viewer, device)[0] == 404
    status, body = _refused(stack, world, world.tokens["outsider"], device)
    assert status == 404
    assert set(body) == {"error", "message"}
    assert body["error"] == "device_not_found"
    assert _refused(stack, world, world.tokens["member"], world.ids["d2"])[0] == 404  # another's device
    assert _refused(stack, world, world.tokens["d1"], device)[0] == 404  # a device token is no owner
    assert _refused(stack, world, world.anon_key, device)[0] in (401, 404)
    no_token = httpx.post(
        f"{stack.api_url}/functions/v1/device-token",
        json={"device": device},
        headers={"apikey": world.anon_key},
    )
    assert no_token.status_code == 401, no_token.text


def test_unknown_unpaired_and_bad_input(stack: Settings, world: World) -> None:
    admin = world.tokens["admin"]
    assert _refused(stack, world, admin, world.ids["d_unpaired"])[0] == 404
    assert _refused(stack, world, admin, str(uuid.uuid4()))[0] == 404
    for body in ({"device": "not-a-uuid"}, {}, [1]):
        response = httpx.post(
            f"{stack.api_url}/functions/v1/device-token",
            json=body,
            headers={"apikey": world.anon_key, "authorization": f"Bearer {admin}"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "validation_failed"


def test_after_unpair_the_issued_token_is_refused_at_once(stack: Settings, world: World) -> None:
    device = _new_device(stack, world)
    issued = _issue(stack, world, world.tokens["member"], device)
    assert _ingest(stack, world, issued["access_token"]).status_code == 200
    rpc(stack, world.tokens["admin"], "unpair_device", {"device_uuid": device})
    refused = _ingest(stack, world, issued["access_token"])
    assert refused.status_code == 401, refused.text
    assert _refused(stack, world, world.tokens["member"], device)[0] == 404  # unpaired: nothing more
