"""OAuth clients: dynamic registration (RFC 7591) at /oauth/clients/register, and clients whose client_id is
the https URL of a metadata document naming itself (fetched, checked and remembered)."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import httpx
from psycopg.rows import dict_row

from busymate.gateway.auth import oauth_uris
from busymate.gateway.auth.answer import Answer
from busymate.gateway.auth.errors import HttpRequest, OAuthError
from busymate.gateway.auth.refresh import digest
from busymate.gateway.auth.store import AuthStore
from busymate.gateway.auth.users import Row

MAX_METADATA_DOCUMENT = 64 * 1024


class OAuthClients:
    """The registered clients in auth.oauth_clients."""

    def __init__(self, store: AuthStore) -> None:
        self.store = store

    async def register(self, request: HttpRequest) -> Answer:
        """RFC 7591 dynamic client registration."""
        body = request.json()
        uris = body.get("redirect_uris")
        if (
            not isinstance(uris, list)
            or not uris
            or not all(isinstance(u, str) and oauth_uris.valid_redirect(u) for u in uris)
        ):
            raise OAuthError(
                "invalid_redirect_uri",
                "redirect_uris must list absolute URIs without fragments (https, or http on a loopback host)",
            )
        method = body.get("token_endpoint_auth_method") or "client_secret_basic"
        if method not in ("none", "client_secret_post", "client_secret_basic"):
            raise OAuthError(
                "invalid_client_metadata", f"token_endpoint_auth_method {method!r} is not supported"
            )
        grants = body.get("grant_types") or ["authorization_code", "refresh_token"]
        if not isinstance(grants, list) or not set(grants) <= {"authorization_code", "refresh_token"}:
            raise OAuthError(
                "invalid_client_metadata", "grant_types may hold authorization_code and refresh_token"
            )
        response_types = body.get("response_types") or ["code"]
        if response_types != ["code"]:
            raise OAuthError("invalid_client_metadata", 'response_types must be ["code"]')
        name = body.get("client_name")
        client_id = str(uuid.uuid4())
        secret = secrets.token_urlsafe(32) if method != "none" else None
        async with self.store.pool.connection() as conn:
            await conn.execute(
                "insert into auth.oauth_clients (client_id, client_secret_hash, registration_type, "
                "client_name, client_uri, redirect_uris, grant_types, token_endpoint_auth_method) values "
                "(%(id)s, %(secret)s, 'dynamic', %(name)s, %(uri)s, %(uris)s, %(grants)s, %(method)s)",
                {
                    "id": client_id,
                    "secret": digest(secret) if secret else None,
                    "name": name if isinstance(name, str) else None,
                    "uri": body.get("client_uri") if isinstance(body.get("client_uri"), str) else None,
                    "uris": uris,
                    "grants": grants,
                    "method": method,
                },
            )
        answer: dict[str, Any] = {
            "client_id": client_id,
            "client_id_issued_at": int(time.time()),
            "redirect_uris": uris,
            "grant_types": grants,
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            "client_name": name,
        }
        if secret is not None:
            answer["client_secret"] = secret
            answer["client_secret_expires_at"] = 0
        return Answer(201, answer, {"cache-control": "no-store"})

    async def client(self, client_id: str) -> Row | None:
        """A registered client, or the metadata document `client_id` points at (fetched and remembered)."""
        async with self.store.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                "select * from auth.oauth_clients where client_id = %(id)s", {"id": client_id}
            )
            row = await cur.fetchone()
        if row is not None and row["registration_type"] != "metadata_document":
            return row
        if not oauth_uris.metadata_document_url(client_id):
            return None
        document = await _fetch_document(client_id)
        if document is None:
            return row  # unreachable now: what we saw last time still stands
        uris = document.get("redirect_uris")
        if document.get("client_id") != client_id or not isinstance(uris, list) or not uris:
            return None
        if not all(isinstance(u, str) and oauth_uris.valid_redirect(u) for u in uris):
            return None
        async with self.store.pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                "insert into auth.oauth_clients (client_id, registration_type, client_name, client_uri, "
                "redirect_uris, token_endpoint_auth_method) values (%(id)s, 'metadata_document', %(name)s, "
                "%(uri)s, %(uris)s, 'none') on conflict (client_id) do update set "
                "client_name = excluded.client_name, client_uri = excluded.client_uri, "
                "redirect_uris = excluded.redirect_uris, updated_at = now() returning *",
                {
                    "id": client_id,
                    "name": document.get("client_name")
                    if isinstance(document.get("client_name"), str)
                    else None,
                    "uri": document.get("client_uri")
                    if isinstance(document.get("client_uri"), str)
                    else None,
                    "uris": uris,
                },
            )
            return await cur.fetchone()


async def _fetch_document(url: str) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient(timeout=5.0, follow_redirects=False) as http:
            response = await http.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError:
        return None
    if response.status_code != 200 or len(response.content) > MAX_METADATA_DOCUMENT:
        return None
    try:
        document = response.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
