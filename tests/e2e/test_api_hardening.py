"""The API server against what anyone with the anon key can send (issue 15, items 3, 4 and 11).

- Rate limits and recorded addresses use the TCP peer: a different X-Forwarded-For on every attempt buys no
  extra attempts and is not what auth.sessions.ip records, unless the operator names the proxy in front
  (BUSYMATE_TRUSTED_PROXIES), and then only the right-most address that proxy did not add counts.
- Inputs that used to be a 500 with a 140 KB traceback (deep select= and or= trees, numbers with thousands of
  digits, JSON nested a thousand deep) are 4xx in PostgREST's shape; oversized heads and tokens are refused;
  api.log rotates and does not grow with repeated bad requests.
- With Postgres down, REST, auth and functions answer 503 with Retry-After at once, and work again on their
  own once Postgres is back (on a throw-away cluster of this file's own, never the session's).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from busymate import tokens
from busymate.settings import Settings
from busymate.stack import ephemeral, migrate
from busymate.stack.api_process import ApiServer
from busymate.stack.postgres import Cluster, free_port
from tests.conftest import PROJECT_DIR, second_api_server
from tests.e2e.test_oauth_mcp import client_document
from tests.world import World

PASSWORD = "correct-horse-7"
LIMIT = 5  # sign-in and pairing attempts per address per 5 minutes on this file's servers
ATTEMPTS = 35  # what the attack sent
HANG_GUARD = 10.0  # seconds: a request that takes longer has hung (a guard, not a timing assert)
POSTGREST_KEYS = {"code", "details", "hint", "message"}


# -- helpers -------------------------------------------------------------------------------------------------


def anon(settings: Settings) -> dict[str, str]:
    return {"apikey": tokens.anon_key(settings.jwt_secret)}


def bound(address: str, **headers: str) -> httpx.Client:
    """An HTTP client whose connections come from `address`, a loopback address of the test's choosing."""
    return httpx.Client(
        transport=httpx.HTTPTransport(local_address=address), headers=headers, timeout=HANG_GUARD
    )


def make_user(settings: Settings) -> str:
    """A confirmed user with PASSWORD, made through the admin API; its email."""
    email = f"hardening-{uuid.uuid4().hex[:10]}@example.com"
    made = httpx.post(
        f"{settings.auth_url}/admin/users",
        headers={
            **anon(settings),
            "authorization": f"Bearer {tokens.service_role_key(settings.jwt_secret)}",
        },
        json={"email": email, "password": PASSWORD, "email_confirm": True},
        timeout=HANG_GUARD,
    )
    assert made.status_code == 200, made.text
    return email


def sign_in(client: httpx.Client, settings: Settings, email: str, password: str = PASSWORD) -> httpx.Response:
    """POST /auth/v1/token?grant_type=password, as the clients send it."""
    return client.post(
        f"{settings.auth_url}/token?grant_type=password",
        headers=anon(settings),
        json={"email": email, "password": password},
    )


def pair(client: httpx.Client, settings: Settings) -> httpx.Response:
    """POST /functions/v1/pair with a code that does not exist."""
    return client.post(f"{settings.api_url}/functions/v1/pair", json={"code": "WRONG-CODE0"})


def session_ip(settings: Settings, access_token: str) -> str | None:
    """auth.sessions.ip of the session `access_token` belongs to."""
    body = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    with psycopg.connect(settings.db_url()) as conn:
        row = conn.execute(
            "select host(ip) from auth.sessions where id = %s", (claims["session_id"],)
        ).fetchone()
    assert row is not None, claims
    return None if row[0] is None else str(row[0])


def postgrest_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is PostgREST's error `code` with `status`; its body."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    doc: dict[str, Any] = response.json()
    assert set(doc) == POSTGREST_KEYS, doc
    assert doc["code"] == code, doc
    return doc


# -- (3) rate limits and recorded addresses use the TCP peer -------------------------------------------------


@pytest.fixture(scope="module")
def limited(stack: Settings) -> Iterator[Settings]:
    """A second API server with tight limits (LIMIT sign-ins and pairings per address), no trusted proxy."""
    with second_api_server(stack, "hardening-limited", auth_rate_limit=LIMIT, pair_rate_limit=LIMIT) as (
        settings,
        _,
    ):
        yield settings


