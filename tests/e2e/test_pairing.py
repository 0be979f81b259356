"""Device pairing end to end: an admin issues a one-time code, POST /functions/v1/pair exchanges it for a
device token, and pairing again or unpairing voids that token at once on REST and Realtime.

Every device made here is deleted afterwards (delete_device as admin): the REST suites count the member's
devices, and the entries a device ingested go with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from busymate import tokens
from busymate.keys import load_or_create_ec_key
from busymate.settings import Settings
from tests.e2e.realtime_helpers import connect_status, db_send, join_private, ws_url
from tests.world import World

CODE = re.compile(r"^[A-HJ-NP-Z2-9]{5}-[A-HJ-NP-Z2-9]{5}$")
TIMEOUT = 30.0


# -- helpers -----------------------------------------------------------------------------------------------


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWT (unverified: the servers verify)."""
    head, body, _ = token.split(".")
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return header, claims


def rest(settings: Settings, token: str | None) -> httpx.Client:
    """/rest/v1 with the anon key and, when given, `token` as the bearer."""
    headers = {"apikey": tokens.anon_key(settings.jwt_secret)}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=f"{settings.api_url}/rest/v1", headers=headers, timeout=15)


def rpc(settings: Settings, token: str | None, name: str, args: dict[str, object]) -> httpx.Response:
    """POST /rest/v1/rpc/<name>."""
    with rest(settings, token) as client:
        return client.post(f"/rpc/{name}", json=args)


def pair(settings: Settings, code: object, client: httpx.Client | None = None) -> httpx.Response:
    """POST /functions/v1/pair {code}, without Authorization (the code is the proof)."""
    url = f"{settings.api_url}/functions/v1/pair"
    if client is not None:
        return client.post(url, json={"code": code})
    return httpx.post(url, json={"code": code}, timeout=15)


def issue(settings: Settings, world: World, device_uuid: str) -> str:
    """A fresh activation code for the device, issued by the admin."""
    answer = rpc(settings, world.tokens["admin"], "issue_device_activation", {"device_uuid": device_uuid})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert CODE.match(body["code"]), body
    assert body["device_uuid"] == device_uuid, body
    return str(body["code"])


def paired_token(settings: Settings, world: World, device_uuid: str) -> str:
    """Issue a code and exchange it: the device token."""
    answer = pair(settings, issue(settings, world, device_uuid))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def own_devices(settings: Settings, token: str) -> httpx.Response:
    """GET /rest/v1/devices under `token`."""
    with rest(settings, token) as client:
        return client.get("/devices", params={"select": "uuid,name,workspace_id"})


def credential_of(settings: Settings, device_uuid: str) -> str | None:
    """The device's current credential (private.device_credentials), read as the database owner."""
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:
        row = conn.execute(
            "select c.credential_id::text from public.devices as d "
            "left join private.device_credentials as c on c.device_uuid = d.uuid where d.uuid = %s",
            (device_uuid,),
        ).fetchone()
    assert row is not None
    return None if row[0] is None else str(row[0])


@pytest.fixture
def device(stack: Settings, world: World) -> Iterator[str]:
    """A new proxy device in w1 (made by the admin, so it has a credential but no token yet); its uuid."""
    made = rpc(
        stack,
        world.tokens["admin"],
        "create_device",
        {"workspace_id": world.ids["w1"], "name": f"pairing-{uuid.uuid4().hex[:8]}", "source": "proxy"},
    )
    assert made.status_code == 200, made.text
    device_uuid = str(made.json()["uuid"])
    try:
        yield device_uuid
    finally:
        gone = rpc(stack, world.tokens["admin"], "delete_device", {"device_uuid": device_uuid})
        with psycopg.connect(stack.db_url(), autocommit=True) as conn:
            conn.execute("delete from public.entries where device_uuid = %s", (device_uuid,))
        assert gone.status_code in (200, 204), gone.text


# -- (1) pairing gives a working device token ------------------------------------------------------------


