"""/auth/v1 pieces that need no database: sign-up switched off, both GoTrue error shapes, the limiter."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest

from busymate.gateway.auth.errors import AuthError, HttpRequest
from busymate.gateway.auth.gotrue import AuthApi
from busymate.gateway.auth.ratelimit import RateLimiter
from busymate.gateway.auth.store import AuthStore
from busymate.gateway.edge import JwtVerifier
from busymate.keys import SigningKeys
from busymate.settings import Settings

PROJECT = Path(__file__).resolve().parent.parent


def api(tmp_path: Path, **changes: object) -> AuthApi:
    settings = Settings(project_dir=PROJECT, state_dir=tmp_path).with_overrides(**changes)
    keys = SigningKeys.for_project(settings.jwt_secret, tmp_path, "ES256")
    # No store: these paths answer before touching the database (a call would fail loudly).
    return AuthApi(settings, cast(AuthStore, None), keys, JwtVerifier(settings.jwt_secret, (keys.ec_key,)))


def signup(auth: AuthApi, version: str | None) -> tuple[int, object]:
    headers = {"x-supabase-api-version": version} if version else {}
    body = b'{"email": "a@example.com", "password": "secret123"}'
    answer = asyncio.run(auth.handle(HttpRequest("POST", "/signup", "", headers, body, "127.0.0.1")))
    return answer.status, answer.body


def test_sign_up_can_be_switched_off(tmp_path: Path) -> None:
    auth = api(tmp_path, auth_signup=False)
    assert signup(auth, "2024-01-01") == (
        422,
        {"code": "signup_disabled", "message": "Signups not allowed for this instance"},
    )
    # Without the API-version header: GoTrue's older shape.
    assert signup(auth, None) == (
        422,
        {"code": 422, "error_code": "signup_disabled", "msg": "Signups not allowed for this instance"},
    )


def test_the_rate_limiter_counts_per_address() -> None:
    limiter = RateLimiter(2)
    limiter.take("10.0.0.1")
    limiter.take("10.0.0.1")
    with pytest.raises(AuthError) as refused:
        limiter.take("10.0.0.1")
    assert refused.value.status == 429
    assert refused.value.error_code == "over_request_rate_limit"
    assert int(refused.value.headers["retry-after"]) > 0
    limiter.take("10.0.0.2")  # another address is untouched


def test_the_es256_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    first = SigningKeys.for_project("s" * 40, tmp_path, "ES256")
    again = SigningKeys.for_project("s" * 40, tmp_path, "ES256")
    assert first.ec_key.kid == again.ec_key.kid
    assert (tmp_path / "jwt-es256.pem").stat().st_mode & 0o777 == 0o600
    verifier = JwtVerifier("s" * 40, (again.ec_key,))
    assert verifier.verify(first.sign({"role": "anon", "exp": 9_999_999_999}))["role"] == "anon"
    assert first.jwks()["keys"][0]["kid"] == first.ec_key.kid  # type: ignore[index]
