"""HS256 JSON Web Tokens: the API keys of the local stack, and tokens minted for scripts and tests.

Verification lives with the gateway (busymate.gateway.edge); this module only signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

# The Supabase CLI's local keys are these claims signed with the local secret; with that secret the keys below
# come out byte for byte the same as `supabase status` prints (compact JSON, this key order).
_ANON_CLAIMS = {"iss": "supabase-demo", "role": "anon", "exp": 1983812996}
_SERVICE_CLAIMS = {"iss": "supabase-demo", "role": "service_role", "exp": 1983812996}
# The Supabase CLI's local publishable and secret keys (opaque, not JWTs).
LOCAL_PUBLISHABLE_KEY = "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
LOCAL_SECRET_KEY = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"  # noqa: S105


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWS uses it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_hs256(claims: Mapping[str, object], secret: str) -> str:
    """A compact HS256 JWT carrying `claims`."""
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    payload = b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def anon_key(secret: str) -> str:
    """The legacy anon key: a JWT with role anon."""
    return sign_hs256(_ANON_CLAIMS, secret)


def service_role_key(secret: str) -> str:
    """The legacy service_role key: a JWT with role service_role."""
    return sign_hs256(_SERVICE_CLAIMS, secret)