def test_a_code_pairs_the_device_and_its_token_reads_its_row_and_writes(
    stack: Settings, world: World, device: str
) -> None:
    issued = rpc(stack, world.tokens["admin"], "issue_device_activation", {"device_uuid": device})
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert CODE.match(body["code"]), body
    assert "expires_at" in body, body

    answer = pair(stack, body["code"])
    assert answer.status_code == 200, answer.text
    paired = answer.json()
    assert paired["token_type"] == "bearer", paired
    assert paired["device"]["uuid"] == device, paired
    assert paired["device"]["workspace_id"] == world.ids["w1"], paired
    token = paired["access_token"]

    header, claims = claims_of(token)
    assert header["alg"] == "ES256", header  # the session stack signs ES256
    assert header["kid"] == load_or_create_ec_key(stack.state_dir).kid, header
    assert claims["role"] == "device", claims
    assert claims["sub"] == device, claims
    assert claims["workspace_id"] == world.ids["w1"], claims
    assert claims["cred"] == credential_of(stack, device), claims
    assert claims["iss"] == stack.auth_url, claims
    assert claims["aud"] == "authenticated", claims
    now = time.time()
    assert claims["iat"] <= now + 5, claims
    assert claims["exp"] - claims["iat"] == stack.device_token_days * 86_400, claims
    assert paired["expires_at"] == claims["exp"], paired

    rows = own_devices(stack, token)
    assert rows.status_code == 200, rows.text
    assert [r["uuid"] for r in rows.json()] == [device], rows.text  # its own row, and only that

    with rest(stack, token) as client:
        status = client.patch(
            "/device_status",
            params={"device_uuid": f"eq.{device}"},
            json={"online": True, "vpn_state": "on"},
            headers={"Prefer": "return=representation"},
        )
        assert status.status_code == 200, status.text
        assert [(r["device_uuid"], r["online"]) for r in status.json()] == [(device, True)], status.text

        entry_id = str(uuid.uuid4())
        entry = {"id": entry_id, "method": "get", "host": "Pairing.Example", "path": "/hello", "status": 200}
        ingested = client.post("/rpc/ingest_entries", json={"batch": [entry]})
        assert ingested.status_code == 200, ingested.text
        result = ingested.json()
        assert result["inserted"] == 1, result
        assert result["ids"] == [entry_id], result
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        row = conn.execute(
            "select device_uuid::text, workspace_id::text, method, host from public.entries where id = %s",
            (entry_id,),
        ).fetchone()
    assert row == (device, world.ids["w1"], "GET", "pairing.example")

    # The token also opens a Realtime socket and joins its own private topic.
    async def scenario() -> None:
        async with connect(ws_url(stack, token)) as ws:
            _, reply = await join_private(ws, f"realtime:device:{device}", None)
            assert reply["status"] == "ok", reply

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


# -- (2) codes are single-use, exact, short-lived and an admin's to give -----------------------------------


def test_a_code_works_once(stack: Settings, world: World, device: str) -> None:
    code = issue(stack, world, device)
    first = pair(stack, code)
    assert first.status_code == 200, first.text
    again = pair(stack, code)
    assert again.status_code == 400, again.text
    assert again.json()["error"] == "invalid_code", again.text
    assert "access_token" not in again.json()


def test_a_wrong_code_is_refused(stack: Settings, world: World, device: str) -> None:
    code = issue(stack, world, device)
    wrong = "".join("A" if c != "A" else "B" for c in code if c != "-")
    for bad in (wrong, f"{wrong[:5]}-{wrong[5:]}", code[:-1], "not a code at all"):
        answer = pair(stack, bad)
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["error"] == "invalid_code", (bad, answer.text)
    # The code itself still works: wrong guesses did not use it up.
    assert pair(stack, code.lower().replace("-", " ")).status_code == 200


@pytest.mark.parametrize(
    ("body", "error"),
    [({}, "validation_failed"), ({"code": ""}, "validation_failed"), ({"code": 42}, "validation_failed")],
)
def test_a_pair_request_without_a_code_is_refused(stack: Settings, body: object, error: str) -> None:
    answer = httpx.post(f"{stack.api_url}/functions/v1/pair", json=body, timeout=15)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == error, answer.text