@pytest.fixture(scope="module")
def proxied(stack: Settings) -> Iterator[Settings]:
    """A second API server behind a proxy the operator names: 127.0.0.1 (and only it) is trusted."""
    with second_api_server(
        stack,
        "hardening-proxied",
        auth_rate_limit=LIMIT,
        pair_rate_limit=LIMIT,
        trusted_proxies=("127.0.0.1/32",),
    ) as (settings, _):
        yield settings


def test_a_new_x_forwarded_for_on_every_sign_in_attempt_buys_no_attempts(limited: Settings) -> None:
    email = make_user(limited)
    statuses = []
    with bound("127.0.0.1") as client:
        for attempt in range(ATTEMPTS):
            answer = client.post(
                f"{limited.auth_url}/token?grant_type=password",
                headers={**anon(limited), "X-Forwarded-For": f"203.0.113.{attempt}"},
                json={"email": email, "password": "wrong-password"},
            )
            statuses.append(answer.status_code)
    assert statuses[:LIMIT] == [400] * LIMIT, statuses
    assert set(statuses[LIMIT:]) == {429}, statuses


def test_a_new_x_forwarded_for_on_every_pairing_attempt_buys_no_attempts(limited: Settings) -> None:
    statuses = []
    with bound("127.0.0.1") as client:  # uvicorn used to believe X-Forwarded-For from 127.0.0.1
        for attempt in range(ATTEMPTS):
            answer = client.post(
                f"{limited.api_url}/functions/v1/pair",
                headers={"X-Forwarded-For": f"198.51.100.{attempt}", "X-Real-IP": f"198.51.100.{attempt}"},
                json={"code": "WRONG-CODE0"},
            )
            statuses.append(answer.status_code)
    assert statuses[:LIMIT] == [400] * LIMIT, statuses
    assert set(statuses[LIMIT:]) == {429}, statuses


def test_a_session_records_the_tcp_peer_not_the_header(stack: Settings) -> None:
    email = make_user(stack)
    with bound("127.0.0.1", **{"X-Forwarded-For": "203.0.113.77"}) as client:
        answer = sign_in(client, stack, email)
    assert answer.status_code == 200, answer.text
    assert session_ip(stack, answer.json()["access_token"]) == "127.0.0.1"


def test_behind_a_trusted_proxy_the_forwarded_address_counts(proxied: Settings) -> None:
    email = make_user(proxied)
    # The proxy (127.0.0.1) appends the address it saw; what the client wrote before it is not believed.
    with bound("127.0.0.1", **{"X-Forwarded-For": "6.6.6.6, 198.51.100.7"}) as client:
        answer = sign_in(client, proxied, email)
    assert answer.status_code == 200, answer.text
    assert session_ip(proxied, answer.json()["access_token"]) == "198.51.100.7"
    # Limits follow the forwarded address: one client is limited, another behind the same proxy is not.
    with bound("127.0.0.1", **{"X-Forwarded-For": "198.51.100.8"}) as first:
        statuses = [sign_in(first, proxied, email, "wrong-password").status_code for _ in range(LIMIT + 1)]
    assert statuses == [400] * LIMIT + [429], statuses
    with bound("127.0.0.1", **{"X-Forwarded-For": "198.51.100.9"}) as second:
        assert sign_in(second, proxied, email, "wrong-password").status_code == 400
    # A peer that is not the trusted proxy cannot pick its address.
    with bound("127.0.0.73", **{"X-Forwarded-For": "198.51.100.10"}) as direct:
        answer = sign_in(direct, proxied, email)
    assert answer.status_code == 200, answer.text
    assert session_ip(proxied, answer.json()["access_token"]) == "127.0.0.73"


# -- (4) what anyone can send is a 4xx in PostgREST's shape --------------------------------------------------


