"""A small client of the stack's HTTP APIs for the CLI and workers: /auth/v1, /rest/v1 and /functions/v1,
with one-line errors.

It speaks exactly what supabase-py would send (apikey header, Bearer token), so everything the CLI does an
integrator can do with the official clients.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from busymate.errors import BusymateError
from busymate.project import IDENTITY_HEADER, project_id
from busymate.settings import Settings

UNAVAILABLE_WAIT = 15.0  # seconds a request waits out 503 + Retry-After answers before giving up


class ApiRefused(BusymateError):
    """The server answered with an error: its HTTP status, its code (a SQLSTATE such as 23505 from /rest/v1,
    GoTrue's error_code such as invalid_credentials from /auth/v1), message, details and hint."""

    def __init__(
        self, what: str, status: int, code: str, message: str, details: str = "", hint: str = ""
    ) -> None:
        self.status, self.code, self.message, self.details, self.hint = status, code, message, details, hint
        super().__init__(f"{what}: {status} {message}" + (f" (hint: {hint})" if hint else ""))


class NotThisProject(BusymateError):
    """What answers on the project's API port is another project's server, or not a Busymate server."""


def identity_error(settings: Settings, response: httpx.Response) -> NotThisProject | None:
    """None when `response` comes from this project's API server, else the error that says what answered."""
    found = response.headers.get(IDENTITY_HEADER)
    expected = project_id(settings.state_dir, create=False)
    if found is not None and found == expected:
        return None
    where = f"{settings.api_host}:{settings.api_port}"
    if found is not None:
        what = f"another Busymate project's API server (project {found}; this project is {expected or 'new'})"
    else:
        server = response.headers.get("server")
        asked = f"{response.request.method} {response.request.url.path}"
        what = (
            f"a server that is not Busymate's (it answered {asked} with {response.status_code}"
            f"{f', server: {server}' if server else ''}, and no project id)"
        )
    return NotThisProject(
        f"{where} is {what}, not this project's ({settings.project_dir}), so nothing was sent to it. "
        "If this project runs on another port, set BUSYMATE_API_PORT; to run it here, stop that server, or "
        "start this project on a free port (`BUSYMATE_API_PORT=<port> busymate start`, which later commands "
        "remember). A server of this project started by an older busymate needs a restart "
        "(`busymate stop && busymate start`)."
    )


def api_answers(settings: Settings, http: httpx.Client | None = None) -> bool:
    """Whether this project's API server answers (False when nothing listens); NotThisProject when
    something else does. Only GET /auth/v1/health goes out, with no key or token."""
    url = f"{settings.api_url}/auth/v1/health"
    try:
        response = http.get(url) if http is not None else httpx.get(url, timeout=5.0)
    except httpx.TransportError:
        return False
    problem = identity_error(settings, response)
    if problem is not None:
        raise problem
    return True


class Api:
    """Calls under one bearer token (the anon key when none)."""

    def __init__(self, settings: Settings, token: str | None = None, timeout: float = 30.0) -> None:
        self.settings = settings
        self.anon_key = settings.anon_key or settings.publishable_key  # either is a publishable key
        self.token = token or self.anon_key
        self._http = httpx.Client(base_url=settings.url or settings.api_url, timeout=timeout)
        self._verified = False

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, json: object = None, params: dict[str, str] | None = None
    ) -> Any:
        """JSON in, JSON out; BusymateError with the server's own message when it refuses."""
        if not self._verified:  # before any token or password goes out
            self._verified = api_answers(self.settings, self._http)
        headers = {"apikey": self.anon_key, "authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + UNAVAILABLE_WAIT
        while True:
            try:
                response = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.ConnectError as exc:
                raise BusymateError(
                    f"the API server does not answer at {self.settings.api_url}: "
                    "start it with `busymate start`"
                ) from exc
            except httpx.HTTPError as exc:
                raise BusymateError(f"{method} {path} failed: {exc}") from exc
            # 503 with Retry-After: the server did nothing and expects its database back (a reset, a restart).
            pause = _retry_after(response)
            if pause is None or time.monotonic() + pause > deadline:
                break
            time.sleep(pause)
        if response.status_code >= 400:
            raise refusal(f"{method} {path}", response)
        if not response.content:
            return None
        return response.json()

    def rpc(self, name: str, args: dict[str, object]) -> Any:
        """POST /rest/v1/rpc/<name>."""
        return self.request("POST", f"/rest/v1/rpc/{name}", json=args)

    def select(self, table: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /rest/v1/<table> with PostgREST query parameters."""
        rows = self.request("GET", f"/rest/v1/{table}", params=params)
        return rows if isinstance(rows, list) else []


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code != 503:
        return None
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.1), UNAVAILABLE_WAIT)
    except ValueError:
        return None


def refusal(what: str, response: httpx.Response) -> ApiRefused:
    """The error for a 4xx/5xx answer in any of the stack's shapes (PostgREST, GoTrue, OAuth)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raw = response.text.strip()[:300] or response.reason_phrase
        return ApiRefused(what, response.status_code, "", raw)

    def text(*keys: str) -> str:
        for key in keys:
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
        return ""

    message = text("message", "msg", "error_description", "error") or str(body)[:300]
    code = text("error_code") or (str(body["code"]) if body.get("code") is not None else "") or text("error")
    return ApiRefused(what, response.status_code, code, message, text("details"), text("hint"))