def test_a_pair_request_that_is_not_json_is_refused(stack: Settings) -> None:
    answer = httpx.post(f"{stack.api_url}/functions/v1/pair", content=b"{code", timeout=15)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_json", answer.text


def test_an_expired_code_is_refused(stack: Settings, world: World, device: str) -> None:
    code = issue(stack, world, device)
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        changed = conn.execute(
            "update private.device_activations set expires_at = now() - interval '1 second' "
            "where device_uuid = %s",
            (device,),
        ).rowcount
    assert changed == 1
    before = credential_of(stack, device)
    answer = pair(stack, code)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_code", answer.text
    assert credential_of(stack, device) == before  # nothing changed on the device


def test_a_newer_code_replaces_the_older(stack: Settings, world: World, device: str) -> None:
    old = issue(stack, world, device)
    new = issue(stack, world, device)
    refused = pair(stack, old)
    assert refused.status_code == 400, refused.text
    assert pair(stack, new).status_code == 200


def test_only_an_admin_issues_codes(stack: Settings, world: World, device: str) -> None:
    for who in ("member", "nocaps", "outsider"):
        answer = rpc(stack, world.tokens[who], "issue_device_activation", {"device_uuid": device})
        assert answer.status_code == 403, (who, answer.status_code, answer.text)
        assert answer.json()["code"] == "42501", answer.text
    anonymous = rpc(stack, None, "issue_device_activation", {"device_uuid": device})
    assert anonymous.status_code == 401, anonymous.text
    device_itself = rpc(
        stack, paired_token(stack, world, device), "issue_device_activation", {"device_uuid": device}
    )
    assert device_itself.status_code in (401, 403), device_itself.text
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from private.device_activations where device_uuid = %s", (device,)
        ).fetchone()
    assert row == (0,)  # none of them left a code behind


def test_an_admin_cannot_issue_a_code_for_a_missing_device(stack: Settings, world: World) -> None:
    answer = rpc(stack, world.tokens["admin"], "issue_device_activation", {"device_uuid": str(uuid.uuid4())})
    assert answer.status_code == 404, answer.text


# -- (3) pairing again voids the earlier token -------------------------------------------------------------


def test_pairing_again_voids_the_first_token_at_once(stack: Settings, world: World, device: str) -> None:
    first = paired_token(stack, world, device)
    assert own_devices(stack, first).status_code == 200
    second = paired_token(stack, world, device)
    assert claims_of(first)[1]["cred"] != claims_of(second)[1]["cred"]

    refused = own_devices(stack, first)
    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == "PGRST301", refused.text
    assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"'), refused.headers
    with rest(stack, first) as client:
        write = client.patch("/device_status", params={"device_uuid": f"eq.{device}"}, json={"online": True})
    assert write.status_code == 401, write.text

    fresh = own_devices(stack, second)
    assert fresh.status_code == 200, fresh.text
    assert [r["uuid"] for r in fresh.json()] == [device]

    async def statuses() -> tuple[int | None, int | None]:
        return await connect_status(ws_url(stack, first)), await connect_status(ws_url(stack, second))

    old_ws, new_ws = asyncio.run(asyncio.wait_for(statuses(), TIMEOUT))
    assert old_ws == 401
    assert new_ws is None


def test_pairing_again_stops_realtime_channels_held_with_the_first_token(
    stack: Settings, world: World, device: str
) -> None:
    """A channel joined with the first token must not go on hearing the device's topic once the device is
    paired again: the first credential is void, as it is on REST."""
    first = paired_token(stack, world, device)
    sub = f"device:{device}"
    topic = f"realtime:{sub}"

    async def scenario() -> list[dict[str, Any]]:
        async with (
            connect(ws_url(stack, world.anon_key)) as anon_ws,
            connect(ws_url(stack, first)) as own_ws,
            connect(ws_url(stack, world.anon_key)) as admin_ws,
        ):
            old_frames, old = await join_private(anon_ws, topic, first)
            assert old["status"] == "ok", old
            own_frames, own = await join_private(own_ws, topic, None)
            assert own["status"] == "ok", own
            admin_frames, watched = await join_private(admin_ws, topic, world.tokens["admin"])
            assert watched["status"] == "ok", watched

            await asyncio.to_thread(paired_token, stack, world, device)
            await asyncio.sleep(0.5)
            probe = f"command-{uuid.uuid4().hex[:8]}"
            await db_send(stack, {"secret": probe}, probe, sub)
            await admin_frames.next_where(lambda m: m["event"] == "broadcast")  # it was sent
            leaked = []
            for frames in (old_frames, own_frames):
                # They may hear the `paired` notice itself (it is why they close), and nothing after it.
                with contextlib.suppress(AssertionError, ConnectionClosed):
                    leaked.append(
                        await frames.next_where(
                            lambda m: m["event"] == "broadcast" and m["payload"].get("event") != "paired", 1.0
                        )
                    )
            return leaked

    leaked = asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))
    assert leaked == [], f"the first token's channels still hear {sub} after pairing again: {leaked!r}"