DIGITS = "9" * 5000
BAD_QUERIES = {
    "select nested 900 deep": ("select=" + "a(" * 900 + "id" + ")" * 900, 400, "PGRST100"),
    "or nested 2000 deep": ("or=(" + "or(" * 2000 + "name.eq.x" + ")" * 2000 + ")", 400, "PGRST100"),
    "and nested 40 deep": ("and=(" + "and(" * 40 + "name.eq.x" + ")" * 40 + ")", 400, "PGRST100"),
    "a JSON path of 5000 steps": ("name" + "->a" * 5000 + "=eq.1", 400, "PGRST100"),
    "limit of 5000 digits": (f"limit={DIGITS}", 416, "PGRST103"),
    "offset of 5000 digits": (f"offset={DIGITS}", 416, "PGRST103"),
    "limit past bigint": ("limit=9223372036854775808", 416, "PGRST103"),
    "an embed's limit of 5000 digits": (f"select=*,workspaces(*)&workspaces.limit={DIGITS}", 416, "PGRST103"),
}


@pytest.mark.parametrize("query", BAD_QUERIES.values(), ids=list(BAD_QUERIES))
def test_a_hostile_query_string_is_a_client_error(stack: Settings, query: tuple[str, int, str]) -> None:
    text, status, code = query
    answer = httpx.get(f"{stack.api_url}/rest/v1/devices?{text}", headers=anon(stack), timeout=HANG_GUARD)
    postgrest_error(answer, status, code)


@pytest.mark.parametrize("value", [f"0-{DIGITS}", f"{DIGITS}-", f"items={DIGITS}-{DIGITS}", f"0-{2**63}"])
def test_a_range_header_with_a_giant_number_is_416(stack: Settings, value: str) -> None:
    answer = httpx.get(
        f"{stack.api_url}/rest/v1/devices", headers={**anon(stack), "Range": value}, timeout=HANG_GUARD
    )
    postgrest_error(answer, 416, "PGRST103")


DEEP = b"[" * 1000 + b"]" * 1000
DEEP_BODIES = {
    "an array 1000 deep": ("POST", "devices", DEEP),
    "a row holding an array 1000 deep": ("POST", "devices", b'{"name": ' + DEEP + b"}"),
    "an update 1000 deep": ("PATCH", "devices?name=eq.x", b'{"name": ' + DEEP + b"}"),
    "an rpc argument 1000 deep": ("POST", "rpc/has_capability", b'{"section": ' + DEEP + b', "action": 1}'),
}


@pytest.mark.parametrize("request_", DEEP_BODIES.values(), ids=list(DEEP_BODIES))
def test_a_json_body_nested_a_thousand_deep_is_a_client_error(
    stack: Settings, world: World, request_: tuple[str, str, bytes]
) -> None:
    method, path, content = request_
    answer = httpx.request(
        method,
        f"{stack.api_url}/rest/v1/{path}",
        headers={
            **anon(stack),
            "authorization": f"Bearer {world.tokens['member']}",
            "content-type": "application/json",
        },
        content=content,
        timeout=HANG_GUARD,
    )
    doc = postgrest_error(answer, 400, "PGRST102")
    assert doc["message"] == "Empty or invalid json", doc


def test_a_token_over_16_kb_is_refused_before_it_is_decoded(stack: Settings, world: World) -> None:
    real = world.tokens["member"]
    head, claims, signature = real.split(".")
    # A token shaped like ours, its claims padded past 16 KB: refused for its size, 401 with the usual header.
    padded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    padded["pad"] = "x" * 20_000
    big = ".".join(
        (head, base64.urlsafe_b64encode(json.dumps(padded).encode()).decode().rstrip("="), signature)
    )
    answer = httpx.get(
        f"{stack.api_url}/rest/v1/devices",
        headers={**anon(stack), "authorization": f"Bearer {big}"},
        timeout=HANG_GUARD,
    )
    doc = postgrest_error(answer, 401, "PGRST301")
    assert "16384 bytes" in doc["details"], doc
    assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"'), answer.headers
    user = httpx.get(
        f"{stack.auth_url}/user",
        headers={**anon(stack), "authorization": f"Bearer {big}"},
        timeout=HANG_GUARD,
    )
    assert user.status_code == 401, user.text
    assert user.json()["error_code"] == "bad_jwt", user.text


