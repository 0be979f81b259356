"""Forged and broken tokens are refused alike by /rest/v1, /realtime/v1 and /auth/v1; good ones pass all 3.

Every row of FORGERIES runs against each surface: REST answers 401 with no rows, Realtime refuses the socket
with HTTP 401 and refuses a private join that carries the token, and Auth's GET /user answers 401. The
positive controls (a member's HS256 token and an ES256 one signed with the project's key) prove the same
requests succeed when the token is good, so a refusal below is the token's doing and nothing else's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.asyncio.client import connect

from busymate import tokens
from busymate.keys import EcKey, SigningKeys, load_or_create_ec_key
from busymate.settings import Settings
from tests.e2e.realtime_helpers import Frames, connect_status, db_send, join_private, ws_url
from tests.world import World

TIMEOUT = 30.0  # seconds for one realtime scenario
SKEW = 120  # seconds past the 30 s leeway every surface allows on exp, nbf and iat


# -- building tokens ---------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    """Base64url without padding."""
    return tokens.b64url(data)


def b64json(value: object) -> str:
    """A JOSE segment: compact JSON, base64url."""
    return b64(json.dumps(value, separators=(",", ":")).encode())


def parts_of(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header, payload and the raw signature segment of a compact JWT."""
    head, body, sig = token.split(".")
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return header, payload, sig