# -- (4) unpairing refuses the token everywhere and closes its channels -----------------------------------


def test_unpairing_refuses_the_token_and_closes_its_realtime_channels(
    stack: Settings, world: World, device: str
) -> None:
    token = paired_token(stack, world, device)
    topic = f"realtime:device:{device}"
    unpaired: dict[str, Any] = {}

    def is_unpair(m: dict[str, Any]) -> bool:
        return bool(m["event"] == "broadcast" and m["payload"].get("event") == "unpair")

    def is_system_error(m: dict[str, Any]) -> bool:
        return bool(m["topic"] == topic and m["event"] == "system" and m["payload"].get("status") == "error")

    def is_close(m: dict[str, Any]) -> bool:
        return bool(m["topic"] == topic and m["event"] == "phx_close")

    async def scenario() -> None:
        async with connect(ws_url(stack, world.anon_key)) as anon_ws, connect(ws_url(stack, token)) as own_ws:
            # A channel joined with the device token on an anon socket, and one on a socket the token opened.
            joined_frames, joined = await join_private(anon_ws, topic, token)
            assert joined["status"] == "ok", joined
            own_frames, own = await join_private(own_ws, topic, None)
            assert own["status"] == "ok", own

            answer = await asyncio.to_thread(
                rpc, stack, world.tokens["admin"], "unpair_device", {"device_uuid": device}
            )
            assert answer.status_code == 200, answer.text
            unpaired.update(answer.json())
            started = time.monotonic()

            heard = await joined_frames.next_where(is_unpair)
            assert heard["topic"] == topic, heard
            assert heard["payload"]["payload"]["device_uuid"] == device, heard
            error = await joined_frames.next_where(is_system_error, timeout=2.0)
            assert "unpaired" in error["payload"]["message"], error
            await joined_frames.next_where(is_close, timeout=2.0)
            assert time.monotonic() - started < 2.5, joined_frames.seen
            # The socket itself (opened with the anon key) stays open and still answers heartbeats.
            ref = joined_frames.ref()
            await joined_frames.send("phoenix", "heartbeat", {}, ref, None)
            beat = await joined_frames.next_where(lambda m: m["topic"] == "phoenix" and m["ref"] == ref)
            assert beat["payload"]["status"] == "ok", beat

            await own_frames.next_where(is_unpair)
            with pytest.raises(ConnectionClosed):  # the socket the device's token opened is cut off
                await own_frames.next_where(lambda m: False, timeout=2.0)

            # A new socket or join with the token is refused now.
            assert await connect_status(ws_url(stack, token)) == 401
            _, again = await join_private(anon_ws, topic, token)
            assert again["status"] == "error", again

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))

    assert unpaired["uuid"] == device
    assert unpaired["paired"] is False
    assert "credential_id" not in unpaired
    assert credential_of(stack, device) is None
    refused = own_devices(stack, token)
    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == "PGRST301", refused.text
    with rest(stack, token) as client:
        ingest = client.post("/rpc/ingest_entries", json={"batch": [{"method": "GET", "host": "x.test"}]})
    assert ingest.status_code == 401, ingest.text
    user = httpx.get(
        f"{stack.auth_url}/user",
        headers={"apikey": world.anon_key, "Authorization": f"Bearer {token}"},
        timeout=15,
    )
    assert user.status_code == 401, user.text

    # Pairing again brings the device back with a new token; the old one stays dead.
    again = paired_token(stack, world, device)
    assert own_devices(stack, again).status_code == 200
    assert own_devices(stack, token).status_code == 401


