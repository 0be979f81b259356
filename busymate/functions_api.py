"""The contract of a function under /functions/v1 (docs/functions.md): what a handler is given and answers.

A function is a module in `functions/` with `async def handle(request, ctx) -> FunctionResponse`. `request` is
the HTTP call (method, path, query, headers, body, client address); `ctx` holds what the host lends it: API
clients over HTTP (`ctx.api` under the caller's token, `ctx.anon` under the publishable key alone) and, only
when the module lists them in `NEEDS`, a narrow capability: `"signer"` (signs device tokens, nothing else),
`"limit"` (counts attempts per caller address), `"env"` (the server settings it names in `ENV`, such as
`ANTHROPIC_API_KEY`) or `"service_role"` (a client that bypasses RLS; the module
must say why in `SERVICE_ROLE_BECAUSE`). A function never sees the settings, the signing keys or the
database, so it runs the same against a hosted Supabase project, and it imports only the shared library
(busymate.*, never busymate.stack: tests/test_boundaries.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

import orjson

from busymate.api_client import AsyncApi

DAY = 86_400


@dataclass
class FunctionResponse:
    """What a function answers: a status, headers and a body (bytes, or chunks as they are made)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | AsyncIterator[bytes] = b""

    @classmethod
    def json(cls, status: int, payload: object, headers: Mapping[str, str] | None = None) -> FunctionResponse:
        """A JSON answer."""
        return cls(status, {"content-type": "application/json", **(headers or {})}, orjson.dumps(payload))


class FunctionError(Exception):
    """Raised (by a capability or the function) to answer at once with `status` and a JSON body."""

    def __init__(self, status: int, payload: object, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {payload}")
        self.response = FunctionResponse.json(status, payload, headers)


@dataclass
class FunctionRequest:
    """One HTTP call of a function."""

    method: str
    path: str  # below /functions/v1/<name>, "" for the function's root
    query_string: str
    headers: dict[str, str]
    body: bytes
    client_ip: str

    @cached_property
    def query(self) -> dict[str, str]:
        """The query string's parameters."""
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    def bearer(self) -> str | None:
        """The caller's bearer token, if any."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def json(self) -> object:
        """The body as JSON; ValueError with a clear message otherwise."""
        try:
            return orjson.loads(self.body or b"null")
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"the body is not JSON: {exc}") from exc


@dataclass(frozen=True)
class IssuedToken:
    """A device token as the signer made it."""

    access_token: str
    expires_in: int
    expires_at: int

    def answer(self, device: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON a signing function answers (pair, device-token): the token, as GoTrue shapes a session,
        and the device it is for (`uuid` or `device_uuid`, workspace_id, name, source, proxy_port)."""
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "expires_at": self.expires_at,
            "device": {
                "uuid": device.get("uuid", device.get("device_uuid")),
                **{k: device[k] for k in ("workspace_id", "name", "source", "proxy_port")},
            },
        }


# device uuid, workspace id, credential id -> a signed device token (docs/auth.md, "Devices")
type DeviceTokenSigner = Callable[[str, str, str], IssuedToken]


def device_claims(
    device: str, workspace_id: str, credential: str, issuer: str, now: int, days: int
) -> dict[str, Any]:
    """The claims of a device token: role `device`, sub = the device's uuid, workspace_id, cred."""
    return {
        "iss": issuer,
        "sub": device,
        "aud": "authenticated",
        "role": "device",
        "workspace_id": workspace_id,
        "cred": credential,
        "iat": now,
        "exp": now + days * DAY,
    }


@dataclass
class FunctionContext:
    """What the host lends one call: API clients, and the capabilities the module declared in `NEEDS`."""

    name: str
    api: AsyncApi  # under the caller's bearer token (the publishable key alone when there is none)
    anon: AsyncApi  # under the publishable key alone, whatever the caller sent
    _service: AsyncApi | None = None
    _signer: DeviceTokenSigner | None = None
    _limit: Callable[[], None] | None = None
    _env: Mapping[str, str] | None = None

    def _missing(self, what: str) -> RuntimeError:
        return RuntimeError(f"function {self.name} uses {what} without declaring it: NEEDS = ({what!r}, ...)")

    @property
    def service(self) -> AsyncApi:
        """A client under the service-role key (bypasses RLS); only for NEEDS = ("service_role",)."""
        if self._service is None:
            raise self._missing("service_role")
        return self._service

    @property
    def sign_device_token(self) -> DeviceTokenSigner:
        """Signs a device token for (device, workspace, credential); only for NEEDS = ("signer",)."""
        if self._signer is None:
            raise self._missing("signer")
        return self._signer

    @property
    def env(self) -> Mapping[str, str]:
        """The server's settings this module names in `ENV` (only those, only set ones): the analogue of an
        Edge Function's `Deno.env`; only for NEEDS = ("env",)."""
        if self._env is None:
            raise self._missing("env")
        return self._env

    def limit(self) -> None:
        """Count one attempt from the caller's address; FunctionError 429 past the limit (NEEDS "limit")."""
        if self._limit is None:
            raise self._missing("limit")
        self._limit()
