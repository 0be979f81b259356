"""The gateway's edge: the one module that reads a request's `apikey` and `Authorization`, maps the project's
keys to claims (https://supabase.com/docs/guides/api/api-keys) and verifies JWTs as PostgREST v14 does, with a
small cache (https://docs.postgrest.org/en/v14/references/auth.html).

HS256 tokens are checked against the project's secret and ES256 tokens against its published key (by `kid`),
as PostgREST does with a JWKS holding both; nothing else is accepted, so an HS256 token signed with the public
key as its secret, or `alg: none`, fails like any other forgery. A token over MAX_JWT_BYTES is refused before
it is decoded or cached.

A token that passes gives its claims; anything else raises EdgeError with a `kind` (and PostgREST's wording of
the failure as `message`). Each surface turns that into its own wire error: REST into PGRST301/PGRST303
(rest/errors.py), Realtime into its refusal reasons (realtime/hub.py), Auth into GoTrue's `bad_jwt`, the
functions host into the Edge Runtime's 401. None of them reads another's messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Literal
from urllib.parse import parse_qsl

import orjson

from busymate import tokens
from busymate.keys import EcKey

LEEWAY = 30  # seconds of clock skew PostgREST allows on exp, nbf and iat
CACHE_SIZE = 1000
MAX_JWT_BYTES = 16 * 1024  # no token we issue comes near; a bigger one is refused before it is decoded

EdgeKind = Literal[
    "no_apikey",  # the request names no key at all
    "unknown_key",  # an apikey (or an sb_ bearer) that is not one of the project's keys
    "missing",  # an empty bearer token
    "too_large",  # a token over MAX_JWT_BYTES, refused undecoded
    "malformed",  # not three base64url JSON parts
    "unsupported_alg",  # alg none, or one other than HS256/ES256
    "bad_signature",  # no key of the project verifies it
    "expired",
    "not_yet_valid",
    "issued_in_future",
    "bad_claim",  # exp/nbf/iat not a number, aud not a string or strings
]
TIME_KINDS: frozenset[EdgeKind] = frozenset(("expired", "not_yet_valid", "issued_in_future", "bad_claim"))


class EdgeError(Exception):
    """A credential refused at the edge: its kind, PostgREST's wording of it and any details."""

    def __init__(self, kind: EdgeKind, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.kind: EdgeKind = kind
        self.message = message
        self.details = details


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class JwtVerifier:
    """HS256 and ES256 verification; the last CACHE_SIZE good tokens skip the signature check."""

    def __init__(self, secret: str, ec_keys: tuple[EcKey, ...] = ()) -> None:
        self._key = secret.encode()
        self._ec_keys = {key.kid: key for key in ec_keys}
        self._cache: OrderedDict[str, dict[str, object]] = OrderedDict()

    def verify(self, token: str) -> dict[str, object]:
        """The token's claims, or EdgeError (a time kind for bad time claims)."""
        claims = self.signed_claims(token)
        check_times(claims)
        return claims

    def signed_claims(self, token: str) -> dict[str, object]:
        """The claims of a well-signed token, its times not yet checked; EdgeError otherwise."""
        if len(token) > MAX_JWT_BYTES:
            raise EdgeError(
                "too_large", "JWT cryptographic operation failed", f"The token is over {MAX_JWT_BYTES} bytes"
            )
        claims = self._cache.get(token)
        if claims is None:
            claims = self._decode(token)
            self._cache[token] = claims
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return claims

    def _decode(self, token: str) -> dict[str, object]:
        if token == "":
            raise EdgeError("missing", "Empty JWT is sent in Authorization header")
        parts = token.split(".")
        if len(parts) != 3:
            raise EdgeError("malformed", f"Expected 3 parts in JWT; got {len(parts)}")
        try:
            header = orjson.loads(_b64decode(parts[0]))
            payload = orjson.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
            raise EdgeError("malformed", "JWT cryptographic operation failed") from exc
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise EdgeError("malformed", "JWT cryptographic operation failed")
        alg = header.get("alg")
        if alg == "none" or alg is None:
            raise EdgeError(
                "unsupported_alg",
                "Wrong or unsupported encoding algorithm",
                "JWT is unsecured but expected 'alg' was not 'none'",
            )
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        if alg == "HS256":
            expected = hmac.new(self._key, signing_input, hashlib.sha256).digest()
            good = hmac.compare_digest(expected, signature)
        elif alg == "ES256":
            kid = header.get("kid")
            candidates = (
                [self._ec_keys[kid]]
                if isinstance(kid, str) and kid in self._ec_keys
                else list(self._ec_keys.values())
                if kid is None
                else []
            )
            good = any(key.verifies(signing_input, signature) for key in candidates)
        else:
            raise EdgeError(
                "unsupported_alg", "Wrong or unsupported encoding algorithm", f"Unsupported algorithm {alg!r}"
            )
        if not good:
            raise EdgeError(
                "bad_signature",
                "No suitable key or wrong key type",
                "None of the keys was able to decode the JWT",
            )
        return payload


def check_times(claims: dict[str, object]) -> None:
    """EdgeError unless exp, nbf and iat are numbers that hold now (with LEEWAY)."""
    now = time.time()
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EdgeError("bad_claim", f"The JWT '{name}' claim must be a number")
        if name == "exp" and value < now - LEEWAY:
            raise EdgeError("expired", "JWT expired")
        if name == "nbf" and value > now + LEEWAY:
            raise EdgeError("not_yet_valid", "JWT not yet valid")
        if name == "iat" and value > now + LEEWAY:
            raise EdgeError("issued_in_future", "JWT issued at future")
    aud = claims.get("aud")
    if (
        aud is not None
        and not isinstance(aud, str)
        and not (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    ):
        raise EdgeError("bad_claim", "The JWT 'aud' claim must be a string or an array of strings")


class ProjectKeys:
    """The project's keys and the role each stands for: the legacy anon and service_role JWTs, and the opaque
    `sb_publishable_`/`sb_secret_` keys that Kong turns into them (https://supabase.com/docs/guides/api/api-keys)."""

    def __init__(self, jwt_secret: str, publishable_key: str, secret_key: str) -> None:
        self.anon_key = tokens.anon_key(jwt_secret)
        self.service_key = tokens.service_role_key(jwt_secret)
        self._opaque = {publishable_key: self.anon_key, secret_key: self.service_key}
        self._roles = {publishable_key: "anon", secret_key: "service_role"}

    def __contains__(self, key: object) -> bool:
        return key in self._opaque or key == self.anon_key or key == self.service_key

    def opaque_claims(self, key: str) -> dict[str, object] | None:
        """The claims an opaque key carries into PostgREST (None for anything else)."""
        role = self._roles.get(key)
        return None if role is None else {"role": role, "iss": "supabase"}

    def legacy(self, key: str) -> str:
        """The legacy JWT an opaque key stands for, as Kong rewrites it; any other key or token unchanged."""
        return self._opaque.get(key, key)


def bearer(headers: Mapping[str, str]) -> str | None:
    """The `Authorization: Bearer` token (stripped), or None without one."""
    auth = headers.get("authorization")
    if auth is None:
        return None
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


class Edge:
    """The project's keys and its verifier: what every surface asks who a request is."""

    def __init__(self, keys: ProjectKeys, verifier: JwtVerifier) -> None:
        self.keys = keys
        self.verifier = verifier

    def request_claims(
        self, headers: Mapping[str, str], query: str, *, verify: bool = True
    ) -> dict[str, object]:
        """Kong's key-auth and Authorization rewrite, then PostgREST's JWT check: the request's claims.

        With verify=False only the key is checked (Kong in front of GoTrue, which checks tokens itself)."""
        apikey = headers.get("apikey")
        if apikey is None and "apikey=" in query:
            apikey = dict(parse_qsl(query)).get("apikey")
        if not apikey:
            raise EdgeError("no_apikey", "No API key found in request")
        if apikey not in self.keys:
            raise EdgeError("unknown_key", "The apikey is not one of the project's keys")
        if not verify:
            return {}
        token = bearer(headers)
        if token is None or token.startswith("sb_"):
            token = apikey if token is None or token in self.keys else token
        fixed = self.keys.opaque_claims(token)
        if fixed is not None:
            return fixed
        if token.startswith("sb_"):
            raise EdgeError("unknown_key", "The bearer key is not one of the project's keys")
        return self.verifier.verify(token)
