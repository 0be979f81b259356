"""/rest/v1 driven by the unchanged supabase-py client (postgrest 2.34) on the project's real schema."""
# supabase-py types every response as a JSON union, so indexing into the data needs these checks off here.
# mypy: disable-error-code="index, call-overload, union-attr, arg-type, type-var"

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from postgrest.exceptions import APIError

from busymate.settings import Settings
from supabase import Client, ClientOptions, create_client
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
        .select(
            "id:uuid, label:name, source::text, workspace:workspaces(slug), "
            "owner:profiles!devices_owner_user_id_fkey(id)",
            count="exact",
        )
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
    result = device.rpc(
        "ingest_entries",
        {"batch": [{"id": entry_id, "method": "GET", "host": "api.example.com", "status": 200}]},
    ).execute()
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
    # Refused before the request runs (the db-pre-request hook), as 401: the credential itself is void.
    assert refused.value.code == "PGRST301"
    assert "no longer valid" in str(refused.value.message)


def test_insert_update_delete_and_upsert(service: Client, world: World) -> None:
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    created = service.table("tags").insert({"name": tag, "match_patterns": ["a.example.com"]}).execute().data
    assert created[0]["name"] == tag
    updated = (
        service.table("tags").update({"match_patterns": ["b.example.com"]}).eq("name", tag).execute().data
    )
    assert updated[0]["match_patterns"] == ["b.example.com"]
    upserted = (
        service.table("tags")
        .upsert({"id": created[0]["id"], "name": tag, "match_patterns": []})
        .execute()
        .data
    )
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
        response = httpx.get(
            f"{stack.api_url}/rest/v1/devices", headers={"apikey": anon, "Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
        assert response.json()["code"] == code
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    no_key = httpx.get(f"{stack.api_url}/rest/v1/devices")
    assert no_key.status_code == 401
    assert no_key.json() == {"message": "No API key found in request"}


def test_horizontal_filters_logic_trees_and_negation(member: Client, world: World) -> None:
    def names(query: object) -> list[str]:
        return sorted(r["name"] for r in query.execute().data)  # type: ignore[attr-defined]

    def base() -> Any:
        return member.table("devices").select("name")

    assert names(base().like("name", "d1-*")) == ["d1-e2e"]
    assert names(base().ilike("name", "D_UNPAIRED%")) == ["d_unpaired-e2e"]
    assert names(base().is_("paired", "false")) == ["d_unpaired-e2e"]
    assert names(base().not_.is_("paired", "false")) == ["d1-e2e"]
    assert names(base().is_("paired_at", "null")) == ["d_unpaired-e2e"]
    assert names(base().or_("name.eq.d1-e2e,name.eq.nothing")) == ["d1-e2e"]
    assert names(base().or_("and(name.like.d*,source.eq.proxy),name.eq.zzz").neq("name", "d1-e2e")) == [
        "d_unpaired-e2e"
    ]
    assert names(base().in_("name", ["d1-e2e", 'a,"b"'])) == ["d1-e2e"]
    assert names(base().not_.in_("name", ["d1-e2e"])) == ["d_unpaired-e2e"]
    assert names(base().gte("created_at", "2000-01-01").lt("created_at", "2999-01-01")) == [
        "d1-e2e",
        "d_unpaired-e2e",
    ]
    assert names(base().filter("name", "match", "^d[0-9]")) == ["d1-e2e"]
    assert names(base().eq("name", "'; drop table public.devices; --")) == []


def test_order_limit_offset_range_and_counts(stack: Settings, member: Client, world: World) -> None:
    ordered = member.table("devices").select("name").order("name", desc=True, nullsfirst=True).execute().data
    assert [r["name"] for r in ordered] == ["d_unpaired-e2e", "d1-e2e"]
    page = member.table("devices").select("name", count="exact").order("name").range(1, 1).execute()
    assert [r["name"] for r in page.data] == ["d_unpaired-e2e"]
    assert page.count == 2
    head = member.table("devices").select("*", count="exact", head=True).execute()
    assert head.count == 2
    raw = httpx.get(
        f"{stack.api_url}/rest/v1/devices?select=name&order=name",
        headers={
            "apikey": world.anon_key,
            "Authorization": f"Bearer {world.tokens['member']}",
            "Range": "0-0",
            "Prefer": "count=exact",
        },
    )
    assert raw.status_code == 206
    assert raw.headers["content-range"] == "0-0/2"
    assert raw.headers["preference-applied"] == "count=exact"
    beyond = httpx.get(
        f"{stack.api_url}/rest/v1/devices?select=name&offset=10",
        headers={
            "apikey": world.anon_key,
            "Authorization": f"Bearer {world.tokens['member']}",
            "Prefer": "count=exact",
        },
    )
    assert beyond.status_code == 416
    assert beyond.json()["code"] == "PGRST103"


def test_csv_and_json_paths(member: Client, stack: Settings, world: World) -> None:
    csv = member.table("devices").select("name,source").eq("name", "d1-e2e").csv().execute()
    assert csv.data == "name,source\nd1-e2e,proxy"
    rows = httpx.get(
        f"{stack.api_url}/rest/v1/settings_global?select=cap:settings->>body_cap_bytes,settings->missing",
        headers={"apikey": world.service_key},
    )
    assert rows.status_code == 200, rows.text
    assert set(rows.json()[0]) == {"cap", "missing"}


def test_writes_with_prefer_variants(stack: Settings, service: Client) -> None:
    headers = {"apikey": service.supabase_key, "Content-Type": "application/json"}
    url = f"{stack.api_url}/rest/v1/tags"
    name = f"p-{uuid.uuid4().hex[:8]}"
    minimal = httpx.post(url, headers=headers, content=f'{{"name": "{name}"}}')
    assert (minimal.status_code, minimal.text, minimal.headers["content-range"]) == (201, "", "*/*")
    located = httpx.post(
        url, headers={**headers, "Prefer": "return=headers-only"}, content=f'{{"name": "{name}-2"}}'
    )
    assert located.status_code == 201
    assert located.headers["location"].startswith("/tags?id=eq.")
    bulk = httpx.post(
        f'{url}?columns="name","match_patterns"',
        headers={**headers, "Prefer": "return=representation,missing=default"},
        content=f'[{{"name": "{name}-3"}}, {{"name": "{name}-4", "match_patterns": ["x"]}}]',
    )
    assert bulk.status_code == 201, bulk.text
    assert [r["match_patterns"] for r in bulk.json()] == [
        [],
        ["x"],
    ]  # the default applied where the key was missing
    assert bulk.headers["preference-applied"] == "missing=default, return=representation"
    ignored = httpx.post(
        f"{url}?on_conflict=name",
        headers={**headers, "Prefer": "return=representation,resolution=ignore-duplicates"},
        content=f'[{{"name": "{name}"}}, {{"name": "{name}-5"}}]',
    )
    assert [r["name"] for r in ignored.json()] == [f"{name}-5"]
    merged = httpx.post(
        f"{url}?on_conflict=name",
        headers={**headers, "Prefer": "return=representation,resolution=merge-duplicates"},
        content=f'{{"name": "{name}", "match_patterns": ["m"]}}',
    )
    assert merged.status_code == 200
    assert merged.json()[0]["match_patterns"] == ["m"]
    rolled = httpx.post(
        url,
        headers={**headers, "Prefer": "tx=rollback,return=representation"},
        content=f'{{"name": "{name}-6"}}',
    )
    assert rolled.status_code == 201
    assert httpx.get(f"{url}?name=eq.{name}-6", headers=headers).json() == []
    conflict = httpx.post(url, headers=headers, content=f'{{"name": "{name}"}}')
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "23505"
    mismatch = httpx.post(url, headers=headers, content='[{"name": "a"}, {"other": 1}]')
    assert mismatch.status_code == 400
    assert mismatch.json()["code"] == "PGRST102"
    unknown = httpx.post(url, headers=headers, content='{"nope": 1}')
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "PGRST204"
    patched = httpx.patch(f"{url}?name=like.{name}*", headers=headers, content='{"match_patterns": ["z"]}')
    assert patched.status_code == 204
    assert patched.headers["content-range"].startswith("0-")
    gone = httpx.delete(f"{url}?name=like.{name}*", headers={**headers, "Prefer": "count=exact"})
    assert gone.status_code == 204
    assert gone.headers["content-range"] == "*/5"


def test_rpc_by_get_and_post_respects_volatility(stack: Settings, member: Client, world: World) -> None:
    me = member.rpc("whoami", {}).execute().data
    assert me["user_id"] == world.ids["member"] if isinstance(me, dict) and "user_id" in me else me
    headers = {"apikey": world.anon_key, "Authorization": f"Bearer {world.tokens['member']}"}
    by_get = httpx.get(
        f"{stack.api_url}/rest/v1/rpc/has_capability?section=devices&action=view", headers=headers
    )
    assert by_get.status_code == 200, by_get.text
    assert by_get.json() is True
    writer = httpx.get(
        f"{stack.api_url}/rest/v1/rpc/ingest_entries",
        params={"batch": '[{"method": "GET", "host": "get.example.com"}]'},
        headers={"apikey": world.anon_key, "Authorization": f"Bearer {world.tokens['d1']}"},
    )
    assert writer.status_code == 405, writer.text
    assert writer.json()["code"] == "25006"
    missing = httpx.post(f"{stack.api_url}/rest/v1/rpc/no_such_function", headers=headers, json={})
    assert missing.status_code == 404
    assert missing.json()["code"] == "PGRST202"


def test_request_settings_and_the_schema_cache_reload(stack: Settings, world: World) -> None:
    import time

    import psycopg

    with psycopg.connect(stack.db_url(user="supabase_admin"), autocommit=True) as conn:
        conn.execute(
            "create or replace function public.e2e_request() returns jsonb language sql stable as $$ "
            "select jsonb_build_object('method', current_setting('request.method'), "
            "'path', current_setting('request.path'), "
            "'sub', current_setting('request.jwt.claim.sub', true), 'claims_sub', auth.uid(), "
            "'role', current_user, 'header', current_setting('request.headers')::jsonb ->> 'x-e2e', "
            "'cookie', current_setting('request.cookies')::jsonb ->> 'c', "
            "'read_only', current_setting('transaction_read_only')) $$"
        )
        conn.execute("grant execute on function public.e2e_request() to authenticated")
        conn.execute("notify pgrst, 'reload schema'")
    headers = {
        "apikey": world.anon_key,
        "Authorization": f"Bearer {world.tokens['member']}",
        "x-e2e": "yes",
        "Cookie": "c=1",
    }
    for _ in range(50):
        answer = httpx.get(f"{stack.api_url}/rest/v1/rpc/e2e_request", headers=headers)
        if answer.status_code == 200:
            break
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "method": "GET",
        "path": "/rpc/e2e_request",
        "sub": world.ids["member"],
        "claims_sub": world.ids["member"],
        "role": "authenticated",
        "header": "yes",
        "cookie": "1",
        "read_only": "on",
    }


def test_openapi_root_and_cors(stack: Settings, world: World) -> None:
    root = httpx.get(f"{stack.api_url}/rest/v1/", headers={"apikey": world.anon_key})
    assert root.status_code == 200
    assert root.headers["content-type"].startswith("application/openapi+json")
    doc = root.json()
    assert doc["swagger"] == "2.0"
    assert "/devices" in doc["paths"]
    assert "/rpc/ingest_entries" in doc["paths"]
    preflight = httpx.options(
        f"{stack.api_url}/rest/v1/devices",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "apikey, authorization, x-client-info",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "x-client-info" in preflight.headers["access-control-allow-headers"]


def test_forged_roles_and_unknown_roles_are_refused(stack: Settings, world: World) -> None:
    from busymate import tokens

    for role, status in (("supabase_admin", 403), ("postgres", 403), ("no_such_role", 401)):
        token = tokens.sign_hs256({"role": role, "sub": world.ids["member"]}, stack.jwt_secret)
        answer = httpx.get(
            f"{stack.api_url}/rest/v1/devices",
            headers={"apikey": world.anon_key, "Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == status, (role, answer.text)
    none_alg = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIn0."
    answer = httpx.get(
        f"{stack.api_url}/rest/v1/devices",
        headers={"apikey": world.anon_key, "Authorization": f"Bearer {none_alg}"},
    )
    assert answer.status_code == 401
    assert answer.json()["code"] == "PGRST301"
    expired = tokens.sign_hs256({"role": "authenticated", "exp": 1000}, stack.jwt_secret)
    answer = httpx.get(
        f"{stack.api_url}/rest/v1/devices",
        headers={"apikey": world.anon_key, "Authorization": f"Bearer {expired}"},
    )
    assert answer.status_code == 401
    assert answer.json() == {
        "code": "PGRST303",
        "details": None,
        "hint": None,
        "message": "JWT expired",
    }


def test_parse_errors_are_pgrst100_with_a_position(stack: Settings, world: World) -> None:
    headers = {"apikey": world.service_key}
    for query in ("select=name,,x", "name=noop.1", "order=name.sideways", "or=(name.eq.1", "limit=abc"):
        answer = httpx.get(f"{stack.api_url}/rest/v1/devices?{query}", headers=headers)
        assert answer.status_code == 400, (query, answer.text)
        body = answer.json()
        assert body["code"] == "PGRST100", (query, body)
        assert "(line 1, column " in body["message"]
        assert "pgrst_source" not in answer.text
        assert " from " not in answer.text


def test_embedding_to_many_nested_inner_and_hints(member: Client, admin: Client, world: World) -> None:
    nested = (
        member.table("workspaces")
        .select("slug, devices(name, device_status(online)), members:workspace_members(user_id)")
        .eq("id", world.ids["w1"])
        .execute()
        .data
    )
    assert nested[0]["slug"] == "w1-e2e"
    assert sorted(d["name"] for d in nested[0]["devices"]) == ["d1-e2e", "d_unpaired-e2e"]
    assert isinstance(nested[0]["members"], list)
    assert nested[0]["members"]
    inner = (
        admin.table("workspaces")
        .select("slug, devices!inner(name)")
        .eq("devices.name", "d2-e2e")
        .execute()
        .data
    )
    assert inner == [{"slug": "w2-e2e", "devices": [{"name": "d2-e2e"}]}]  # parents without a match disappear
    limited = (
        admin.table("workspaces")
        .select("slug, devices(name)")
        .eq("id", world.ids["w1"])
        .order("name", foreign_table="devices", desc=True)
        .limit(1, foreign_table="devices")
        .execute()
        .data
    )
    assert limited == [{"slug": "w1-e2e", "devices": [{"name": "d_unpaired-e2e"}]}]
    with pytest.raises(APIError) as unknown:
        member.table("devices").select("name, workspacez(slug)").execute()
    assert unknown.value.code == "PGRST200"


def test_new_style_keys_and_profiles(stack: Settings, world: World) -> None:
    secret = httpx.get(f"{stack.api_url}/rest/v1/devices?select=name", headers={"apikey": stack.secret_key})
    assert secret.status_code == 200
    assert len(secret.json()) >= 3
    publishable = httpx.get(f"{stack.api_url}/rest/v1/devices", headers={"apikey": stack.publishable_key})
    assert publishable.status_code == 401
    assert publishable.json()["code"] == "42501"
    as_user = httpx.get(
        f"{stack.api_url}/rest/v1/devices?select=name",
        headers={"apikey": stack.publishable_key, "Authorization": f"Bearer {world.tokens['member']}"},
    )
    assert as_user.status_code == 200
    assert {r["name"] for r in as_user.json()} == {"d1-e2e", "d_unpaired-e2e"}
    wrong = httpx.get(f"{stack.api_url}/rest/v1/devices", headers={"apikey": "sb_publishable_nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"message": "Invalid authentication credentials"}
    schema = httpx.get(
        f"{stack.api_url}/rest/v1/devices", headers={"apikey": stack.secret_key, "Accept-Profile": "private"}
    )
    assert schema.status_code == 406
    assert schema.json()["code"] == "PGRST106"
    profiled = httpx.get(
        f"{stack.api_url}/rest/v1/devices?select=name",
        headers={"apikey": stack.secret_key, "Accept-Profile": "public"},
    )
    assert profiled.headers["content-profile"] == "public"
    too_big = httpx.post(
        f"{stack.api_url}/rest/v1/tags",
        headers={"apikey": stack.secret_key},
        content=b"x" * (stack.max_body_bytes + 1),
    )
    assert too_big.status_code == 413