def hs256(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """A JWT with `header`, HMAC-SHA256 keyed with `key` (whatever the header says)."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


def es256(header: dict[str, Any], claims: dict[str, Any], key: EcKey) -> str:
    """A JWT with `header`, signed ES256 with `key`."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


@dataclass
class Forge:
    """What the forgeries are made from."""

    settings: Settings
    world: World
    ec_key: EcKey  # the project's ES256 key (the stack signs and verifies with it)
    stranger: EcKey  # another P-256 key, never published
    jwks_text: str  # /auth/v1/.well-known/jwks.json, byte for byte
    unpaired_device_token: str  # a token /functions/v1/pair issued, for a device since unpaired

    def member_claims(self, **changes: object) -> dict[str, Any]:
        """The member's claims (as world.tokens has them), fresh times, with `changes`."""
        _, claims, _ = parts_of(self.world.tokens["member"])
        now = int(time.time())
        claims.update(iat=now, exp=now + 3600)
        claims.update(changes)
        return claims

    def es256_member(self, **changes: object) -> str:
        """A member token signed the way the stack signs its sessions (ES256, the project's kid)."""
        return SigningKeys(self.settings.jwt_secret, self.ec_key, "ES256").sign(self.member_claims(**changes))

    def hs256_member(self, **changes: object) -> str:
        """A member token signed with the project secret."""
        return tokens.sign_hs256(self.member_claims(**changes), self.settings.jwt_secret)

    def device_claims(self, name: str, cred: str) -> dict[str, Any]:
        """A world device's claims with credential `cred`."""
        now = int(time.time())
        return {
            "sub": self.world.ids[name],
            "role": "device",
            "workspace_id": self.world.ids["w1"],
            "cred": cred,
            "aud": "authenticated",
            "iss": self.settings.auth_url,
            "iat": now,
            "exp": now + 3600,
        }


def _edit_payload(token: str, **changes: object) -> str:
    """`token` with its payload edited and its header and signature kept."""
    head, _, sig = token.split(".")
    _, claims, _ = parts_of(token)
    claims.update(changes)
    return f"{head}.{b64json(claims)}.{sig}"


def _pem(key: EcKey) -> bytes:
    return key.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


HS = {"alg": "HS256", "typ": "JWT"}


def _es(f: Forge, kid: str | None) -> dict[str, Any]:
    return {"alg": "ES256", "typ": "JWT"} | ({"kid": kid} if kid is not None else {})


FORGERIES: dict[str, Callable[[Forge], str]] = {
    # alg none: no signature at all, or the real signature kept under a header that says none
    "alg-none-unsigned": lambda f: f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(f.member_claims())}.",
    "alg-none-signature-kept": lambda f: (
        f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{'.'.join(f.hs256_member().split('.')[1:])}"
    ),
    "alg-None-capitalised": lambda f: (
        f"{b64json({'alg': 'None', 'typ': 'JWT'})}.{b64json(f.member_claims())}."
    ),
    "alg-missing": lambda f: hs256({"typ": "JWT"}, f.member_claims(), f.settings.jwt_secret.encode()),
    "alg-HS512": lambda f: (
        lambda si: (
            f"{si}.{b64(hmac.new(f.settings.jwt_secret.encode(), si.encode(), hashlib.sha512).digest())}"
        )
    )(f"{b64json({'alg': 'HS512', 'typ': 'JWT'})}.{b64json(f.member_claims())}"),
    # HS/ES confusion: the public key used as an HMAC secret, or an HMAC under an ES256 header
    "hs256-keyed-with-es256-public-pem": lambda f: hs256(HS, f.member_claims(), _pem(f.ec_key)),
    "hs256-keyed-with-es256-jwk-json": lambda f: hs256(
        HS, f.member_claims(), json.dumps(f.ec_key.jwk(), separators=(",", ":")).encode()
    ),
    "hs256-keyed-with-served-jwks": lambda f: hs256(HS, f.member_claims(), f.jwks_text.encode()),
    "hs256-with-kid-keyed-with-pem": lambda f: hs256(
        HS | {"kid": f.ec_key.kid}, f.member_claims(), _pem(f.ec_key)
    ),
    "es256-header-hmac-signature": lambda f: hs256(
        _es(f, f.ec_key.kid), f.member_claims(), f.settings.jwt_secret.encode()
    ),
    "es256-header-hmac-keyed-with-pem": lambda f: hs256(
        _es(f, f.ec_key.kid), f.member_claims(), _pem(f.ec_key)
    ),
    # ES256 from a key that is not the project's
    "es256-other-key-same-kid": lambda f: es256(_es(f, f.ec_key.kid), f.member_claims(), f.stranger),
    "es256-other-key-random-kid": lambda f: es256(_es(f, uuid.uuid4().hex), f.member_claims(), f.stranger),
    "es256-other-key-no-kid": lambda f: es256(_es(f, None), f.member_claims(), f.stranger),
    "es256-other-key-own-kid": lambda f: es256(_es(f, f.stranger.kid), f.member_claims(), f.stranger),
    "es256-project-key-signature-truncated": lambda f: f.es256_member()[:-4],
    # the wrong HS256 secret
    "hs256-wrong-secret": lambda f: tokens.sign_hs256(f.member_claims(), f.settings.jwt_secret + "x"),
    "hs256-empty-secret": lambda f: tokens.sign_hs256(f.member_claims(), ""),
    # times (beyond the 30 s leeway)
    "expired-hs256": lambda f: f.hs256_member(iat=int(time.time()) - 3600, exp=int(time.time()) - SKEW),
    "expired-es256": lambda f: f.es256_member(iat=int(time.time()) - 3600, exp=int(time.time()) - SKEW),
    "future-iat": lambda f: f.hs256_member(iat=int(time.time()) + SKEW),
    "future-nbf": lambda f: f.hs256_member(nbf=int(time.time()) + SKEW),
    "future-nbf-es256": lambda f: f.es256_member(nbf=int(time.time()) + SKEW),
    # payload edited, signature kept
    "role-service_role-edited-hs256": lambda f: _edit_payload(f.hs256_member(), role="service_role"),
    "role-service_role-edited-es256": lambda f: _edit_payload(f.es256_member(), role="service_role"),
    "sub-admin-edited": lambda f: _edit_payload(f.hs256_member(), sub=f.world.ids["admin"]),
    "exp-extended-edited": lambda f: _edit_payload(
        f.hs256_member(iat=int(time.time()) - 3600, exp=int(time.time()) - SKEW), exp=int(time.time()) + 3600
    ),
    # revoked device credentials: well signed, but the credential is not the device's any more
    "device-unpaired-via-rpc": lambda f: f.unpaired_device_token,
    "device-stale-cred-hs256": lambda f: tokens.sign_hs256(
        f.device_claims("d1", str(uuid.uuid4())), f.settings.jwt_secret
    ),
    "device-stale-cred-es256": lambda f: SigningKeys(f.settings.jwt_secret, f.ec_key, "ES256").sign(
        f.device_claims("d1", str(uuid.uuid4()))
    ),
    "device-never-paired": lambda f: f.world.tokens["d_unpaired"],
    # malformed
    "two-parts": lambda f: ".".join(f.hs256_member().split(".")[:2]),
    "one-part": lambda f: f.hs256_member().split(".")[0],
    "four-parts": lambda f: f.hs256_member() + ".AAAA",
    "trailing-dot": lambda f: f.hs256_member() + ".",
    "garbage-base64": lambda f: "!!!$$$.@@@***.~~~%%%",
    "garbage-base64-header": lambda f: "%%%." + ".".join(f.hs256_member().split(".")[1:]),
    "non-json-header": lambda f: (lambda rest: f"{b64(b'not json at all')}.{rest}")(
        ".".join(f.hs256_member().split(".")[1:])
    ),
    "json-array-header": lambda f: f"{b64json(['HS256'])}.{'.'.join(f.hs256_member().split('.')[1:])}",
    "non-json-payload-hmac-ok": lambda f: (
        lambda si: (
            f"{si}.{b64(hmac.new(f.settings.jwt_secret.encode(), si.encode(), hashlib.sha256).digest())}"
        )
    )(f"{b64json(HS)}.{b64(b'role=service_role')}"),
    "exp-not-a-number": lambda f: f.hs256_member(exp=str(int(time.time()) + 3600)),
    "fake-opaque-secret-key": lambda f: f"sb_secret_{uuid.uuid4().hex}",
    "empty-string": lambda f: "",
    "three-empty-parts": lambda f: "..",
}

