"""Captured traffic goes in through ingest_entries only: a device's `POST /rest/v1/entries` (the way around
it, which stored a body with a size, a time and a source of the device's choosing) is refused in PostgREST's
shape and stores nothing, through the unchanged supabase-py client; the ingest path keeps storing."""
# supabase-py types every response as a JSON union, so indexing into the data needs these checks off here.
# mypy: disable-error-code="index, call-overload, union-attr, arg-type"

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest
from postgrest import ReturnMethod
from postgrest.exceptions import APIError

from busymate.settings import Settings
from supabase import Client, ClientOptions, create_client
from tests.e2e.proxy_helpers import sql
from tests.world import World

BODY = b"\x00\x01" * 2048


def _client(stack: Settings, world: World, who: str) -> Client:
    return create_client(
        stack.api_url, world.anon_key, ClientOptions(headers={"Authorization": f"Bearer {world.tokens[who]}"})
    )


def _forged_row(world: World, host: str) -> dict[str, Any]:
    """What the device sent around ingest: a body whose size, flags, time and source say otherwise."""
    return {
        "workspace_id": world.ids["w1"],
        "device_uuid": world.ids["d1"],
        "source": "ios",
        "captured_at": "2000-01-01T00:00:00Z",
        "method": "GET",
        "host": host,
        "response_body": "\\x" + BODY.hex(),
        "response_body_size": 1,
        "response_body_truncated": False,
    }


def _stored(stack: Settings, host: str) -> int:
    [(count,)] = sql(stack, "select count(*) from public.entries where host = %s", (host,))
    return int(count)


@pytest.mark.parametrize("who", ["d1", "member", "admin"])
def test_nobody_inserts_entries_directly(stack: Settings, world: World, who: str) -> None:
    host = f"direct-{uuid.uuid4().hex[:10]}.example.com"
    with pytest.raises(APIError) as refused:
        # return=minimal, as a capture client would: no read right is needed for the refusal to show
        _client(stack, world, who).table("entries").insert(
            _forged_row(world, host), returning=ReturnMethod.minimal
        ).execute()
    assert refused.value.code == "42501", refused.value
    with pytest.raises(APIError) as upserted:
        _client(stack, world, who).table("entries").upsert(
            _forged_row(world, host), returning=ReturnMethod.minimal
        ).execute()
    assert upserted.value.code == "42501", upserted.value
    assert _stored(stack, host) == 0


def test_the_refusal_is_a_403_in_postgrest_shape(stack: Settings, world: World) -> None:
    host = f"direct-{uuid.uuid4().hex[:10]}.example.com"
    response = httpx.post(
        f"{stack.api_url}/rest/v1/entries",
        json=[_forged_row(world, host)],
        headers={"apikey": world.anon_key, "authorization": f"Bearer {world.tokens['d1']}"},
    )
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) == {"code", "details", "hint", "message"}
    assert body["code"] == "42501"
    assert _stored(stack, host) == 0


def test_a_device_cannot_rewrite_or_delete_stored_entries(stack: Settings, world: World) -> None:
    device = _client(stack, world, "d1")
    with pytest.raises(APIError) as updated:
        device.table("entries").update({"status": 599}).eq("device_uuid", world.ids["d1"]).execute()
    assert updated.value.code == "42501"
    with pytest.raises(APIError) as deleted:
        device.table("entries").delete().eq("device_uuid", world.ids["d1"]).execute()
    assert deleted.value.code == "42501"


def test_ingest_entries_still_stores_what_the_database_builds(stack: Settings, world: World) -> None:
    host = f"ingest-{uuid.uuid4().hex[:10]}.example.com"
    result = (
        _client(stack, world, "d1")
        .rpc(
            "ingest_entries",
            {
                "batch": [
                    {
                        "method": "GET",
                        "host": host,
                        "status": 200,
                        "response_body_b64": base64.b64encode(BODY).decode(),
                        "source": "ios",
                        "device_uuid": world.ids["d2"],
                        "workspace_id": world.ids["w2"],
                    }
                ]
            },
        )
        .execute()
    )
    assert result.data["inserted"] == 1, result.data
    [(device, workspace, source, size, body)] = sql(
        stack,
        "select device_uuid::text, workspace_id::text, source, response_body_size, response_body "
        "from public.entries where host = %s",
        (host,),
    )
    # Device, workspace and source come from the credential, the size from the body, whatever the row says.
    assert (device, workspace, source) == (world.ids["d1"], world.ids["w1"], "proxy")
    assert (size, bytes(body)) == (len(BODY), BODY)
