"""/functions/v1/<name>: host the Python functions in `functions/` the way Supabase's Edge Runtime hosts its
own.

One module per function (`busymate.functions.<name>`, a dash in the URL is an underscore in the module name)
with `async def handle(request: FunctionRequest) -> FunctionResponse`. The caller's headers, Authorization
included, reach the function unchanged; a function reads and writes through `request.rest(...)`, which is
/rest/v1 in-process under whatever token the function passes (normally the caller's own). Like the Edge
Runtime's `verify_jwt`, the host refuses a request without a valid JWT unless the module sets
`VERIFY_JWT = False`. A response body may be bytes or an async iterator of bytes (streamed as it comes).
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import ModuleType
from typing import Protocol
from urllib.parse import parse_qsl

import orjson

from busymate.keys import SigningKeys
from busymate.settings import Settings
from busymate.stack.auth.errors import AuthError
from busymate.stack.auth.ratelimit import RateLimiter
from busymate.stack.rest.errors import ApiError

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")

type RestCall = Callable[[str, str, bytes, str | None], Awaitable[tuple[int, bytes]]]


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


@dataclass
class FunctionRequest:
    """One call of a function, with what the host lends it."""

    method: str
    path: str  # below /functions/v1/<name>, "" for the function's root
    query_string: str
    headers: dict[str, str]
    body: bytes
    client_ip: str
    settings: Settings
    keys: SigningKeys
    _rest: RestCall
    _limits: dict[str, RateLimiter]

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

    async def rest(
        self, method: str, path: str, payload: object = None, token: str | None = None
    ) -> tuple[int, object]:
        """Call /rest/v1 in-process under `token` (the anon key when None): the status and the JSON answer."""
        body = b"" if payload is None else orjson.dumps(payload)
        status, raw = await self._rest(method, path, body, token)
        return status, orjson.loads(raw) if raw else None

    def limit(self, what: str, per_five_minutes: int) -> None:
        """Count one attempt of `what` from the caller's address; AuthError 429 past the limit."""
        limiter = self._limits.get(what)
        if limiter is None:
            limiter = self._limits[what] = RateLimiter(per_five_minutes)
        limiter.take(self.client_ip)

    def now(self) -> int:
        """Seconds since the epoch."""
        return int(time.time())


class FunctionModule(Protocol):
    """What a function module provides."""

    async def handle(self, request: FunctionRequest) -> FunctionResponse: ...


class FunctionsHost:
    """Find, check and run functions."""

    def __init__(
        self, settings: Settings, keys: SigningKeys, rest: RestCall, verify: Callable[[str], object]
    ) -> None:
        self.settings = settings
        self.keys = keys
        self._rest = rest
        self._verify = verify
        self._limits: dict[str, RateLimiter] = {}
        self._modules: dict[str, ModuleType | None] = {}

    def module(self, name: str) -> ModuleType | None:
        """The function's module, imported once; None when there is no such function."""
        if name not in self._modules:
            found: ModuleType | None = None
            if NAME.match(name):
                try:
                    found = importlib.import_module(f"busymate.functions.{name.replace('-', '_')}")
                except ModuleNotFoundError as exc:
                    if exc.name != f"busymate.functions.{name.replace('-', '_')}":
                        raise
                if found is not None and not callable(getattr(found, "handle", None)):
                    found = None
            self._modules[name] = found
        return self._modules[name]

    async def call(
        self, path: str, method: str, query: str, headers: dict[str, str], body: bytes, client_ip: str
    ) -> FunctionResponse:
        """Run the function `path` names (`/<name>[/rest]`)."""
        name, _, rest = path.lstrip("/").partition("/")
        module = self.module(name)
        if module is None:
            return FunctionResponse.json(
                404, {"code": "NOT_FOUND", "message": "Requested function was not found"}
            )
        if getattr(module, "VERIFY_JWT", True):
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return FunctionResponse.json(
                    401, {"code": "UNAUTHORIZED_NO_AUTH_HEADER", "message": "Missing authorization header"}
                )
            try:
                self._verify(token.strip())
            except ApiError:
                return FunctionResponse.json(
                    401, {"code": "UNAUTHORIZED_INVALID_JWT_FORMAT", "message": "Invalid JWT"}
                )
        request = FunctionRequest(
            method,
            f"/{rest}" if rest else "",
            query,
            headers,
            body,
            client_ip,
            self.settings,
            self.keys,
            self._rest,
            self._limits,
        )
        try:
            response: FunctionResponse = await module.handle(request)
        except AuthError as exc:
            return FunctionResponse.json(
                exc.status, {"error": exc.error_code, "message": exc.msg}, exc.headers
            )
        return response
