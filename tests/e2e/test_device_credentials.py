"""A device's credential is nobody's to read over the API: `select=*` on devices keeps working for
integrators and says `paired`, naming credential_id is an unknown column, and device_credentials() answers
only the device's owner and admins. Device tokens keep working, through the unchanged supabase-py and
realtime-py clients."""
# supabase-py types every response as a JSON union, so indexing into the data needs these checks off here.
# mypy: disable-error-code="index, call-overload, union-attr, arg-type, operator, misc"

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from postgrest.exceptions import APIError

from busymate.settings import Settings
from supabase import Client, ClientOptions, create_client
from tests.e2e.proxy_helpers import sql
from tests.e2e.realtime_helpers import joined, options, realtime_client
from tests.world import World, add_user


def _client(stack: Settings, world: World, who: str) -> Client:
    return create_client(
        stack.api_url, world.anon_key, ClientOptions(headers={"Authorization": f"Bearer {world.tokens[who]}"})
    )


@pytest.fixture(scope="module")
def viewer(stack: Settings, world: World) -> Client:
    """A user of w1 with the viewer role: devices:view, not devices:edit."""
    _user_id, token = add_user(stack, world.ids["w1"], "viewer", "viewer")
    return create_client(
        stack.api_url, world.anon_key, ClientOptions(headers={"Authorization": f"Bearer {token}"})
    )


def _credential(stack: Settings, device_uuid: str) -> str:
    [(credential,)] = sql(
        stack,
        "select credential_id::text from private.device_credentials where device_uuid = %s",
        (device_uuid,),
    )
    return str(credential)


@pytest.mark.parametrize("who", ["viewer", "member", "admin"])
def test_select_star_on_devices_shows_paired_and_no_credential(
    stack: Settings, world: World, viewer: Client, who: str
) -> None:
    reader = viewer if who == "viewer" else _client(stack, world, who)
    rows = reader.table("devices").select("*").execute().data
    mine = {r["name"]: r for r in rows if r["name"] in ("d1-e2e", "d_unpaired-e2e")}
    assert set(mine) == {"d1-e2e", "d_unpaired-e2e"}
    assert (mine["d1-e2e"]["paired"], mine["d_unpaired-e2e"]["paired"]) == (True, False)
    assert all("credential_id" not in r for r in rows)
    secret = _credential(stack, world.ids["d1"])
    assert all(secret not in str(r) for r in rows)


def test_naming_credential_id_is_an_unknown_column(stack: Settings, world: World) -> None:
    with pytest.raises(APIError) as refused:
        _client(stack, world, "admin").table("devices").select("uuid, credential_id").execute()
    assert refused.value.code == "42703", refused.value
    response = httpx.get(
        f"{stack.api_url}/rest/v1/devices",
        params={"select": "uuid", "credential_id": "not.is.null"},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {world.tokens['admin']}"},
    )
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"code", "details", "hint", "message"}


def test_device_credentials_answers_the_owner_and_admins_only(
    stack: Settings, world: World, viewer: Client
) -> None:
    d1, d2 = world.ids["d1"], world.ids["d2"]

    def ask(who: str, devices: list[str]) -> dict[str, Any]:
        rows = _client(stack, world, who).rpc("device_credentials", {"device_uuids": devices}).execute().data
        return {r["device_uuid"]: r["credential_id"] for r in rows}

    assert ask("member", [d1, d2, world.ids["d_unpaired"]]) == {  # the owner of d1 and d_unpaired
        d1: _credential(stack, d1),
        world.ids["d_unpaired"]: None,
    }
    assert ask("admin", [d1, d2]) == {d1: _credential(stack, d1), d2: _credential(stack, d2)}
    assert ask("outsider", [d1]) == {}  # another workspace's device: left out
    with pytest.raises(APIError) as looker:
        viewer.rpc("device_credentials", {"device_uuids": [d1]}).execute()  # devices:view, not devices:edit
    assert looker.value.code == "42501"
    with pytest.raises(APIError) as nocaps:
        ask("nocaps", [d1])
    assert nocaps.value.code == "42501"
    with pytest.raises(APIError) as device:
        ask("d1", [d1])
    assert device.value.code == "42501"
    anon = httpx.post(
        f"{stack.api_url}/rest/v1/rpc/device_credentials",
        json={"device_uuids": [d1]},
        headers={"apikey": world.anon_key},
    )
    assert anon.status_code == 401, anon.text


def test_device_tokens_keep_working(stack: Settings, world: World) -> None:
    device = _client(stack, world, "d1")
    assert device.table("devices").select("uuid, paired").execute().data == [
        {"uuid": world.ids["d1"], "paired": True}
    ]
    assert device.rpc("whoami", {}).execute().data["paired"] is True

    async def scenario() -> None:
        async with realtime_client(stack, world.tokens["d1"]) as client:
            await joined(client.channel(f"device:{world.ids['d1']}", options(private=True)))

    asyncio.run(scenario())
