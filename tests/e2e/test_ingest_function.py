"""/functions/v1/ingest end to end, through supabase-py's `functions.invoke` and plain httpx under a device
token: a batch is stored with each entry's body states (readable by a member), a resent batch is stored
once, one bad row is reported by its index while the others land, a gzip body is taken (and a broken one or a
bomb is refused), and every refusal (400 bad JSON, no batch, too many entries; 401 no token, the anon key, a
device without a credential; 403 a user's token; 413 too large) has the function's error shape and stores
nothing."""
# supabase-py types every response as a JSON union, so indexing into the data needs these checks off here.
# mypy: disable-error-code="index, call-overload, union-attr, arg-type"

from __future__ import annotations

import base64
import gzip
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from supabase_functions.errors import FunctionsHttpError

from busymate.settings import Settings
from supabase import Client, ClientOptions, create_client
from tests.e2e.proxy_helpers import sql
from tests.world import World

STATES = "captured, truncated, evicted, streamed, lost, skipped, none"


def _client(stack: Settings, world: World, who: str) -> Client:
    return create_client(
        stack.api_url, world.anon_key, ClientOptions(headers={"Authorization": f"Bearer {world.tokens[who]}"})
    )


def _headers(world: World, who: str | None) -> dict[str, str]:
    token = world.tokens[who] if who else world.anon_key
    return {"apikey": world.anon_key, "authorization": f"Bearer {token}", "content-type": "application/json"}


def _post(stack: Settings, world: World, who: str | None, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{stack.api_url}/functions/v1/ingest",
        content=body,
        headers={**_headers(world, who), **headers},
        timeout=60,
    )


def _entry(host: str, **extra: Any) -> dict[str, Any]:
    """An entry as a capture client sends it: its id and time (together they make a resend a duplicate)."""
    return {
        "id": str(uuid.uuid4()),
        "captured_at": datetime.now(UTC).isoformat(),
        "method": "GET",
        "host": host,
        "path": "/",
        "status": 200,
        **extra,
    }


def _stored(stack: Settings, marker: str) -> list[tuple[Any, ...]]:
    return sql(
        stack,
        "select host, request_body_state, response_body_state, response_body_truncated, response_body "
        "from public.entries where host like %s order by host",
        (f"%{marker}%",),
    )


@pytest.fixture(scope="module")
def marker() -> str:
    return uuid.uuid4().hex[:10]


def test_a_batch_is_stored_once_with_its_body_states_and_a_bad_row_by_index(
    stack: Settings, world: World, marker: str
) -> None:
    body = base64.b64encode(b'{"ok": true}').decode()
    batch = [
        _entry(f"a-{marker}.example.com", response_body_b64=body),  # no state: captured
        _entry(f"b-{marker}.example.com", response_body_state="evicted", request_body_state="skipped"),
        _entry(f"c-{marker}.example.com", port=70000),  # refused by the table
        _entry(f"d-{marker}.example.com", response_body_state="gone"),  # not a state
        _entry(f"e-{marker}.example.com", response_body_state="streamed", response_body_b64=body),
        _entry(f"f-{marker}.example.com"),  # no body, no state: none
    ]
    answer = _client(stack, world, "d1").functions.invoke("ingest", {"body": {"batch": batch}})
    first = answer if isinstance(answer, dict) else json.loads(answer)
    assert (first["inserted"], first["duplicates"], first["rejected"]) == (4, 0, 2), first
    assert first["errors"] == [
        {"index": 2, "error": "port must be a whole number from 1 to 65535"},
        {"index": 3, "error": f"response_body_state is one of {STATES}"},
    ], first
    assert first["ids"] == [e["id"] if i not in (2, 3) else None for i, e in enumerate(batch)], first

    # the same batch again, from a spool: nothing doubled, the same rows refused
    again = _post(stack, world, "d1", json.dumps({"batch": batch}).encode())
    assert again.status_code == 200, again.text
    resent = again.json()
    assert (resent["inserted"], resent["duplicates"], resent["rejected"]) == (0, 4, 2), resent
    assert resent["ids"] == first["ids"], resent

    assert _stored(stack, marker) == [
        (f"a-{marker}.example.com", "none", "captured", False, b'{"ok": true}'),
        (f"b-{marker}.example.com", "skipped", "evicted", False, None),
        (f"e-{marker}.example.com", "none", "streamed", False, b'{"ok": true}'),
        (f"f-{marker}.example.com", "none", "none", False, None),
    ]
    # a member of the workspace reads the states through the API
    read = (
        _client(stack, world, "member")
        .table("entries")
        .select("host,request_body_state,response_body_state")
        .like("host", f"%{marker}%")
        .order("host")
        .execute()
    )
    assert [(r["request_body_state"], r["response_body_state"]) for r in read.data] == [
        ("none", "captured"),
        ("skipped", "evicted"),
        ("none", "streamed"),
        ("none", "none"),
    ], read.data


