"""/auth/v1 driven by the unchanged supabase-py 2.34.1 (supabase_auth, postgrest, realtime) against the stack.

The GoTrue wire contract the clients expect (GoTrue's own source at supabase/auth bc32168e): sign-up and
password sign-in return a session whose access token carries GoTrue's claims and is signed by a key the JWKS
publishes; refresh tokens rotate, with the reuse interval and replay detection; GET/PUT /user; sign-out
scopes; the admin user API for the service role only; and the one token then works on /rest/v1 (RLS) and
/realtime/v1 (private channels). `hs256_stack` proves HS256 signing and the per-address sign-in limit.

Every test makes its own users (unique addresses) and deletes them through the admin API when it ends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from realtime.types import BroadcastPayload
from supabase_auth import SyncGoTrueAdminAPI
from supabase_auth.errors import AuthApiError, AuthError, AuthWeakPasswordError
from supabase_auth.types import AdminUserAttributes, AuthResponse, Session

from busymate import tokens
from busymate.settings import Settings
from supabase import AsyncClientOptions, Client, ClientOptions, acreate_client, create_client
from tests.e2e.realtime_helpers import Inbox, db_send, joined, options, refused, run, unique
from tests.world import World

PASSWORD = "correct-horse-7"
NEW_PASSWORD = "battery-staple-8"
# What both clients send, so errors come back as {"code": "<error_code>", "message": ...}.
API_VERSION = {"X-Supabase-Api-Version": "2024-01-01"}
REUSE_INTERVAL = 10  # seconds: GoTrue's refresh_token_reuse_interval (the Supabase CLI's default)
UNAUTHORIZED = "Unauthorized: You do not have permissions to read from this Channel topic: "
AUTH_ADMIN = "supabase_auth_admin"  # the auth server's login, owner of auth.sessions and auth.refresh_tokens


# -- helpers -------------------------------------------------------------------------------------------------


def new_email() -> str:
    """An address no other test (or earlier run) uses."""
    return f"py-{uuid.uuid4().hex[:8]}@example.com"


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert isinstance(value, dict), value
    return value


def header_of(token: str) -> dict[str, Any]:
    """A JWT's header, not verified."""
    return _segment(token, 0)


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's claims, not verified."""
    return _segment(token, 1)


def anon_key(settings: Settings) -> str:
    return tokens.anon_key(settings.jwt_secret)


def service_key(settings: Settings) -> str:
    return tokens.service_role_key(settings.jwt_secret)


def make_client(
    settings: Settings, key: str, http: httpx.Client | None = None, token: str | None = None
) -> Client:
    """supabase-py on `settings`' API server: the session in memory, no background refresh; acting with
    `token` (the Authorization header every sub-client sends) when given."""
    options = ClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=http)
    if token is not None:
        options.headers["Authorization"] = f"Bearer {token}"
    return create_client(settings.api_url, key, options)


def bound(address: str) -> httpx.Client:
    """An HTTP client whose connections come from a given loopback address (for per-address limits)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address))


def code_of(error: AuthError) -> str | None:
    """An auth error's code as a plain string (supabase_auth's ErrorCode literal lacks some GoTrue codes,
    such as refresh_token_not_found and refresh_token_already_used)."""
    return None if error.code is None else str(error.code)


def session_of(response: AuthResponse) -> Session:
    assert response.session is not None, response
    assert response.user is not None, response
    assert response.user.id == response.session.user.id
    return response.session


def sign_in(
    settings: Settings, email: str, password: str = PASSWORD, http: httpx.Client | None = None
) -> tuple[Client, Session]:
    """A fresh anon client, signed in with email and password."""
    client = make_client(settings, anon_key(settings), http)
    session = session_of(client.auth.sign_in_with_password({"email": email, "password": password}))
    return client, session


def auth_get(settings: Settings, path: str, token: str) -> httpx.Response:
    """GET /auth/v1/<path> with a bearer token, as the clients send it."""
    return httpx.get(
        f"{settings.auth_url}/{path}",
        headers={"apikey": anon_key(settings), "Authorization": f"Bearer {token}", **API_VERSION},
    )


def rest_get(settings: Settings, token: str, path: str = "devices?select=uuid,name") -> httpx.Response:
    """GET /rest/v1/<path> with the anon key and a bearer token."""
    return httpx.get(
        f"{settings.api_url}/rest/v1/{path}",
        headers={"apikey": anon_key(settings), "Authorization": f"Bearer {token}"},
    )


def gotrue_error(response: httpx.Response, status: int, code: str) -> None:
    """The response is GoTrue's error `code` with `status`, in the 2024-01-01 shape."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    assert response.headers["x-sb-error-code"] == code


