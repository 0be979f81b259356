"""BusyBro's redaction (functions/busybro/tools/redact.py) and inspect_requests' row shaping, without a
stack: a known secret never survives in any carrier captured traffic has, and text that holds no secret is
unchanged."""

from __future__ import annotations

import asyncio
import string
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from busymate.functions.busybro.core import Identity, ToolContext, ToolRefused
from busymate.functions.busybro.tools.inspect import flow, hostname
from busymate.functions.busybro.tools.redact import (
    is_sensitive_name,
    redact_body,
    redact_headers,
    redact_json,
    redact_pairs,
    redact_text,
    redact_url,
)
from busymate.functions.busybro.tools.registry import MAX_RESULT_CHARS, run_tool

JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkJ1c3kifQ"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmUtZm9yLXRoZS10ZXN0"
)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "Cookie",
        "Set-Cookie",
        "X-Api-Key",
        "x-amz-security-token",
        "X-CSRF-Token",
        "X-Session-Id",
        "access_token",
        "refreshToken",
        "client_secret",
        "password",
        "new_passwd",
        "apiKey",
        "api_key",
        "code",
        "key",
        "sig",
        "signature",
        "X-Auth-User",
        "authCode",
        "credentials",
        "user[password]",
        "session",
        "sid",
        "otp",
    ],
)
def test_sensitive_names(name: str) -> None:
    assert is_sensitive_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "Content-Type",
        "Accept",
        "User-Agent",
        "author",
        "page",
        "country_code",
        "status_code",
        "primary_key_name",
        "username",
        "email",
        "state",
        "id",
        "Location",
    ],
)
def test_ordinary_names(name: str) -> None:
    assert not is_sensitive_name(name)


def test_urls_keep_their_shape_and_lose_their_secrets() -> None:
    url = "https://bob:hunter2@api.x.com/v1/cb?access_token=abc123&page=2&sig=zz#id_token=tok9&state=ok"
    assert redact_url(url) == (
        "https://bob:<redacted len=7>@api.x.com/v1/cb?access_token=<redacted len=6>&page=2"
        "&sig=<redacted len=2>#id_token=<redacted len=4>&state=ok"
    )
    assert redact_url(f"https://x.com/reset/{JWT}") == f"https://x.com/reset/<redacted len={len(JWT)}>"
    plain = "https://api.example.com/v2/users/123e4567-e89b-12d3-a456-426614174000/orders?page=3&sort=desc"
    assert redact_url(plain) == plain


def test_headers_keep_names_and_lengths() -> None:
    headers = [
        ["Authorization", "Bearer abc.def"],
        ["Cookie", "<redacted len=40>"],
        ["X-Session-Id", "s1"],
        ["Accept", "application/json"],
        ["Location", "https://app.x/cb#access_token=secret99"],
        ["X-Debug", f"user token is {JWT}"],
    ]
    assert redact_headers(headers) == [
        ["Authorization", "<redacted len=14>"],
        ["Cookie", "<redacted len=40>"],
        ["X-Session-Id", "<redacted len=2>"],
        ["Accept", "application/json"],
        ["Location", "https://app.x/cb#access_token=<redacted len=8>"],
        ["X-Debug", f"user token is <redacted len={len(JWT)}>"],
    ]
    assert redact_headers({"X-Api-Key": "k-1"}) == [["X-Api-Key", "<redacted len=3>"]]
    assert redact_headers(None) == []


def test_json_is_redacted_at_any_depth_with_keys_and_structure_kept() -> None:
    value: Any = {
        "user": {"name": "bob", "age": 41, "password": "pw", "tokens": [{"refresh_token": "r1"}]},
        "auth": {"kind": "oauth", "expires_in": 3600, "ok": True},
        "items": [{"note": f"see {JWT}"}, {"callback": "https://x.io/cb?code=c0de&lang=en"}],
        "count": 2,
    }
    assert redact_json(value) == {
        "user": {
            "name": "bob",
            "age": 41,
            "password": "<redacted len=2>",
            "tokens": [{"refresh_token": "<redacted len=2>"}],
        },
        "auth": {"kind": "<redacted len=5>", "expires_in": "<redacted len=4>", "ok": True},
        "items": [
            {"note": f"see <redacted len={len(JWT)}>"},
            {"callback": "https://x.io/cb?code=<redacted len=4>&lang=en"},
        ],
        "count": 2,
    }