def test_a_gzip_body_is_taken_and_a_broken_one_or_a_bomb_refused(stack: Settings, world: World) -> None:
    marker = uuid.uuid4().hex[:10]
    batch = [_entry(f"z{i}-{marker}.example.com", response_body_state="lost") for i in range(3)]
    zipped = _post(stack, world, "d1", gzip.compress(json.dumps({"batch": batch}).encode()), **{
        "content-encoding": "gzip"
    })  # fmt: skip
    assert zipped.status_code == 200, zipped.text
    assert zipped.json()["inserted"] == 3, zipped.text
    assert [row[2] for row in _stored(stack, marker)] == ["lost"] * 3

    # a file of two gzip members (concatenated) is one body
    data = json.dumps({"batch": [_entry(f"z9-{marker}.example.com")]}).encode()
    members = gzip.compress(data[:20]) + gzip.compress(data[20:])
    two = _post(stack, world, "d1", members, **{"content-encoding": "gzip"})
    assert two.status_code == 200, two.text
    assert two.json()["inserted"] == 1, two.text
    assert [row[2] for row in _stored(stack, marker)] == ["lost"] * 3 + ["none"]

    broken = _post(stack, world, "d1", b"\x1f\x8b not gzip at all", **{"content-encoding": "gzip"})
    assert broken.status_code == 400, broken.text
    assert broken.json()["error"] == "bad_gzip", broken.text
    # 33 MiB of JSON whitespace around a valid batch, some 33 KB compressed: refused past 32 MiB of output
    bomb = gzip.compress(b'{"batch": [' + b" " * (33 * 1024 * 1024) + b"]}")
    refused = _post(stack, world, "d1", bomb, **{"content-encoding": "gzip"})
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"] == "payload_too_large", refused.text
    assert "split" in refused.json()["message"], refused.text


def test_refusals_have_the_functions_shape_and_store_nothing(stack: Settings, world: World) -> None:
    marker = uuid.uuid4().hex[:10]
    one = json.dumps({"batch": [_entry(f"x-{marker}.example.com")]}).encode()
    cases: list[tuple[str, httpx.Response, int, str]] = [
        ("not JSON", _post(stack, world, "d1", b"{not json"), 400, "bad_json"),
        ("no batch", _post(stack, world, "d1", b'{"entries": []}'), 400, "validation_failed"),
        ("a batch that is no array", _post(stack, world, "d1", b'{"batch": {}}'), 400, "validation_failed"),
        (
            "1001 entries",
            _post(
                stack,
                world,
                "d1",
                json.dumps({"batch": [_entry(f"x-{marker}.example.com") for _ in range(1001)]}).encode(),
            ),
            400,
            "batch_too_large",
        ),
        ("the anon key", _post(stack, world, None, one), 401, "device_token_required"),
        ("no credential", _post(stack, world, "d_unpaired", one), 401, "invalid_device_token"),
        ("a user's token", _post(stack, world, "member", one), 403, "device_token_required"),
        ("brotli", _post(stack, world, "d1", one, **{"content-encoding": "br"}), 415, "unsupported_encoding"),
        (
            "33 MiB",
            _post(stack, world, "d1", one[:-2] + b" " * (33 * 1024 * 1024) + b"]}"),
            413,
            "payload_too_large",
        ),
    ]
    for what, response, status, error in cases:
        assert response.status_code == status, (what, response.text)
        body = response.json()
        assert set(body) == {"error", "message"}, (what, body)
        assert body["error"] == error, (what, body)
        assert body["message"], what
    assert "split" in cases[3][1].json()["message"]
    assert "device token" in cases[6][1].json()["message"]

    # no token at all: the host's own 401, before the function runs
    bare = httpx.post(f"{stack.api_url}/functions/v1/ingest", content=one, headers={"apikey": world.anon_key})
    assert bare.status_code == 401, bare.text
    assert bare.json()["code"] == "UNAUTHORIZED_NO_AUTH_HEADER", bare.text
    # supabase-py sees the user's refusal as an error with the status
    with pytest.raises(FunctionsHttpError) as refused:
        _client(stack, world, "member").functions.invoke("ingest", {"body": json.loads(one)})
    assert refused.value.status == 403, refused.value
    assert _stored(stack, marker) == []