def _raw_request(settings: Settings, head_size: int) -> bytes:
    """Send a GET whose headers total `head_size` bytes on a plain socket; what came back before the server
    closed (b"" when it closed without a word)."""
    filler = b"X-Filler: " + b"a" * head_size + b"\r\n"
    request = (
        f"GET /rest/v1/devices HTTP/1.1\r\nHost: {settings.api_host}\r\nConnection: close\r\n"
        f"apikey: {tokens.anon_key(settings.jwt_secret)}\r\n".encode()
        + filler
        + b"\r\n"
    )
    answer = b""
    with socket.create_connection((settings.api_host, settings.api_port), timeout=HANG_GUARD) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def test_request_headers_past_the_cap_are_431(stack: Settings) -> None:
    answer = _raw_request(stack, 100 * 1024)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["message"].startswith(
        "Request header fields too large"
    )
    # 32 MB never reaches the application: 431, or the connection closed while the client was still writing.
    huge = _raw_request(stack, 32 * 1024 * 1024)
    assert huge == b"" or huge.startswith(b"HTTP/1.1 431 "), huge[:200]
    # Headers under the cap still work.
    fine = _raw_request(stack, 8 * 1024)
    assert fine.startswith(b"HTTP/1.1 401 "), fine[:200]  # the anon key may not read devices


AUTH_BAD = {
    "sign-up data 1000 deep": ("POST", "signup", b'{"email":"deep@example.com","password":"long-enough",'
                               b'"data":{"x":' + DEEP + b"}}"),
    "a page of 5000 digits": ("GET", f"admin/users?page={DIGITS}", b""),
    "a ban of 5000 digits": ("PUT", "admin/users/{user}", b'{"ban_duration":"' + DIGITS.encode() + b'h"}'),
    "a ban past the year 9999": ("PUT", "admin/users/{user}", b'{"ban_duration":"999999999h"}'),
    "metadata 1000 deep": ("PUT", "admin/users/{user}", b'{"user_metadata":{"x":' + DEEP + b"}}"),
}  # fmt: skip


@pytest.mark.parametrize("request_", AUTH_BAD.values(), ids=list(AUTH_BAD))
def test_hostile_auth_requests_are_client_errors(stack: Settings, request_: tuple[str, str, bytes]) -> None:
    method, path, content = request_
    if "{user}" in path:
        email = make_user(stack)
        with psycopg.connect(stack.db_url()) as conn:
            row = conn.execute("select id from auth.users where email = %s", (email,)).fetchone()
        assert row is not None
        path = path.replace("{user}", str(row[0]))
    answer = httpx.request(
        method,
        f"{stack.auth_url}/{path}",
        headers={
            **anon(stack),
            "authorization": f"Bearer {tokens.service_role_key(stack.jwt_secret)}",
            "content-type": "application/json",
        },
        content=content,
        timeout=HANG_GUARD,
    )
    assert answer.status_code == 400, answer.text[:300]
    assert set(answer.json()) >= {"code", "error_code", "msg"}, answer.text[:300]


def test_repeated_bad_requests_do_not_grow_the_log(stack: Settings) -> None:
    with second_api_server(stack, "hardening-log") as (settings, server):
        before = server.log_file.stat().st_size
        with httpx.Client(base_url=settings.api_url, headers=anon(settings), timeout=HANG_GUARD) as client:
            for _ in range(10):
                for text, _status, _code in BAD_QUERIES.values():
                    assert client.get(f"/rest/v1/devices?{text}").status_code < 500
                assert client.get("/rest/v1/devices", headers={"Range": f"0-{DIGITS}"}).status_code < 500
                for method, path, content in DEEP_BODIES.values():
                    sent = client.request(
                        method,
                        f"/rest/v1/{path}",
                        content=content,
                        headers={"content-type": "application/json"},
                    )
                    assert sent.status_code < 500
        grown = server.log_file.stat().st_size - before
    assert grown < 2048, server.log_file.read_text(errors="replace")[-3000:]


