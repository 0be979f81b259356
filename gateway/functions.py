"""/functions/v1/<name>: host the Python functions in `functions/` the way Supabase's Edge Runtime hosts its
own, under the contract of busymate/functions_api.py (docs/functions.md).

One module per function (`busymate.functions.<name>`, a dash in the URL is an underscore in the module name)
with `async def handle(request, ctx) -> FunctionResponse`. The caller's headers, Authorization included,
reach the function unchanged; it reads and writes through `ctx.api`, a client of this server's own /rest/v1
over HTTP (loopback) under the caller's token, so RLS sees the caller. Like the Edge Runtime's `verify_jwt`,
the host refuses a request without a valid JWT unless the module sets `VERIFY_JWT = False`. The settings and
signing keys stay here: a module gets a device-token signer, a rate limiter or a service-role client only when
it lists "signer", "limit" or "service_role" in `NEEDS` (the last with its reason in `SERVICE_ROLE_BECAUSE`).
A response body may be bytes or an async iterator of bytes (streamed as it comes).
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable
from types import ModuleType

import httpx

from busymate.api_client import AsyncApi
from busymate.api_core import ApiRefused
from busymate.functions_api import (
    DAY,
    FunctionContext,
    FunctionError,
    FunctionRequest,
    FunctionResponse,
    IssuedToken,
    device_claims,
)
from busymate.gateway.auth.errors import AuthError
from busymate.gateway.auth.ratelimit import RateLimiter
from busymate.gateway.edge import EdgeError
from busymate.keys import SigningKeys
from busymate.settings import FUNCTION_ENV, Settings

NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
NEEDS = frozenset({"signer", "limit", "service_role", "env"})
WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104  bind-all -> loopback
DEFAULT_RATE_LIMIT = 30  # attempts per address per five minutes, for a module that sets no RATE_LIMIT


class FunctionsHost:
    """Find, check and run functions."""

    def __init__(
        self,
        settings: Settings,
        keys: SigningKeys,
        verify: Callable[[str], object],
        anon_key: str,
        service_key: str,
    ) -> None:
        self.settings = settings
        self._keys = keys
        self._verify = verify
        self._anon_key = anon_key
        self._service_key = service_key
        self._http: httpx.AsyncClient | None = None
        self._limits: dict[str, RateLimiter] = {}
        self._modules: dict[str, ModuleType | None] = {}

    async def aclose(self) -> None:
        """Close the connections to /rest/v1."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

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
            if found is not None:
                _check_needs(name, found)
            self._modules[name] = found
        return self._modules[name]

    def sign_device_token(self, device: str, workspace_id: str, credential: str) -> IssuedToken:
        """What a module with NEEDS "signer" is lent: a device token signed with the project's key."""
        now = int(time.time())
        days = self.settings.device_token_days
        claims = device_claims(device, workspace_id, credential, self.settings.auth_url, now, days)
        return IssuedToken(self._keys.sign(claims), days * DAY, now + days * DAY)

    def _limiter(self, name: str, module: ModuleType, client_ip: str) -> Callable[[], None]:
        def take() -> None:
            limiter = self._limits.get(name)
            if limiter is None:
                per_five_minutes = (
                    self.settings.pair_rate_limit
                    if name == "pair"
                    else int(getattr(module, "RATE_LIMIT", DEFAULT_RATE_LIMIT))
                )
                limiter = self._limits[name] = RateLimiter(per_five_minutes)
            try:
                limiter.take(client_ip)
            except AuthError as exc:
                raise FunctionError(
                    exc.status, {"error": exc.error_code, "message": exc.msg}, exc.headers
                ) from exc

        return take

    def _context(self, name: str, module: ModuleType, token: str | None, client_ip: str) -> FunctionContext:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30.0)
        anon = AsyncApi(loopback_url(self.settings), self._anon_key, None, self._http)
        needs = set(getattr(module, "NEEDS", ()))
        return FunctionContext(
            name,
            anon.with_token(token),
            anon,
            AsyncApi(loopback_url(self.settings), self._service_key, None, self._http)
            if "service_role" in needs
            else None,
            self.sign_device_token if "signer" in needs else None,
            self._limiter(name, module, client_ip) if "limit" in needs else None,
            self._env(module) if "env" in needs else None,
        )

    def _env(self, module: ModuleType) -> dict[str, str]:
        """The settings a module with NEEDS "env" names in ENV, those that are set."""
        wanted = set(getattr(module, "ENV", ()))
        return {name: value for name, value in self.settings.function_env if name in wanted}

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
        request = FunctionRequest(method, f"/{rest}" if rest else "", query, headers, body, client_ip)
        token = request.bearer()
        if getattr(module, "VERIFY_JWT", True):
            if token is None:
                return FunctionResponse.json(
                    401, {"code": "UNAUTHORIZED_NO_AUTH_HEADER", "message": "Missing authorization header"}
                )
            try:
                self._verify(token)
            except EdgeError:
                return FunctionResponse.json(
                    401, {"code": "UNAUTHORIZED_INVALID_JWT_FORMAT", "message": "Invalid JWT"}
                )
        try:
            response: FunctionResponse = await module.handle(
                request, self._context(name, module, token, client_ip)
            )
        except FunctionError as exc:
            return exc.response
        except ApiRefused as exc:  # a refusal of the API the function did not handle: passed on, 5xx as 502
            return FunctionResponse.json(
                exc.status if exc.status < 500 else 502,
                {"error": exc.code or "api_refused", "message": exc.message},
            )
        return response


def loopback_url(settings: Settings) -> str:
    """This server's own URL as the host calls it: a wildcard bind address becomes the loopback one."""
    host = WILDCARDS.get(settings.api_host, settings.api_host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.api_port}"


def _check_needs(name: str, module: ModuleType) -> None:
    """A module asks only for what the host lends, and says why it needs the service role."""
    needs = set(getattr(module, "NEEDS", ()))
    if needs - NEEDS:
        raise RuntimeError(f"function {name} needs {sorted(needs - NEEDS)}: the host lends {sorted(NEEDS)}")
    unknown = set(getattr(module, "ENV", ())) - set(FUNCTION_ENV)
    if unknown:
        raise RuntimeError(f"function {name} asks for {sorted(unknown)} in ENV: not in {list(FUNCTION_ENV)}")
    if "service_role" in needs and not str(getattr(module, "SERVICE_ROLE_BECAUSE", "")).strip():
        raise RuntimeError(f"function {name} needs the service role: say why in SERVICE_ROLE_BECAUSE")