def test_bodies_by_kind() -> None:
    assert redact_body('{"password": "pw1", "user": "bob"}') == '{"password":"<redacted len=3>","user":"bob"}'
    # A truncated JSON body cannot be parsed: its "name": value pairs are still found.
    assert redact_body('{"user": "bob", "access_token": "abc12345", "more": "x') == (
        '{"user": "bob", "access_token": "<redacted len=8>", "more": "x'
    )
    assert redact_body("grant_type=password&username=bob&password=s3cret&token=t0k") == (
        "grant_type=password&username=bob&password=<redacted len=6>&token=<redacted len=3>"
    )
    assert redact_body("a=1&b=2", "application/x-www-form-urlencoded") == "a=1&b=2"
    assert (
        redact_body('{"data": "{\\"secret\\": \\"inner\\"}"}')
        == '{"data":"{\\"secret\\": \\"<redacted len=5>\\"}"}'
    )
    assert redact_pairs("sid=abc; theme=dark", ";") == "sid=<redacted len=3>; theme=dark"


def test_secrets_anywhere_in_text() -> None:
    cases = {
        f"token: {JWT} end": JWT,
        "Authorization: Bearer abcdefghijkLMNOP1234": "abcdefghijkLMNOP1234",
        "use Basic Ym9iOmh1bnRlcjI= here": "Ym9iOmh1bnRlcjI=",
        "key sk-ant-api03-abcdefghijklmnopqrstuv in env": "sk-ant-api03-abcdefghijklmnopqrstuv",
        "gh ghp_abcdefghijklmnopqrstuvwxyz0123 x": "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "aws AKIAIOSFODNN7EXAMPLE y": "AKIAIOSFODNN7EXAMPLE",
        "opaque aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1 end": "aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1",
        "hex 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08": (
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        ),
        "then ?session=xyz&x=1": "xyz",
    }
    for text, secret in cases.items():
        assert redact_text(text) == text.replace(secret, f"<redacted len={len(secret)}>"), text


ORDINARY = [
    "The quick brown fox jumps over the lazy dog.",
    "GET /v1/users/42/orders?page=2&sort=desc HTTP/1.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "application/json; charset=utf-8",
    "2026-12-03T11:12:19.123456+00:00",
    "request 123e4567-e89b-12d3-a456-426614174000 failed with status 401",
    "the token endpoint refreshes sessions every hour",
    "Bearer authentication is described in RFC 6750",
    "max-age=31536000; includeSubDomains; preload",
    "no-cache, no-store, must-revalidate",
    '{"name": "bob", "state": "CA", "country_code": "US", "count": 3}',
    "some-long-product-name-2024-edition-blue",
    "<redacted len=12>",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact_text(text) == text
    assert redact_body(text) == text or text.startswith("{")


_SECRET = st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=6, max_size=64)
_CARRIERS = [
    lambda s: redact_url(f"https://api.x.com/cb?access_token={s}&page=2"),
    lambda s: redact_url(f"https://app.x.com/cb#id_token={s}"),
    lambda s: redact_body(orjson.dumps({"user": {"password": s}, "ok": 1}).decode()),
    lambda s: redact_body(orjson.dumps([{"meta": {"refresh_token": s}}]).decode()),
    lambda s: redact_body(f'{{"user": "bob", "client_secret": "{s}", "cut": "'),
    lambda s: redact_body(f"grant_type=refresh_token&token={s}&client_id=app"),
    lambda s: str(redact_headers([["Authorization", f"Bearer {s}"], ["Cookie", f"sid={s}"]])),
    lambda s: str(redact_headers([["X-Api-Key", s], ["X-Session-Id", s], ["Set-Cookie", f"a={s}; Path=/"]])),
    lambda s: redact_pairs(f"sid={s}; theme=dark", ";"),
    lambda s: redact_text(f"Authorization: Bearer {s}1A"),
]


@settings(max_examples=150, deadline=None)
@given(secret=_SECRET, carrier=st.sampled_from(range(len(_CARRIERS))))
def test_a_known_secret_never_survives(secret: str, carrier: int) -> None:
    assume(secret.strip("-_.~"))
    assume(secret not in "https://api.x.com/cb page=2 grant_type=refresh_token client_id=app")
    assume(secret not in "user bob ok meta cut theme=dark sid Path=/ Authorization Bearer Cookie X-Api-Key")
    secret = secret if carrier != len(_CARRIERS) - 1 else secret + "1A"
    assert secret not in _CARRIERS[carrier](secret)