def test_the_log_rotates_by_size(stack: Settings) -> None:
    with second_api_server(stack, "hardening-rotate", api_log_max_bytes=2048) as (_, server):
        # Every schema reload writes a line: enough of them fill the log many times over.
        with psycopg.connect(stack.db_url(), autocommit=True) as conn:
            for _ in range(60):
                conn.execute("notify pgrst, 'reload schema'")
        rotated = server.log_file.with_name("api.log.1")
        for _ in range(300):  # until the reloads are logged (a deadline, not a timing assert)
            if rotated.exists():
                break
            time.sleep(0.1)
        assert rotated.exists(), sorted(p.name for p in server.log_file.parent.iterdir())
        assert server.log_file.stat().st_size <= 2048
        assert rotated.stat().st_size <= 2048
        assert not server.log_file.with_name("api.log.4").exists()  # three old files at most


# -- (11) Postgres down: 503 with Retry-After at once, and back on its own -----------------------------------


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Cluster, ApiServer]]:
    """A throw-away cluster (migrated) with its own API server: this file stops and starts its Postgres."""
    state: Path = tmp_path_factory.mktemp("outage") / ".busymate"
    with ephemeral.ephemeral_cluster(PROJECT_DIR, state) as settings:
        migrate.reset(settings)
        settings = settings.with_overrides(api_port=free_port())
        server = ApiServer(settings)
        server.start()
        try:
            yield settings, Cluster(settings), server
        finally:
            server.stop()


def _unavailable(answer: httpx.Response) -> None:
    """503 with Retry-After, in the answer's own shape."""
    assert answer.status_code == 503, (answer.status_code, answer.text[:300])
    assert int(answer.headers["retry-after"]) >= 0, answer.headers


def test_with_postgres_down_the_api_answers_503_at_once_and_recovers_by_itself(
    own_cluster: tuple[Settings, Cluster, ApiServer],
) -> None:
    settings, cluster, server = own_cluster
    email = make_user(settings)
    http = httpx.Client(headers=anon(settings), timeout=HANG_GUARD)  # the timeout is the hang guard
    rest = f"{settings.api_url}/rest/v1/devices?select=uuid"
    assert http.get(rest).status_code == 401  # up: the anon key may not read devices
    assert sign_in(http, settings, email).status_code == 200
    cluster.stop()
    try:
        for _ in range(3):  # the request that finds the connection dead, and those after it
            answer = http.get(rest)
            _unavailable(answer)
            doc = answer.json()
            assert set(doc) == POSTGREST_KEYS, doc
            assert doc["code"] in ("PGRST000", "PGRST001"), doc  # PostgREST's connection errors
        signing_in = sign_in(http, settings, email)
        _unavailable(signing_in)
        assert signing_in.json()["error_code"] == "unexpected_failure", signing_in.text
        _unavailable(pair(http, settings))
        # A failure that repeats while the database is away (the schema listener retrying every second) logs
        # its traceback once, then a line with a count.
        for _ in range(150):  # a deadline, not a timing assert
            if "3 times, traceback logged the first time" in server.log_file.read_text(errors="replace"):
                break
            time.sleep(0.1)
        log = server.log_file.read_text(errors="replace")
        assert "3 times, traceback logged the first time" in log, log[-3000:]
        assert log.count("Traceback (most recent call last)") <= 8, log[-3000:]
    finally:
        cluster.start()
    # Back without restarting the API server: the first answers may still be 503 while it notices.
    for _ in range(150):
        answer = http.get(rest)
        if answer.status_code != 503:
            break
        time.sleep(0.1)
    assert answer.status_code == 401, answer.text
    again = sign_in(http, settings, email)
    assert again.status_code == 200, again.text
    assert (
        http.get(rest, headers={"authorization": f"Bearer {again.json()['access_token']}"}).status_code == 200
    )
    http.close()


# -- (10) redirect URIs are parsed strictly ------------------------------------------------------------------

# Each registers as loopback (or https) to a lax parser, while a browser may go somewhere else.
BAD_REDIRECTS = [
    "http://evil.example\\@127.0.0.1/cb",  # WHATWG reads "\" as "/": the host is evil.example
    "http://evil.example%5C@127.0.0.1/cb",
    "http://user@127.0.0.1/cb",
    "http://127.0.0.1\\.evil.example/cb",
    "http://127.0.0.1/cb#fragment",
    "http://127.0.0.1 /cb",
    "http://127.0.0.1:99999/cb",
    "https://good.example\\@evil.example/cb",
]
GOOD_REDIRECTS = [
    "http://127.0.0.1:53682/callback",
    "http://localhost:8080/cb",
    "http://[::1]:9/cb",
    "https://app.example.com/cb",
    "com.example.app:/oauth2redirect",
]