def db(
    settings: Settings, query: str, params: tuple[Any, ...] = (), *, user: str = "postgres"
) -> list[tuple[Any, ...]]:
    """One committed statement (as postgres unless told); its rows if it returns any."""
    with psycopg.connect(settings.db_url(user=user), autocommit=True) as conn:
        cursor = conn.execute(query.encode(), params)
        return cursor.fetchall() if cursor.description else []


def refresh_token_digest(token: str) -> bytes:
    """How auth.refresh_tokens stores a token."""
    return hashlib.sha256(token.encode()).digest()


class Users:
    """Users a test creates: made through the admin API of one stack, all deleted when the test ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin = make_client(settings, service_key(settings))
        self.ids: list[str] = []

    def created(self, user_id: str) -> str:
        """Remember a user made some other way (sign-up), to delete it at the end."""
        self.ids.append(user_id)
        return user_id

    def make(self, password: str = PASSWORD, user_metadata: dict[str, Any] | None = None) -> tuple[str, str]:
        """A confirmed email user with `password`: (id, email)."""
        email = new_email()
        attrs: AdminUserAttributes = {"email": email, "password": password, "email_confirm": True}
        if user_metadata is not None:
            attrs["user_metadata"] = user_metadata
        user = self.admin.auth.admin.create_user(attrs).user
        return self.created(user.id), email

    def delete_all(self) -> None:
        for user_id in self.ids:
            try:
                self.admin.auth.admin.delete_user(user_id)
            except AuthApiError as exc:
                if code_of(exc) != "user_not_found":  # a test that deleted its user already
                    raise


@pytest.fixture
def users(stack: Settings) -> Iterator[Users]:
    made = Users(stack)
    yield made
    made.delete_all()


# -- 1. sign-up ----------------------------------------------------------------------------------------------


def test_sign_up_returns_a_session_whose_es256_token_carries_gotrue_claims(
    stack: Settings, users: Users
) -> None:
    client = make_client(stack, anon_key(stack))
    email = new_email()
    data = {"name": "Ada", "plan": "pro"}
    response = client.auth.sign_up({"email": email, "password": PASSWORD, "options": {"data": data}})
    session = session_of(response)
    user = session.user
    users.created(user.id)

    assert user.email == email
    assert user.aud == "authenticated"
    assert user.role == "authenticated"
    assert user.email_confirmed_at is not None  # the local stack auto-confirms, like the Supabase CLI
    assert user.app_metadata == {"provider": "email", "providers": ["email"]}
    assert data.items() <= user.user_metadata.items()
    assert client.auth.get_session() == session  # the client keeps what sign-up returned
    assert session.token_type == "bearer"
    assert session.refresh_token

    header = header_of(session.access_token)
    claims = claims_of(session.access_token)
    assert header["alg"] == "ES256"
    assert header["typ"] == "JWT"
    assert claims["sub"] == user.id
    assert claims["role"] == "authenticated"
    assert claims["aud"] == "authenticated"
    assert claims["email"] == email
    assert claims["iss"] == stack.auth_url
    uuid.UUID(claims["session_id"])
    assert claims["app_metadata"]["provider"] == "email"
    assert data.items() <= claims["user_metadata"].items()
    assert claims["amr"][0]["method"] == "password"
    assert isinstance(claims["iat"], int)
    assert isinstance(claims["exp"], int)
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["exp"] - claims["iat"] == stack.jwt_expiry
    assert session.expires_at == claims["exp"]

    # The key that signed it is published, without the apikey (Kong leaves the JWKS open) ...
    jwks = httpx.get(f"{stack.auth_url}/.well-known/jwks.json")
    assert jwks.status_code == 200
    keys = {key["kid"]: key for key in jwks.json()["keys"]}
    assert header["kid"] in keys
    public = keys[header["kid"]]
    assert (public["kty"], public["crv"], public["alg"]) == ("EC", "P-256", "ES256")
    assert "d" not in public
    # ... and verifies it: independently (PyJWT) and through the client's own get_claims.
    verified = jwt.decode(
        session.access_token,
        jwt.PyJWK(public).key,
        algorithms=["ES256"],
        audience="authenticated",
        issuer=stack.auth_url,
    )
    assert verified == claims
    checked = client.auth.get_claims()
    assert checked is not None
    assert checked["claims"]["sub"] == user.id
    assert checked["headers"]["kid"] == header["kid"]


def test_sign_up_refuses_a_taken_address(stack: Settings, users: Users) -> None:
    email = new_email()
    first = make_client(stack, anon_key(stack)).auth.sign_up({"email": email, "password": PASSWORD})
    users.created(session_of(first).user.id)
    for again in (email, email.upper()):
        with pytest.raises(AuthApiError) as taken:
            make_client(stack, anon_key(stack)).auth.sign_up({"email": again, "password": NEW_PASSWORD})
        assert (taken.value.status, code_of(taken.value)) == (422, "user_already_exists")
        assert taken.value.message == "User already registered"
    assert db(stack, "select count(*) from auth.users where lower(email) = %s", (email,)) == [(1,)]


def test_sign_up_refuses_a_weak_password(stack: Settings) -> None:
    email = new_email()
    with pytest.raises(AuthWeakPasswordError) as weak:
        make_client(stack, anon_key(stack)).auth.sign_up({"email": email, "password": "abc"})
    assert (weak.value.status, code_of(weak.value)) == (422, "weak_password")
    assert weak.value.reasons == ["length"]
    assert db(stack, "select count(*) from auth.users where email = %s", (email,)) == [(0,)]


def test_session_responses_carry_the_users_identities(stack: Settings, users: Users) -> None:
    # GoTrue loads the user with its identities for /signup and /token (findUser is Eager), so the session's
    # user lists its `email` identity. With autoconfirm off an empty list means "already registered", which
    # apps test for (`user.identities.length === 0`), so an empty list here misleads them.
    email = new_email()
    client = make_client(stack, anon_key(stack))
    signed_up = session_of(client.auth.sign_up({"email": email, "password": PASSWORD}))
    user_id = users.created(signed_up.user.id)
    _, signed_in = sign_in(stack, email)
    refreshed = session_of(client.auth.refresh_session())
    for how, session in (("sign-up", signed_up), ("sign-in", signed_in), ("refresh", refreshed)):
        identities = [(i.provider, i.user_id, i.id) for i in session.user.identities or []]
        assert identities == [("email", user_id, user_id)], how
    got = client.auth.get_user()
    assert got is not None
    assert [(i.provider, i.user_id) for i in got.user.identities or []] == [("email", user_id)]


# -- 2. password sign-in -------------------------------------------------------------------------------------


def test_password_sign_in_and_refusals_that_do_not_tell_which_part_was_wrong(
    stack: Settings, users: Users
) -> None:
    user_id, email = users.make()
    client, session = sign_in(stack, email.upper())  # addresses compare case-insensitively
    assert session.user.id == user_id
    assert session.user.email == email
    assert session.user.last_sign_in_at is not None
    claims = claims_of(session.access_token)
    assert (claims["sub"], claims["email"], claims["role"]) == (user_id, email, "authenticated")
    assert client.auth.get_session() == session

    refusals = []
    for address, password in ((email, "wrong-password"), (new_email(), PASSWORD)):
        with pytest.raises(AuthApiError) as refused_sign_in:
            make_client(stack, anon_key(stack)).auth.sign_in_with_password(
                {"email": address, "password": password}
            )
        error = refused_sign_in.value
        refusals.append((error.status, code_of(error), error.message))
    assert refusals == [(400, "invalid_credentials", "Invalid login credentials")] * 2


# -- 3. refresh-token rotation -------------------------------------------------------------------------------


def test_refresh_rotates_allows_the_parent_and_a_replay_ends_the_session(
    stack: Settings, users: Users
) -> None:
    _, email = users.make()
    client, first = sign_in(stack, email)
    session_id = claims_of(first.access_token)["session_id"]
    rt1 = first.refresh_token

    second = session_of(client.auth.refresh_session(rt1))
    rt2 = second.refresh_token
    assert rt2 != rt1
    assert second.access_token != first.access_token
    assert claims_of(second.access_token)["session_id"] == session_id
    assert client.auth.get_session() == second

    # A client that failed to save rt2 retries with rt1, the parent of the current token: still a session.
    retried = session_of(make_client(stack, anon_key(stack)).auth.refresh_session(rt1))
    assert claims_of(retried.access_token)["session_id"] == session_id
    assert retried.refresh_token != rt1
    current = retried.refresh_token

    # rt1 is now two rotations back; once its reuse interval has passed, presenting it is a replay. (The
    # clock is moved as the auth server's own login: see test_postgres_may_manage_sessions_as_on_supabase.)
    moved = db(
        stack,
        "update auth.refresh_tokens set updated_at = updated_at - make_interval(secs => %s) "
        "where token_hash = %s and revoked returning id",
        (2 * REUSE_INTERVAL, refresh_token_digest(rt1)),
        user=AUTH_ADMIN,
    )
    assert len(moved) == 1
    with pytest.raises(AuthApiError) as replay:
        make_client(stack, anon_key(stack)).auth.refresh_session(rt1)
    assert (replay.value.status, code_of(replay.value)) == (400, "refresh_token_already_used")

    # The whole session is gone: its newest refresh token and its access tokens no longer work on /auth/v1.
    with pytest.raises(AuthApiError) as newest:
        make_client(stack, anon_key(stack)).auth.refresh_session(current)
    assert newest.value.status == 400
    assert code_of(newest.value) in ("refresh_token_not_found", "refresh_token_already_used")
    gotrue_error(auth_get(stack, "user", retried.access_token), 403, "session_not_found")


def test_refresh_refusals(stack: Settings) -> None:
    with pytest.raises(AuthApiError) as unknown:
        make_client(stack, anon_key(stack)).auth.refresh_session("x" * 32)
    assert (unknown.value.status, code_of(unknown.value)) == (400, "refresh_token_not_found")
    # GoTrue checks the form first (validation_failed "Refresh token is not valid"); either way a 400 refusal.
    with pytest.raises(AuthApiError) as malformed:
        make_client(stack, anon_key(stack)).auth.refresh_session("short")
    assert malformed.value.status == 400
    assert code_of(malformed.value) in ("validation_failed", "refresh_token_not_found")


def test_postgres_may_manage_sessions_as_on_supabase(stack: Settings, users: Users) -> None:
    # On Supabase, postgres (the SQL editor's role) holds SELECT/INSERT/UPDATE/DELETE on auth.sessions and
    # auth.refresh_tokens (`supabase db dump`: GRANT ... ON TABLE "auth"."refresh_tokens" TO "postgres"), so
    # `delete from auth.sessions where user_id = ...` signs a user out everywhere.
    user_id, email = users.make()
    _, session = sign_in(stack, email)
    assert db(stack, "select count(*) from auth.refresh_tokens where user_id = %s", (user_id,)) == [(1,)]
    assert db(stack, "delete from auth.sessions where user_id = %s returning id", (user_id,)) != []
    gotrue_error(auth_get(stack, "user", session.access_token), 403, "session_not_found")


# -- 4. get_user / update_user -------------------------------------------------------------------------------


def test_get_user_and_update_user_merge_data_change_password_and_email(stack: Settings, users: Users) -> None:
    user_id, email = users.make(user_metadata={"name": "Ada"})
    client, _ = sign_in(stack, email)

    got = client.auth.get_user()
    assert got is not None
    assert (got.user.id, got.user.email) == (user_id, email)
    assert got.user.user_metadata["name"] == "Ada"

    merged = client.auth.update_user({"data": {"theme": "dark"}}).user
    assert merged.user_metadata["name"] == "Ada"
    assert merged.user_metadata["theme"] == "dark"
    again = client.auth.get_user()
    assert again is not None
    assert again.user.user_metadata == merged.user_metadata
    session = client.auth.get_session()
    assert session is not None
    assert session.user.user_metadata == merged.user_metadata  # USER_UPDATED: the client keeps the new user

    # A new password: it signs in, the old one no longer does.
    client.auth.update_user({"password": NEW_PASSWORD})
    assert sign_in(stack, email, NEW_PASSWORD)[1].user.id == user_id
    with pytest.raises(AuthApiError) as old_password:
        sign_in(stack, email, PASSWORD)
    assert code_of(old_password.value) == "invalid_credentials"

    # Another user's address is refused.
    _, taken = users.make()
    with pytest.raises(AuthApiError) as duplicate:
        client.auth.update_user({"email": taken})
    assert (duplicate.value.status, code_of(duplicate.value)) == (422, "email_exists")

    # A new address. The local stack has no mailer and applies the change at once (GoTrue would set
    # new_email and wait for the confirmation link), so the new address signs in and the old one does not.
    changed_to = new_email()
    changed = client.auth.update_user({"email": changed_to}).user
    assert changed.email == changed_to
    assert sign_in(stack, changed_to, NEW_PASSWORD)[1].user.id == user_id
    with pytest.raises(AuthApiError) as old_address:
        sign_in(stack, email, NEW_PASSWORD)
    assert code_of(old_address.value) == "invalid_credentials"
    # The session's access token keeps its claims until the next refresh, which carries the new address.
    refreshed = session_of(client.auth.refresh_session())
    assert claims_of(refreshed.access_token)["email"] == changed_to


def test_update_user_data_null_removes_a_key(stack: Settings, users: Users) -> None:
    # GoTrue's UpdateUserMetaData: a key set to null is deleted, not stored as null.
    _, email = users.make(user_metadata={"name": "Ada", "theme": "dark"})
    client, _ = sign_in(stack, email)
    updated = client.auth.update_user({"data": {"theme": None}}).user
    assert updated.user_metadata == {"name": "Ada"}


def test_update_user_refuses_the_same_password(stack: Settings, users: Users) -> None:
    # GoTrue: 422 same_password "New password should be different from the old password."
    _, email = users.make()
    client, _ = sign_in(stack, email)
    with pytest.raises(AuthApiError) as same:
        client.auth.update_user({"password": PASSWORD})
    assert (same.value.status, code_of(same.value)) == (422, "same_password")


def test_a_password_change_ends_the_users_other_sessions(stack: Settings, users: Users) -> None:
    # GoTrue's User.UpdatePassword(tx, sessionID) -> LogoutAllExceptMe: whoever had the old password is out.
    _, email = users.make()
    changer, mine = sign_in(stack, email)
    _, other = sign_in(stack, email)
    changer.auth.update_user({"password": NEW_PASSWORD})
    assert auth_get(stack, "user", mine.access_token).status_code == 200
    gotrue_error(auth_get(stack, "user", other.access_token), 403, "session_not_found")
    with pytest.raises(AuthApiError) as stale:
        make_client(stack, anon_key(stack)).auth.refresh_session(other.refresh_token)
    assert code_of(stale.value) == "refresh_token_not_found"


# -- 5. sign-out scopes --------------------------------------------------------------------------------------


def test_sign_out_local_others_and_global(stack: Settings, users: Users) -> None:
    _, email = users.make()
    a, session_a = sign_in(stack, email)
    b, session_b = sign_in(stack, email)
    _, session_c = sign_in(stack, email)

    def alive(session: Session) -> bool:
        response = auth_get(stack, "user", session.access_token)
        if response.status_code == 200:
            return True
        gotrue_error(response, 403, "session_not_found")
        return False

    assert [alive(s) for s in (session_a, session_b, session_c)] == [True, True, True]

    a.auth.sign_out({"scope": "local"})  # this session only
    assert a.auth.get_session() is None
    assert [alive(s) for s in (session_a, session_b, session_c)] == [False, True, True]
    with pytest.raises(AuthApiError) as signed_out:
        make_client(stack, anon_key(stack)).auth.refresh_session(session_a.refresh_token)
    assert code_of(signed_out.value) == "refresh_token_not_found"

    _, session_d = sign_in(stack, email)
    b.auth.sign_out({"scope": "others"})  # every session but this one; the client keeps its session
    assert b.auth.get_session() == session_b
    assert [alive(s) for s in (session_b, session_c, session_d)] == [True, False, False]

    _, session_e = sign_in(stack, email)
    b.auth.sign_out()  # global, the client's default: every session of the user
    assert b.auth.get_session() is None
    assert [alive(s) for s in (session_b, session_e)] == [False, False]
    with pytest.raises(AuthApiError) as after_global:
        make_client(stack, anon_key(stack)).auth.refresh_session(session_b.refresh_token)
    assert code_of(after_global.value) == "refresh_token_not_found"

    # As on Supabase, an access token is a JWT that lives until it expires: /rest/v1 checks its signature and
    # times, not the session, so the signed-out token still reads (as the same user) until `exp`.
    still = rest_get(stack, session_b.access_token)
    assert still.status_code == 200, still.text
    assert still.json() == []  # a user in no workspace sees no devices


def test_sign_out_needs_a_token_and_a_known_scope(stack: Settings, users: Users) -> None:
    _, email = users.make()
    _, session = sign_in(stack, email)
    headers = {"apikey": anon_key(stack), **API_VERSION}
    gotrue_error(httpx.post(f"{stack.auth_url}/logout", headers=headers), 401, "no_authorization")
    bad_scope = httpx.post(
        f"{stack.auth_url}/logout?scope=everywhere",
        headers={**headers, "Authorization": f"Bearer {session.access_token}"},
    )
    gotrue_error(bad_scope, 400, "validation_failed")
    assert auth_get(stack, "user", session.access_token).status_code == 200


# -- 6. the admin API ----------------------------------------------------------------------------------------


def test_admin_creates_lists_reads_updates_and_deletes_users(stack: Settings, users: Users) -> None:
    admin = make_client(stack, service_key(stack)).auth.admin
    email = new_email()
    created = admin.create_user(
        {
            "email": email,
            "password": PASSWORD,
            "email_confirm": True,
            "user_metadata": {"name": "Grace"},
            "app_metadata": {"tier": "gold"},
        }
    ).user
    users.created(created.id)
    assert created.email == email
    assert created.email_confirmed_at is not None
    assert created.user_metadata["name"] == "Grace"
    assert created.app_metadata == {"provider": "email", "providers": ["email"], "tier": "gold"}
    assert created.last_sign_in_at is None  # no session is made

    with pytest.raises(AuthApiError) as exists:
        admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    assert (exists.value.status, code_of(exists.value)) == (422, "email_exists")

    # The user signs in with the password the admin set; the token carries the app_metadata.
    _, session = sign_in(stack, email)
    assert claims_of(session.access_token)["app_metadata"]["tier"] == "gold"

    # Pages: per_page bounds a page, and walking the pages finds the user exactly once.
    assert len(admin.list_users(page=1, per_page=1)) == 1
    seen: list[str] = []
    for page in range(1, 10_000):
        batch = admin.list_users(page=page, per_page=50)
        seen.extend(u.id for u in batch)
        if len(batch) < 50:
            break
    assert seen.count(created.id) == 1
    listed = httpx.get(
        f"{stack.auth_url}/admin/users?page=1&per_page=1",
        headers={"apikey": anon_key(stack), "Authorization": f"Bearer {service_key(stack)}"},
    )
    assert listed.status_code == 200
    assert int(listed.headers["x-total-count"]) >= len(seen) - 5  # others may add or remove users meanwhile
    assert 'rel="last"' in listed.headers["link"]
    assert listed.json()["aud"] == "authenticated"

    fetched = admin.get_user_by_id(created.id).user
    assert (fetched.id, fetched.email) == (created.id, email)
    assert [i.provider for i in fetched.identities or []] == ["email"]

    updated = admin.update_user_by_id(
        created.id, {"user_metadata": {"team": "core"}, "app_metadata": {"tier": "platinum"}}
    ).user
    assert updated.user_metadata["name"] == "Grace"  # merged, not replaced
    assert updated.user_metadata["team"] == "core"
    assert updated.app_metadata["tier"] == "platinum"
    assert updated.app_metadata["provider"] == "email"
    assert admin.get_user_by_id(created.id).user.user_metadata == updated.user_metadata

    admin.delete_user(created.id)
    with pytest.raises(AuthApiError) as gone:
        admin.get_user_by_id(created.id)
    assert (gone.value.status, code_of(gone.value)) == (404, "user_not_found")
    with pytest.raises(AuthApiError) as no_sign_in:
        sign_in(stack, email)
    assert code_of(no_sign_in.value) == "invalid_credentials"
    # Its sessions went with it.
    gotrue_error(auth_get(stack, "user", session.access_token), 403, "user_not_found")
    assert db(
        stack, "select count(*) from auth.sessions where user_id = %s", (created.id,), user=AUTH_ADMIN
    ) == [(0,)]


def test_admin_calls_are_refused_to_the_anon_key_and_to_users(stack: Settings, users: Users) -> None:
    user_id, email = users.make()
    _, session = sign_in(stack, email)
    as_anon = make_client(stack, anon_key(stack)).auth.admin
    as_user = make_client(stack, anon_key(stack), token=session.access_token).auth.admin
    calls: dict[str, Callable[[SyncGoTrueAdminAPI], object]] = {
        "list_users": lambda admin: admin.list_users(),
        "create_user": lambda admin: admin.create_user({"email": new_email(), "password": PASSWORD}),
        "get_user_by_id": lambda admin: admin.get_user_by_id(user_id),
        "update_user_by_id": lambda admin: admin.update_user_by_id(user_id, {"user_metadata": {"x": 1}}),
        "delete_user": lambda admin: admin.delete_user(user_id),
    }
    for who, admin in (("anon", as_anon), ("user", as_user)):
        for name, call in calls.items():
            with pytest.raises(AuthApiError) as refused_call:
                call(admin)
            error = refused_call.value
            assert (error.status, code_of(error)) == (403, "not_admin"), (who, name, error.to_dict())
    # Nothing happened: the user is there, unchanged.
    user = make_client(stack, service_key(stack)).auth.admin.get_user_by_id(user_id).user
    assert "x" not in user.user_metadata
    # No Authorization at all is GoTrue's 401 no_authorization.
    gotrue_error(
        httpx.get(f"{stack.auth_url}/admin/users", headers={"apikey": anon_key(stack), **API_VERSION}),
        401,
        "no_authorization",
    )


def test_admin_list_users_is_newest_first(stack: Settings, users: Users) -> None:
    # GoTrue's adminUsers sorts by created_at desc: page 1 starts with the newest users.
    older, _ = users.make()
    newer, _ = users.make()
    admin = make_client(stack, service_key(stack)).auth.admin
    first_page = [u.id for u in admin.list_users(page=1, per_page=50)]
    assert newer in first_page
    assert older in first_page
    assert first_page.index(newer) < first_page.index(older)


# -- 7. one token for REST and Realtime ----------------------------------------------------------------------


def test_the_signed_in_session_reads_rest_under_rls_and_joins_a_private_channel(
    stack: Settings, world: World, users: Users
) -> None:
    member_id, member_email = users.make()
    _, outsider_email = users.make()  # signed in, but in no workspace
    workspace = world.ids["w1"]
    db(
        stack,
        "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)",
        (workspace, member_id),
    )
    db(stack, "update public.profiles set role = 'member' where id = %s", (member_id,))
    topic = f"ws:{workspace}"

    async def scenario() -> None:
        member = await acreate_client(
            stack.api_url,
            anon_key(stack),
            AsyncClientOptions(auto_refresh_token=False, persist_session=False),
        )
        outsider = await acreate_client(
            stack.api_url,
            anon_key(stack),
            AsyncClientOptions(auto_refresh_token=False, persist_session=False),
        )
        try:
            signed_in = await member.auth.sign_in_with_password({"email": member_email, "password": PASSWORD})
            session = session_of(signed_in)

            # /rest/v1 with the session's token (supabase-py switched Authorization on SIGNED_IN).
            rows = (await member.table("devices").select("uuid, name, workspace_id").execute()).data
            uuids = {row["uuid"] for row in rows}  # type: ignore[index, call-overload]
            assert {world.ids["d1"], world.ids["d_unpaired"]} <= uuids
            assert world.ids["d2"] not in uuids  # w2's device: RLS hides it
            assert {row["workspace_id"] for row in rows} == {workspace}  # type: ignore[index, call-overload]

            # /realtime/v1: the same access token joins the workspace's private topic.
            await member.realtime.set_auth(session.access_token)
            received: Inbox[BroadcastPayload] = Inbox(f"member on {topic}")
            event = unique("auth-e2e")
            await joined(member.channel(topic, options(private=True)).on_broadcast(event, received.put))

            other = session_of(
                await outsider.auth.sign_in_with_password({"email": outsider_email, "password": PASSWORD})
            )
            await outsider.realtime.set_auth(other.access_token)
            refusal = await refused(outsider.channel(topic, options(private=True)))
            assert refusal == {"reason": f"{UNAUTHORIZED}{topic}"}
            assert (await outsider.table("devices").select("uuid").execute()).data == []

            await db_send(stack, {"x": 1}, event, topic, True)
            [message] = await received.wait(1)
            assert message["event"] == event
            assert message["payload"]["x"] == 1
        finally:
            for client in (member, outsider):
                await client.realtime.close()

    run(scenario())


# -- 8. HS256 ------------------------------------------------------------------------------------------------


def test_hs256_sessions_work_on_both_servers_and_es256_tokens_do_not_cross(
    stack: Settings, hs256_stack: Settings, users: Users
) -> None:
    hs_users = Users(hs256_stack)  # the same database: users.delete_all() would do as well
    try:
        user_id, email = hs_users.make()
        # Signed in from its own loopback address: hs256_stack allows 5 attempts per address.
        _, session = sign_in(hs256_stack, email, http=bound("127.0.0.59"))
        header = header_of(session.access_token)
        claims = claims_of(session.access_token)
        assert header["alg"] == "HS256"
        assert "kid" not in header
        assert claims["iss"] == hs256_stack.auth_url
        assert claims["sub"] == user_id
        jwt.decode(
            session.access_token,
            hs256_stack.jwt_secret,
            algorithms=["HS256"],
            audience="authenticated",
        )

        # The same secret: both servers accept it on /rest/v1 (and /auth/v1, over the shared database).
        for settings in (hs256_stack, stack):
            response = rest_get(settings, session.access_token)
            assert response.status_code == 200, (settings.api_url, response.text)
            assert response.json() == []
            user = auth_get(settings, "user", session.access_token)
            assert user.status_code == 200, (settings.api_url, user.text)
            assert user.json()["id"] == user_id

        # An ES256 token from `stack` is signed with a key pair hs256_stack does not have.
        _, es_email = users.make()
        _, es_session = sign_in(stack, es_email)
        assert header_of(es_session.access_token)["alg"] == "ES256"
        assert rest_get(stack, es_session.access_token).status_code == 200
        foreign = rest_get(hs256_stack, es_session.access_token)
        assert foreign.status_code == 401, foreign.text
        assert foreign.json()["code"] == "PGRST301"
        assert auth_get(hs256_stack, "user", es_session.access_token).status_code in (401, 403)
    finally:
        hs_users.delete_all()


def test_a_token_auth_cannot_verify_is_401_bad_jwt(
    stack: Settings, hs256_stack: Settings, users: Users
) -> None:
    # GoTrue answers 403 bad_jwt here; Busymate answers 401 bad_jwt so that every surface refuses a token that
    # does not verify with the same status (docs/auth.md). The client raises AuthApiError either way.
    _, email = users.make()
    _, session = sign_in(stack, email)
    gotrue_error(auth_get(hs256_stack, "user", session.access_token), 401, "bad_jwt")
    forged = session.access_token[:-4] + ("AAAA" if not session.access_token.endswith("AAAA") else "BBBB")
    gotrue_error(auth_get(stack, "user", forged), 401, "bad_jwt")


# -- 9. the per-address sign-in limit ------------------------------------------------------------------------


def test_the_sixth_sign_in_attempt_from_one_address_is_rate_limited(
    hs256_stack: Settings, users: Users
) -> None:
    _, email = users.make()
    url = f"{hs256_stack.auth_url}/token?grant_type=password"
    headers = {"apikey": anon_key(hs256_stack), **API_VERSION}
    wrong = {"email": email, "password": "wrong-password"}
    with bound("127.0.0.57") as limited:
        for _ in range(5):
            gotrue_error(limited.post(url, headers=headers, json=wrong), 400, "invalid_credentials")
        sixth = limited.post(url, headers=headers, json={"email": email, "password": PASSWORD})
        gotrue_error(sixth, 429, "over_request_rate_limit")
        assert int(sixth.headers["retry-after"]) > 0
        # Sign-up draws on the same allowance.
        signup = limited.post(
            f"{hs256_stack.auth_url}/signup",
            headers=headers,
            json={"email": new_email(), "password": PASSWORD},
        )
        gotrue_error(signup, 429, "over_request_rate_limit")
    # Another address still signs in, with the client.
    _, session = sign_in(hs256_stack, email, http=bound("127.0.0.58"))
    assert claims_of(session.access_token)["email"] == email