def test_a_device_can_pair_again_while_still_sending_its_voided_token(
    stack: Settings, world: World, device: str
) -> None:
    """/functions/v1/pair is how an unpaired device recovers, and the code is the proof (VERIFY_JWT = False):
    a client that still sends its old, voided device token as the bearer must be able to pair with a new code.
    """
    old = paired_token(stack, world, device)
    assert rpc(stack, world.tokens["admin"], "unpair_device", {"device_uuid": device}).status_code == 200
    code = issue(stack, world, device)
    answer = httpx.post(
        f"{stack.api_url}/functions/v1/pair",
        json={"code": code},
        headers={"Authorization": f"Bearer {old}"},
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    assert own_devices(stack, answer.json()["access_token"]).status_code == 200


def test_unpair_is_an_admins(stack: Settings, world: World, device: str) -> None:
    token = paired_token(stack, world, device)
    answer = rpc(stack, world.tokens["member"], "unpair_device", {"device_uuid": device})
    assert answer.status_code == 403, answer.text
    assert own_devices(stack, token).status_code == 200  # still paired


# -- (5) pairing attempts are rate-limited per address -----------------------------------------------------


def test_pairing_attempts_are_limited_per_address(
    stack: Settings, hs256_stack: Settings, world: World, device: str
) -> None:
    """hs256_stack allows 3 attempts per address per 5 minutes; each test address is its own."""
    limited = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.61"), timeout=15)
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.62"), timeout=15)
    with limited, other:
        for attempt in range(3):
            answer = pair(hs256_stack, "WRONG-CODE0", limited)
            assert answer.status_code == 400, (attempt, answer.text)
            assert answer.json()["error"] == "invalid_code", answer.text
        over = pair(hs256_stack, "WRONG-CODE0", limited)
        assert over.status_code == 429, over.text
        assert over.json()["error"] == "over_request_rate_limit", over.text
        retry = int(over.headers["retry-after"])
        assert 0 < retry <= 300, over.headers
        # A client-supplied X-Forwarded-For does not make it another address.
        spoofed = limited.post(
            f"{hs256_stack.api_url}/functions/v1/pair",
            json={"code": "WRONG-CODE0"},
            headers={"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"},
        )
        assert spoofed.status_code == 429, spoofed.text
        # Even a good code is refused from that address now, and it is not used up by the refusal.
        code = issue(hs256_stack, world, device)
        assert pair(hs256_stack, code, limited).status_code == 429

        wrong = pair(hs256_stack, "WRONG-CODE0", other)
        assert wrong.status_code == 400, wrong.text
        assert wrong.json()["error"] == "invalid_code", wrong.text
        good = pair(hs256_stack, code, other)
        assert good.status_code == 200, good.text
    token = good.json()["access_token"]
    header, claims = claims_of(token)
    assert header["alg"] == "HS256", header  # this server signs HS256
    assert claims["iss"] == hs256_stack.auth_url, claims
    # One secret, one database: the other server takes the token too.
    for server in (hs256_stack, stack):
        rows = own_devices(server, token)
        assert rows.status_code == 200, (server.api_url, rows.text)
        assert [r["uuid"] for r in rows.json()] == [device]


# -- (6) the functions host's routing ----------------------------------------------------------------------


def test_an_unknown_function_is_404(stack: Settings) -> None:
    for path in ("nope", "nope/deeper", "Pair", "pair_", "-pair"):
        answer = httpx.post(f"{stack.api_url}/functions/v1/{path}", json={}, timeout=15)
        assert answer.status_code == 404, (path, answer.status_code, answer.text)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_pair_takes_only_post(stack: Settings, method: str) -> None:
    answer = httpx.request(method, f"{stack.api_url}/functions/v1/pair", timeout=15)
    assert answer.status_code == 405, answer.text
    assert answer.json()["error"] == "method_not_allowed", answer.text