def _authorize(settings: Settings, client_id: str, redirect_uri: str) -> httpx.Response:
    """GET /oauth/authorize without PKCE: an error the server would redirect to a registered URI."""
    return httpx.get(
        f"{settings.auth_url}/oauth/authorize",
        params={"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": "s"},
        follow_redirects=False,
        timeout=HANG_GUARD,
    )


@pytest.mark.parametrize("uri", BAD_REDIRECTS)
def test_registration_refuses_a_redirect_uri_parsers_disagree_on(stack: Settings, uri: str) -> None:
    answer = httpx.post(
        f"{stack.auth_url}/oauth/clients/register",
        json={"client_name": "hostile", "redirect_uris": [uri], "token_endpoint_auth_method": "none"},
        timeout=HANG_GUARD,
    )
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_redirect_uri", body  # RFC 7591 §3.2.2
    assert isinstance(body["error_description"], str), body
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("uri", GOOD_REDIRECTS)
def test_registration_keeps_accepting_proper_redirect_uris(stack: Settings, uri: str) -> None:
    answer = httpx.post(
        f"{stack.auth_url}/oauth/clients/register",
        json={"client_name": "proper", "redirect_uris": [uri], "token_endpoint_auth_method": "none"},
        timeout=HANG_GUARD,
    )
    assert answer.status_code == 201, answer.text
    redirected = _authorize(stack, answer.json()["client_id"], uri)
    assert redirected.status_code == 302, redirected.text
    assert redirected.headers["location"].startswith(uri + "?error=invalid_request"), redirected.headers


def test_a_metadata_document_naming_such_a_uri_never_yields_a_location(stack: Settings) -> None:
    hostile = BAD_REDIRECTS[0]
    document = {"client_name": "Hostile", "redirect_uris": [hostile]}
    with client_document(lambda url: {"client_id": url, **document}) as document_url:
        answer = _authorize(stack, document_url, hostile)
    assert answer.status_code == 400, answer.text
    assert "location" not in answer.headers, answer.headers
    # Nor does a client id that is itself such a URL get fetched and trusted.
    sneaky = _authorize(stack, document_url.replace("http://", "http://evil.example\\@"), hostile)
    assert sneaky.status_code == 400
    assert "location" not in sneaky.headers


# -- the sweep: nothing a client sends to /auth/v1, /functions/v1 or /realtime/v1 is a 5xx -------------------

SWEEP = settings(
    max_examples=int(os.environ.get("BUSYMATE_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GIANT = st.integers(19, 6000).map(lambda n: "9" * n)
NESTED = st.integers(200, 1100).flatmap(
    lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n])
)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    GIANT,
    st.sampled_from(
        ["none", "24h", "password", "refresh_token", "authorization_code", "S256", "https://x.y/"]
    ),
)
value = st.recursive(
    scalar,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=6,
)
KEYS = ["email", "password", "data", "refresh_token", "grant_type", "code", "code_verifier", "client_id",
        "redirect_uri", "redirect_uris", "token_endpoint_auth_method", "grant_types", "response_types",
        "client_name", "user_metadata", "app_metadata", "ban_duration", "email_confirm", "should_soft_delete",
        "messages", "payload", "topic", "event", "private", "page", "per_page", "scope", "resource", "action",
        "authorization_id", "csrf", "state", "code_challenge", "code_challenge_method",
        "response_type"]  # fmt: skip
