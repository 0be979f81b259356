"""The proxy holds issued device tokens (it runs with a wrong JWT secret, so it cannot sign one): it keeps
them 0600 in its state folder (0700), reuses them across restarts, and renews one past two thirds of its
lifetime. Its own API server and state folder, so the file is this module's alone."""

from __future__ import annotations

import base64
import json
import stat
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from busymate import tokens
from busymate.settings import Settings
from busymate.stack.api_process import ApiServer
from tests.conftest import second_api_server
from tests.e2e.origin import Origin
from tests.e2e.proxy_helpers import free_port_block, fresh_workspace, rpc, running_proxy, sql, until
from tests.world import World


@pytest.fixture(scope="module")
def own_api(stack: Settings) -> Iterator[tuple[Settings, ApiServer]]:
    """A second API server on the session's database with a state folder of its own."""
    with second_api_server(stack, "credentials-test") as started:
        yield started


def _held(settings: Settings) -> dict[str, Any]:
    path = settings.state_dir / "proxy" / "credentials.json"
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return loaded


def _writes(settings: Settings, token: str) -> int:
    return httpx.post(
        f"{settings.api_url}/rest/v1/rpc/ingest_entries",
        json={"batch": [{"id": str(uuid.uuid4()), "method": "GET", "host": "held.example", "path": "/"}]},
        headers={"apikey": tokens.anon_key(settings.jwt_secret), "authorization": f"Bearer {token}"},
    ).status_code


def test_issued_tokens_are_kept_private_reused_and_renewed(
    own_api: tuple[Settings, ApiServer], world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings, _server = own_api
    pool = free_port_block(2)
    device = rpc(
        settings,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": fresh_workspace(settings, "held"),
            "name": f"held-{uuid.uuid4().hex[:6]}",
            "source": "proxy",
            "allowed_sources": ["127.0.0.1/32"],
            "proxy_port": pool[0],
        },
    )
    [(credential,)] = sql(
        settings,
        "select credential_id::text from private.device_credentials where device_uuid = %s",
        (device["uuid"],),
    )
    path = settings.state_dir / "proxy" / "credentials.json"
    with Origin(tmp_path_factory.mktemp("origin")) as origin:
        with running_proxy(settings, pool, origin.ca_file) as proxy:
            proxy.wait_ports(lambda ports: pool[0] in ports, "the device's port")
            first = _held(settings)[device["uuid"]]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        claims = _claims(first["token"])
        assert (claims["role"], claims["sub"], claims["cred"]) == ("device", device["uuid"], credential)
        assert first["expires_at"] == claims["exp"]
        assert _writes(settings, first["token"]) == 200  # issued by the backend, so it writes

        time.sleep(1.1)  # a token issued again would differ in iat
        with running_proxy(settings, pool, origin.ca_file) as proxy:
            proxy.wait_ports(lambda ports: pool[0] in ports, "the device's port after a restart")
            assert _held(settings)[device["uuid"]] == first  # reused, not asked for again

        # Past two thirds of its lifetime (the token itself still works): the proxy asks for a new one.
        lifetime = first["expires_at"] - first["issued_at"]
        now = int(time.time())
        aged = {**first, "issued_at": now - lifetime + 60, "expires_at": now + 60}
        path.write_text(json.dumps({device["uuid"]: aged}))
        with running_proxy(settings, pool, origin.ca_file) as proxy:
            renewed = until(
                lambda: (lambda held: held if held and held["token"] != first["token"] else None)(
                    _held(settings).get(device["uuid"])
                ),
                "a renewed token",
            )
            proxy.wait_ports(lambda ports: pool[0] in ports, "the device's port with the renewed token")
        assert renewed["expires_at"] - renewed["issued_at"] == lifetime
        assert renewed["expires_at"] >= now + lifetime - 5
        assert _claims(renewed["token"])["cred"] == credential
        assert _writes(settings, renewed["token"]) == 200
        assert _writes(settings, first["token"]) == 200  # no rotation: the earlier token stays valid