GOOD: dict[str, Callable[[Forge], str]] = {
    "member-hs256": lambda f: f.world.tokens["member"],
    "member-es256": lambda f: f.es256_member(),
}


# -- the fixture -------------------------------------------------------------------------------------------


def bearer(token: str) -> str:
    """The Authorization value for `token` (an empty token leaves `Bearer` alone: a header value has no
    trailing space on the wire)."""
    return f"Bearer {token}".rstrip()


def _client(settings: Settings, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=settings.api_url,
        headers={"apikey": tokens.anon_key(settings.jwt_secret), "Authorization": bearer(token)},
        timeout=15,
    )


def _rpc(settings: Settings, token: str, name: str, args: dict[str, object]) -> Any:
    with _client(settings, token) as client:
        answer = client.post(f"/rest/v1/rpc/{name}", json=args)
    assert answer.status_code in (200, 204), (name, answer.status_code, answer.text)
    return answer.json() if answer.content else None


@pytest.fixture(scope="module")
def forge(stack: Settings, world: World) -> Iterator[Forge]:
    """The project's key, a stranger's key, the served JWKS and a paired-then-unpaired device's token."""
    admin = world.tokens["admin"]
    device = _rpc(
        stack,
        admin,
        "create_device",
        {"workspace_id": world.ids["w1"], "name": f"forgery-{uuid.uuid4().hex[:8]}", "source": "proxy"},
    )
    try:
        issued = _rpc(stack, admin, "issue_device_activation", {"device_uuid": device["uuid"]})
        paired = httpx.post(f"{stack.api_url}/functions/v1/pair", json={"code": issued["code"]}, timeout=15)
        assert paired.status_code == 200, paired.text
        device_token = paired.json()["access_token"]
        with _client(stack, device_token) as client:  # the token was good before the unpairing
            before = client.get("/rest/v1/devices", params={"select": "uuid"})
        assert before.status_code == 200, before.text
        assert [row["uuid"] for row in before.json()] == [device["uuid"]]
        _rpc(stack, admin, "unpair_device", {"device_uuid": device["uuid"]})
        jwks = httpx.get(f"{stack.auth_url}/.well-known/jwks.json", timeout=15)
        assert jwks.status_code == 200, jwks.text
        yield Forge(
            stack,
            world,
            load_or_create_ec_key(stack.state_dir),
            EcKey.from_private(ec.generate_private_key(ec.SECP256R1())),
            jwks.text,
            device_token,
        )
    finally:
        _rpc(stack, admin, "delete_device", {"device_uuid": device["uuid"]})


# -- /rest/v1 ----------------------------------------------------------------------------------------------


def _rest_devices(f: Forge, token: str) -> httpx.Response:
    with _client(f.settings, token) as client:
        return client.get("/rest/v1/devices", params={"select": "uuid"})