ROUTES = [
    ("GET", "/auth/v1/health"), ("GET", "/auth/v1/settings"), ("GET", "/auth/v1/.well-known/jwks.json"),
    ("POST", "/auth/v1/signup"), ("POST", "/auth/v1/token"), ("GET", "/auth/v1/user"),
    ("PUT", "/auth/v1/user"), ("POST", "/auth/v1/logout"), ("GET", "/auth/v1/admin/users"),
    ("GET", "/auth/v1/admin/users/{id}"), ("PUT", "/auth/v1/admin/users/{id}"),
    ("DELETE", "/auth/v1/admin/users/{id}"), ("POST", "/auth/v1/oauth/clients/register"),
    ("GET", "/auth/v1/oauth/authorize"), ("POST", "/auth/v1/oauth/authorize"),
    ("POST", "/auth/v1/oauth/token"),
    ("GET", "/.well-known/oauth-authorization-server/auth/v1"), ("PATCH", "/auth/v1/{id}"),
    ("POST", "/functions/v1/pair"), ("GET", "/functions/v1/pair"), ("POST", "/functions/v1/{id}"),
    ("POST", "/realtime/v1/api/broadcast"), ("POST", "/realtime/v1/api/broadcast/{id}/events/{id}"),
    ("GET", "/realtime/v1/api/broadcast"),
]  # fmt: skip
CONTENT_TYPES = [None, "application/json", "application/x-www-form-urlencoded", "text/plain", "x/y"]


@st.composite
def sweep_request(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes, str]:
    """A method and path, query parameters, a body and who sends it."""
    method, path = draw(st.sampled_from(ROUTES))
    segment = draw(st.one_of(st.uuids().map(str), st.text(max_size=10), GIANT))
    path = path.replace("{id}", quote(segment, safe=""))
    params = draw(st.dictionaries(st.sampled_from(KEYS), st.one_of(scalar.map(str), GIANT), max_size=4))
    kind = draw(st.sampled_from(["json", "json", "form", "nested", "raw"]))
    if kind == "json":
        obj = draw(st.dictionaries(st.sampled_from(KEYS), value, max_size=5))
        body = json.dumps(obj).encode()
    elif kind == "form":
        body = "&".join(
            f"{k}={v}" for k, v in draw(st.dictionaries(st.sampled_from(KEYS), scalar.map(str))).items()
        ).encode()
    elif kind == "nested":
        key = draw(st.sampled_from(KEYS))
        body = ('{"' + key + '":' + draw(NESTED) + "}").encode()
    else:
        body = draw(st.binary(max_size=40))
    who = draw(st.sampled_from(["anon", "service", "member", "garbage", "none"]))
    return method, path, params, body, who


def test_the_sweep_finds_no_server_error_outside_rest(stack: Settings, world: World) -> None:
    bearer = {
        "anon": tokens.anon_key(stack.jwt_secret),
        "service": tokens.service_role_key(stack.jwt_secret),
        "member": world.tokens["member"],
        "garbage": "a.b.c",
    }
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=stack.api_url, timeout=HANG_GUARD) as client:

        @SWEEP
        @given(sweep_request(), st.sampled_from(CONTENT_TYPES))
        def run(request_: tuple[str, str, dict[str, str], bytes, str], ctype: str | None) -> None:
            method, path, params, body, who = request_
            headers = anon(stack) if who != "none" else {}
            if who in bearer:
                headers["authorization"] = f"Bearer {bearer[who]}"
            if ctype is not None:
                headers["content-type"] = ctype
            if method in ("GET", "DELETE"):
                body = b""
            answer = client.request(method, path, params=params, content=body, headers=headers)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            assert answer.status_code < 500, (
                f"{method} {answer.request.url} {body[:300]!r} -> {answer.text[:500]}"
            )

        run()
    assert any(code < 300 for code in statuses), statuses  # some requests were served, not all refused


@pytest.mark.parametrize("depth", [250, 600])
def test_a_broadcast_over_http_nested_too_deep_is_refused_before_anyone_gets_it(
    stack: Settings, depth: int
) -> None:
    payload = b'{"payload": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
    answer = httpx.post(
        f"{stack.api_url}/realtime/v1/api/broadcast/room-{uuid.uuid4().hex}/events/deep",
        headers={**anon(stack), "content-type": "application/json"},
        content=payload,
        timeout=HANG_GUARD,
    )
    assert answer.status_code == 422, answer.text
    assert "nested more than" in answer.json()["errors"]["messages"][0], answer.text