@settings(max_examples=150, deadline=None)
@given(
    payload=st.recursive(
        st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(["a", "name", "password", "token", "apiKey"]), inner, max_size=4),
        ),
        max_leaves=20,
    )
)
def test_json_keeps_its_structure(payload: Any) -> None:
    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shape(item) for item in value]
        return None

    redacted = redact_json(payload)
    assert shape(redacted) == shape(payload)
    assert redact_json(redacted) == redacted


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_lowercase + " ,.;:!?()'\n", max_size=200))
def test_prose_is_never_touched(text: str) -> None:
    assert redact_text(text) == text


def test_hostname_guides_the_model_and_takes_urls() -> None:
    with pytest.raises(ToolRefused, match=r"api\.doordash\.com, identity\.doordash\.com"):
        hostname("doordash")
    with pytest.raises(ToolRefused, match="not a valid hostname"):
        hostname("bad host.com")
    assert hostname("https://API.Example.com:8443/v1/login?x=1") == "api.example.com"
    assert hostname(" identity.example.com. ") == "identity.example.com"


def test_a_flow_is_redacted_and_its_bodies_cut() -> None:
    row = {
        "id": "e1",
        "method": "POST",
        "url": "https://api.x.com/login?code=abc",
        "request_headers": [["Content-Type", "application/json"], ["Authorization", "<redacted len=20>"]],
        "request_body": orjson.dumps({"password": "pw", "pad": "x" * 5000}).decode(),
        "request_body_size": 6000,
        "request_body_truncated": True,
        "response_headers": [],
        "response_body": None,
        "response_body_base64": "AAEC",
        "response_body_size": 3,
    }
    shaped = flow(row, 1000, "phone")
    assert shaped["url"] == "https://api.x.com/login?code=<redacted len=3>"
    assert len(shaped["request"]["body"]) == 1000
    assert shaped["request"]["body"].startswith('{"password":"<redacted len=2>"')
    assert "more characters not shown" in shaped["request"]["body_note"]
    assert "kept only part of a 6000-byte body" in shaped["request"]["body_note"]
    binary: dict[str, Any] = {"headers": [], "body": None, "body_note": "binary body of 3 bytes, not shown"}
    assert shaped["response"] == binary


class _FakeDb:
    """Just enough of AsyncApi for inspect_requests: the RPC answers `rows`, selects answer nothing."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.calls: list[str] = []

    async def rpc(self, name: str, args: dict[str, object]) -> Any:
        self.calls.append(name)
        return self.rows

    async def select(self, table: str, params: dict[str, str]) -> list[dict[str, Any]]:
        return []


def test_twenty_large_flows_fit_in_one_whole_tool_result() -> None:
    secret = "Zq9" + "x" * 40
    body = orjson.dumps({"password": secret, "blob": [{"k": i, "v": "y" * 200} for i in range(60)]}).decode()
    row = {
        "id": "e",
        "method": "POST",
        "url": f"https://api.x.com/login?token={secret}",
        "request_headers": [[f"X-Header-{i}", "v" * 40] for i in range(30)],
        "request_body": body,
        "response_headers": [["Content-Type", "application/json"]],
        "response_body": body,
    }
    db = _FakeDb([dict(row, id=f"e{i}") for i in range(20)])
    ctx = ToolContext(db=db, identity=Identity(user_id="u"))  # type: ignore[arg-type]
    result = asyncio.run(run_tool("inspect_requests", {"host": "api.x.com", "limit": 20}, ctx))
    assert not result.is_error, result.content
    assert len(result.content) <= MAX_RESULT_CHARS
    payload = orjson.loads(result.content)  # whole: not cut by the registry's cap
    # 30 headers a flow: not all 20 fit; the oldest are left out, and the result says how many.
    assert 5 <= payload["count"] < 20
    assert payload["left_out"].startswith(f"{20 - payload['count']} older flows did not fit")
    assert all("body_note" in item["request"] for item in payload["untrusted_captured_traffic"])
    assert secret not in result.content
    assert db.calls == ["inspect_requests"]
    # A bare word never reaches the database.
    refused = asyncio.run(run_tool("inspect_requests", {"host": "acme"}, ctx))
    assert refused.is_error
    assert db.calls == ["inspect_requests"]