@pytest.mark.parametrize("case", FORGERIES)
def test_rest_refuses_the_token(forge: Forge, case: str) -> None:
    answer = _rest_devices(forge, FORGERIES[case](forge))
    assert answer.status_code == 401, (answer.status_code, answer.text)
    assert answer.headers["www-authenticate"].startswith("Bearer"), answer.headers
    body = answer.json()
    assert isinstance(body, dict), body
    for name in ("d1", "d2", "d_unpaired"):
        assert forge.world.ids[name] not in answer.text, answer.text


@pytest.mark.parametrize("case", GOOD)
def test_rest_accepts_a_good_token(forge: Forge, case: str) -> None:
    answer = _rest_devices(forge, GOOD[case](forge))
    assert answer.status_code == 200, (answer.status_code, answer.text)
    uuids = {row["uuid"] for row in answer.json()}
    assert {forge.world.ids["d1"], forge.world.ids["d_unpaired"]} <= uuids
    assert forge.world.ids["d2"] not in uuids


# -- /realtime/v1 ------------------------------------------------------------------------------------------


def _is_probe(event: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["event"] == "broadcast" and m["payload"].get("event") == event


@pytest.mark.parametrize("case", FORGERIES)
def test_realtime_refuses_the_token_as_apikey(forge: Forge, case: str) -> None:
    status = asyncio.run(asyncio.wait_for(connect_status(ws_url(forge.settings, FORGERIES[case](forge))), 20))
    assert status == 401, f"the socket was {'opened' if status is None else f'answered {status}'}"


@pytest.mark.parametrize("case", FORGERIES)
def test_realtime_refuses_the_token_in_a_join(forge: Forge, case: str) -> None:
    """A bad access_token in a private join gets an error reply, and that socket hears nothing sent there
    afterwards, while a member's socket on the same topic does (so the message was really sent)."""
    settings, world = forge.settings, forge.world
    sub = f"ws:{world.ids['w1']}"
    topic = f"realtime:{sub}"
    url = ws_url(settings, world.anon_key)
    token = FORGERIES[case](forge)

    async def scenario() -> None:
        async with connect(url) as good_ws, connect(url) as bad_ws:
            good_reply = (await join_private(good_ws, topic, world.tokens["member"]))[1]
            assert good_reply["status"] == "ok", good_reply
            bad_reply = (await join_private(bad_ws, topic, token))[1]
            assert bad_reply["status"] == "error", bad_reply
            probe = f"probe-{uuid.uuid4().hex[:12]}"
            await db_send(settings, {"case": case}, probe, sub)
            await Frames(good_ws).next_where(_is_probe(probe))
            await Frames(bad_ws).nothing_where(lambda m: m["event"] == "broadcast", 0.5)

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


@pytest.mark.parametrize("case", [c for c in FORGERIES if c != "empty-string"])
def test_realtime_closes_a_channel_refreshed_with_the_token(forge: Forge, case: str) -> None:
    """A member's channel sent the token as its new access_token is closed with a system error, and hears
    nothing sent there afterwards. (An empty access_token is ignored, as Realtime does, so it is not here.)"""
    settings, world = forge.settings, forge.world
    sub = f"ws:{world.ids['w1']}"
    topic = f"realtime:{sub}"
    url = ws_url(settings, world.anon_key)
    token = FORGERIES[case](forge)

    async def scenario() -> None:
        async with connect(url) as good_ws, connect(url) as refreshed_ws:
            assert ((await join_private(good_ws, topic, world.tokens["member"]))[1])["status"] == "ok"
            assert ((await join_private(refreshed_ws, topic, world.tokens["member"]))[1])["status"] == "ok"
            frames = Frames(refreshed_ws)
            await frames.send(topic, "access_token", {"access_token": token}, frames.ref(), None)
            error = await frames.next_where(lambda m: m["event"] == "system")
            assert error["payload"]["status"] == "error", error
            await frames.next_where(lambda m: m["event"] == "phx_close" and m["topic"] == topic)
            probe = f"probe-{uuid.uuid4().hex[:12]}"
            await db_send(settings, {"case": case}, probe, sub)
            await Frames(good_ws).next_where(_is_probe(probe))
            await frames.nothing_where(lambda m: m["event"] == "broadcast", 0.5)

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


@pytest.mark.parametrize("case", GOOD)
def test_realtime_accepts_a_good_token(forge: Forge, case: str) -> None:
    settings, world = forge.settings, forge.world
    sub = f"ws:{world.ids['w1']}"
    token = GOOD[case](forge)

    async def scenario() -> None:
        async with (
            connect(ws_url(settings, token)) as own_ws,
            connect(ws_url(settings, world.anon_key)) as anon_ws,
        ):
            own = (await join_private(own_ws, f"realtime:{sub}", None))[1]  # the connect-time token decides
            assert own["status"] == "ok", own
            joined = (await join_private(anon_ws, f"realtime:{sub}", token))[1]
            assert joined["status"] == "ok", joined
            probe = f"probe-{uuid.uuid4().hex[:12]}"
            await db_send(settings, {"case": case}, probe, sub)
            await Frames(own_ws).next_where(_is_probe(probe))
            await Frames(anon_ws).next_where(_is_probe(probe))

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


# -- /auth/v1 ----------------------------------------------------------------------------------------------


def _auth_user(f: Forge, token: str) -> httpx.Response:
    return httpx.get(
        f"{f.settings.auth_url}/user",
        headers={"apikey": f.world.anon_key, "Authorization": bearer(token)},
        timeout=15,
    )


@pytest.mark.parametrize("case", FORGERIES)
def test_auth_refuses_the_token(forge: Forge, case: str) -> None:
    answer = _auth_user(forge, FORGERIES[case](forge))
    assert answer.status_code == 401, (answer.status_code, answer.text)
    expected = {"no_authorization"} if case == "empty-string" else {"bad_jwt"}
    assert answer.json().get("error_code") in expected, answer.text
    assert "email" not in answer.json(), answer.text


@pytest.fixture
def signed_in(forge: Forge) -> Iterator[str]:
    """A real user signed in with a password: its access token (the stack signs ES256)."""
    settings = forge.settings
    service = forge.world.service_key
    admin_headers = {"apikey": service, "Authorization": f"Bearer {service}"}
    email = f"forgery-{uuid.uuid4().hex[:10]}@test.busymate.local"
    password = f"pw-{uuid.uuid4().hex}"
    created = httpx.post(
        f"{settings.auth_url}/admin/users",
        headers=admin_headers,
        json={"email": email, "password": password, "email_confirm": True},
        timeout=15,
    )
    assert created.status_code == 200, created.text
    user_id = created.json()["id"]
    try:
        session = httpx.post(
            f"{settings.auth_url}/token",
            params={"grant_type": "password"},
            headers={"apikey": forge.world.anon_key},
            json={"email": email, "password": password},
            timeout=15,
        )
        assert session.status_code == 200, session.text
        yield str(session.json()["access_token"])
    finally:
        gone = httpx.delete(f"{settings.auth_url}/admin/users/{user_id}", headers=admin_headers, timeout=15)
        assert gone.status_code == 200, gone.text


def test_auth_accepts_a_real_session_signed_either_way(forge: Forge, signed_in: str) -> None:
    header, claims, _ = parts_of(signed_in)
    assert header["alg"] == "ES256", header
    assert header["kid"] == forge.ec_key.kid, header
    es = _auth_user(forge, signed_in)
    assert es.status_code == 200, es.text
    assert es.json()["id"] == claims["sub"]
    # The same session's claims under the project secret are as good.
    hs = _auth_user(forge, tokens.sign_hs256(claims, forge.settings.jwt_secret))
    assert hs.status_code == 200, hs.text
    assert hs.json()["id"] == claims["sub"]
    # ... and the forgeries of that very session are not.
    edited = _auth_user(forge, _edit_payload(signed_in, role="service_role"))
    assert edited.status_code == 401, edited.text
    stranger = _auth_user(forge, es256(header, claims, forge.stranger))
    assert stranger.status_code == 401, stranger.text


@pytest.mark.parametrize("case", GOOD)
def test_auth_gets_past_the_signature_with_a_good_world_token(forge: Forge, case: str) -> None:
    """World tokens have no auth.sessions row: GoTrue says 403 session_not_found, not 401 (the JWT passed)."""
    answer = _auth_user(forge, GOOD[case](forge))
    assert answer.status_code == 403, (answer.status_code, answer.text)
    assert answer.json()["error_code"] == "session_not_found", answer.text
