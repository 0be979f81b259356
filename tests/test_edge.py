"""gateway/edge.py on its own: each of the project's keys maps to its role, each refused credential gives its
kind, and a token over the size cap is refused before it is decoded."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import orjson
import pytest

from busymate import tokens
from busymate.gateway.edge import (
    MAX_JWT_BYTES,
    TIME_KINDS,
    Edge,
    EdgeError,
    EdgeKind,
    JwtVerifier,
    ProjectKeys,
)
from busymate.gateway.rest.errors import edge_error
from busymate.keys import SigningKeys

SECRET = "edge-test-secret-" + "x" * 32
PUBLISHABLE = "sb_publishable_edgetest"
SECRET_KEY = "sb_secret_edgetest"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, object], payload: dict[str, object]) -> str:
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(payload))}.{_b64(b'sig')}"


@pytest.fixture
def edge() -> Edge:
    return Edge(ProjectKeys(SECRET, PUBLISHABLE, SECRET_KEY), JwtVerifier(SECRET))


def _claims(edge: Edge, apikey: str, bearer: str | None = None) -> dict[str, object]:
    headers = {"apikey": apikey}
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    return edge.request_claims(headers, "")


def test_each_key_form_maps_to_its_role(edge: Edge) -> None:
    keys = edge.keys
    assert _claims(edge, tokens.anon_key(SECRET))["role"] == "anon"
    assert _claims(edge, tokens.service_role_key(SECRET))["role"] == "service_role"
    assert _claims(edge, PUBLISHABLE) == {"role": "anon", "iss": "supabase"}
    assert _claims(edge, SECRET_KEY) == {"role": "service_role", "iss": "supabase"}
    # an opaque key as the bearer stands for the apikey, as Kong rewrites it
    assert _claims(edge, PUBLISHABLE, SECRET_KEY)["role"] == "anon"
    # Kong's rewrite for GoTrue and Realtime: the opaque keys stand for the legacy JWTs
    assert keys.legacy(PUBLISHABLE) == keys.anon_key == tokens.anon_key(SECRET)
    assert keys.legacy(SECRET_KEY) == keys.service_key == tokens.service_role_key(SECRET)
    assert keys.legacy("eyJ.not.a-key") == "eyJ.not.a-key"
    assert all(k in keys for k in (PUBLISHABLE, SECRET_KEY, keys.anon_key, keys.service_key))
    assert "sb_publishable_other" not in keys


def test_a_user_token_in_authorization_wins_over_the_key(edge: Edge) -> None:
    user = tokens.sign_hs256({"role": "authenticated", "sub": "u1", "exp": time.time() + 60}, SECRET)
    assert _claims(edge, PUBLISHABLE, user)["sub"] == "u1"
    assert edge.request_claims({"apikey": PUBLISHABLE, "authorization": "Bearer x.y"}, "", verify=False) == {}


def _kind(edge: Edge, headers: dict[str, str], query: str = "") -> EdgeKind:
    with pytest.raises(EdgeError) as refused:
        edge.request_claims(headers, query)
    return refused.value.kind


def test_each_failure_gives_its_kind(edge: Edge) -> None:
    anon = tokens.anon_key(SECRET)

    def with_token(token: str) -> EdgeKind:
        return _kind(edge, {"apikey": anon, "authorization": f"Bearer {token}"})

    now = time.time()
    assert _kind(edge, {}) == "no_apikey"
    assert _kind(edge, {"apikey": "sb_publishable_other"}) == "unknown_key"
    assert _kind(edge, {}, "apikey=nope") == "unknown_key"
    assert with_token("sb_secret_other") == "unknown_key"
    assert with_token("") == "missing"
    assert with_token("a.b") == "malformed"
    assert with_token("!!.!!.!!") == "malformed"
    assert with_token(_unsigned({"alg": "none"}, {"role": "service_role"})) == "unsupported_alg"
    assert with_token(_unsigned({"alg": "RS256"}, {"role": "service_role"})) == "unsupported_alg"
    assert with_token(_unsigned({"alg": "HS256"}, {"role": "service_role"})) == "bad_signature"
    assert with_token(tokens.sign_hs256({"role": "service_role"}, "another secret")) == "bad_signature"
    assert with_token(tokens.sign_hs256({"role": "anon", "exp": now - 3600}, SECRET)) == "expired"
    assert with_token(tokens.sign_hs256({"role": "anon", "nbf": now + 3600}, SECRET)) == "not_yet_valid"
    assert with_token(tokens.sign_hs256({"role": "anon", "iat": now + 3600}, SECRET)) == "issued_in_future"
    assert with_token(tokens.sign_hs256({"role": "anon", "exp": "soon"}, SECRET)) == "bad_claim"
    assert with_token(tokens.sign_hs256({"role": "anon", "aud": 7}, SECRET)) == "bad_claim"


def test_an_es256_token_is_checked_against_the_published_key(tmp_path: Path) -> None:
    signing = SigningKeys.for_project(SECRET, tmp_path, "ES256")
    verifier = JwtVerifier(SECRET, (signing.ec_key,))
    assert verifier.verify(signing.sign({"role": "anon", "exp": time.time() + 60}))["role"] == "anon"
    with pytest.raises(EdgeError) as refused:
        JwtVerifier(SECRET).verify(signing.sign({"role": "anon"}))
    assert refused.value.kind == "bad_signature"


class _Counting(JwtVerifier):
    decoded = 0

    def _decode(self, token: str) -> dict[str, object]:
        self.decoded += 1
        return super()._decode(token)


def test_a_token_over_the_cap_is_refused_before_decoding() -> None:
    verifier = _Counting(SECRET)
    padding = "p" * MAX_JWT_BYTES
    big = tokens.sign_hs256({"role": "service_role", "pad": padding}, SECRET)
    with pytest.raises(EdgeError) as refused:
        verifier.verify(big)
    assert refused.value.kind == "too_large"
    assert verifier.decoded == 0
    verifier.verify(tokens.sign_hs256({"role": "anon"}, SECRET))
    assert verifier.decoded == 1


def test_rest_turns_kinds_into_postgrest_codes() -> None:
    assert {edge_error(EdgeError(kind, "m")).code for kind in TIME_KINDS} == {"PGRST303"}
    kinds: tuple[EdgeKind, ...] = ("missing", "too_large", "malformed", "unsupported_alg", "bad_signature")
    for kind in kinds:
        error = edge_error(EdgeError(kind, "m", "d"))
        assert (error.status, error.code, error.details, error.www_authenticate) == (
            401,
            "PGRST301",
            "d",
            "m",
        )
