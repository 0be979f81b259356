"""/rest/v1 driven by the unchanged supabase-py client (postgrest 2.34) on the project's real schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from postgrest.exceptions import APIError
from supabase import Client, ClientOptions, create_client

from busymate.settings import Settings
from tests.world import World


def client(stack: Settings, key: str, token: str | None = None) -> Client:
    """A supabase-py client with the given API key, acting with `token` when given."""
    options = ClientOptions(headers={"Authorization": f"Bearer {token}"}) if token else ClientOptions()
    return create_client(stack.api_url, key, options)


@pytest.fixture(scope="module")
def member(stack: Settings, world: World) -> Client:
    return client(stack, world.anon_key, world.tokens["member"])


@pytest.fixture(scope="module")
def admin(stack: Settings, world: World) -> Client:
    return client(stack, world.anon_key, world.tokens["admin"])


@pytest.fixture(scope="module")
def service(stack: Settings, world: World) -> Client:
    return client(stack, world.service_key)


def test_a_member_reads_the_devices_of_their_workspace_only(member: Client, world: World) -> None:
    rows = member.table("devices").select("uuid, name, workspace_id").execute().data
    names = {r["name"] for r in rows}
    assert "d1-e2e" in names
    assert "d2-e2e" not in names  # another workspace's device: RLS hides it
    assert all(r["workspace_id"] == world.ids["w1"] for r in rows)


def test_select_with_renames_casts_embeds_filters_and_order(member: Client, world: World) -> None:
    result = (
        member.table("devices")
        .select("id:uuid, label:name, source::text, workspace:workspaces(slug), owner:profiles!devices_owner_user_id_fkey(id)", count="exact")
        .eq("workspace_id", world.ids["w1"])
        .in_("name", ["d1-e2e", "d_unpaired-e2e"])
        .order("name", desc=True)
        .limit(5)
        .execute()
    )
    assert [r["label"] for r in result.data] == ["d_unpaired-e2e", "d1-e2e"]
    assert result.data[0]["workspace"] == {"slug": "w1-e2e"}
    assert result.count == 2


def test_single_and_maybe_single(member: Client, world: World) -> None:
    one = member.table("devices").select("name").eq("uuid", world.ids["d1"]).single().execute()
    assert one.data == {"name": "d1-e2e"}
    with pytest.raises(APIError) as refused:
        member.table("devices").select("name").eq("uuid", world.ids["d2"]).single().execute()
    assert refused.value.code == "PGRST116"
    assert member.table("devices").select("name").eq("uuid", world.ids["d2"]).maybe_single().execute() is None


def test_a_device_inserts_entries_through_the_rpc(stack: Settings, world: World, service: Client) -> None:
    device = client(stack, world.anon_key, world.tokens["d1"])
    entry_id = str(uuid.uuid4())
    result = device.rpc("ingest_entries", {"batch": [{"id": entry_id, "method": "GET", "host": "api.example.com", "status": 200}]}).execute()
    assert result.data["inserted"] == 1
    assert result.data["ids"] == [entry_id]
    with pytest.raises(APIError) as refused:
        device.table("entries").select("id").execute()
    assert refused.value.code == "42501"  # a device never reads traffic
    stored = service.table("entries").select("host, device_uuid").eq("id", entry_id).execute().data
    assert stored == [{"host": "api.example.com", "device_uuid": world.ids["d1"]}]


def test_an_unpaired_device_cannot_ingest(stack: Settings, world: World) -> None:
    device = client(stack, world.anon_key, world.tokens["d_unpaired"])
    with pytest.raises(APIError) as refused:
        device.rpc("ingest_entries", {"batch": []}).execute()
    assert refused.value.code == "42501"


def test_insert_update_delete_and_upsert(service: Client, world: World) -> None:
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    created = service.table("tags").insert({"name": tag, "match_patterns": ["a.example.com"]}).execute().data
    assert created[0]["name"] == tag
    updated = service.table("tags").update({"match_patterns": ["b.example.com"]}).eq("name", tag).execute().data
    assert updated[0]["match_patterns"] == ["b.example.com"]
    upserted = service.table("tags").upsert({"id": created[0]["id"], "name": tag, "match_patterns": []}).execute().data
    assert upserted[0]["match_patterns"] == []
    deleted = service.table("tags").delete().eq("name", tag).execute().data
    assert [r["name"] for r in deleted] == [tag]
    assert service.table("tags").select("id").eq("name", tag).execute().data == []


def test_errors_have_postgrest_shape(member: Client) -> None:
    with pytest.raises(APIError) as missing:
        member.table("no_such_table").select("*").execute()
    assert missing.value.code == "PGRST205"
    with pytest.raises(APIError) as column:
        member.table("devices").select("nope").execute()
    assert column.value.code == "42703"


def test_bad_tokens_are_refused(stack: Settings, world: World) -> None:
    anon = world.anon_key
    for token, code in (("a.b", "PGRST301"), (world.tokens["member"][:-3] + "abc", "PGRST301")):
        response = httpx.get(f"{stack.api_url}/rest/v1/devices", headers={"apikey": anon, "Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["code"] == code
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    no_key = httpx.get(f"{stack.api_url}/rest/v1/devices")
    assert no_key.status_code == 401 and no_key.json() == {"message": "No API key found in request"}
