"""Verify a request's bearer token as PostgREST v14 does, with a small cache
(https://docs.postgrest.org/en/v14/references/auth.html).

HS256 tokens are checked against the project's secret and ES256 tokens against its published key (by `kid`),
as PostgREST does with a JWKS holding both; nothing else is accepted, so an HS256 token signed with the public
key as its secret, or `alg: none`, fails like any other forgery.

A token that passes gives its claims; anything else raises ApiError with PostgREST's code and message, which
the gateway answers with 401 and `WWW-Authenticate: Bearer error="invalid_token", ...`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict

import orjson

from busymate.keys import EcKey
from busymate.stack.rest.errors import ApiError

LEEWAY = 30  # seconds of clock skew PostgREST allows on exp, nbf and iat
CACHE_SIZE = 1000


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _invalid(code: str, message: str, details: str | None = None) -> ApiError:
    return ApiError(401, code, message, details=details, www_authenticate=message)


class JwtVerifier:
    """HS256 and ES256 verification; the last CACHE_SIZE good tokens skip the signature check."""

    def __init__(self, secret: str, ec_keys: tuple[EcKey, ...] = ()) -> None:
        self._key = secret.encode()
        self._ec_keys = {key.kid: key for key in ec_keys}
        self._cache: OrderedDict[str, dict[str, object]] = OrderedDict()

    def verify(self, token: str) -> dict[str, object]:
        """The token's claims, or ApiError (PGRST301 for a bad token, PGRST303 for bad time claims)."""
        claims = self.signed_claims(token)
        check_times(claims)
        return claims

    def signed_claims(self, token: str) -> dict[str, object]:
        """The claims of a well-signed token, its times not yet checked; ApiError PGRST301 otherwise."""
        claims = self._cache.get(token)
        if claims is None:
            claims = self._decode(token)
            self._cache[token] = claims
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return claims

    def _decode(self, token: str) -> dict[str, object]:
        if token == "":
            raise _invalid("PGRST301", "Empty JWT is sent in Authorization header")
        parts = token.split(".")
        if len(parts) != 3:
            raise _invalid("PGRST301", f"Expected 3 parts in JWT; got {len(parts)}")
        try:
            header = orjson.loads(_b64decode(parts[0]))
            payload = orjson.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
            raise _invalid("PGRST301", "JWT cryptographic operation failed") from exc
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise _invalid("PGRST301", "JWT cryptographic operation failed")
        alg = header.get("alg")
        if alg == "none" or alg is None:
            raise _invalid(
                "PGRST301",
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
            raise _invalid(
                "PGRST301", "Wrong or unsupported encoding algorithm", f"Unsupported algorithm {alg!r}"
            )
        if not good:
            raise _invalid(
                "PGRST301", "No suitable key or wrong key type", "None of the keys was able to decode the JWT"
            )
        return payload


def check_times(claims: dict[str, object]) -> None:
    """PGRST303 unless exp, nbf and iat are numbers that hold now (with LEEWAY)."""
    now = time.time()
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid("PGRST303", f"The JWT '{name}' claim must be a number")
        if name == "exp" and value < now - LEEWAY:
            raise _invalid("PGRST303", "JWT expired")
        if name == "nbf" and value > now + LEEWAY:
            raise _invalid("PGRST303", "JWT not yet valid")
        if name == "iat" and value > now + LEEWAY:
            raise _invalid("PGRST303", "JWT issued at future")
    aud = claims.get("aud")
    if (
        aud is not None
        and not isinstance(aud, str)
        and not (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    ):
        raise _invalid("PGRST303", "The JWT 'aud' claim must be a string or an array of strings")
