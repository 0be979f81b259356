"""The sync client of the project's HTTP API (/auth/v1, /rest/v1, /functions/v1), for the CLI.

Built from a URL, a publishable key and a token source (busymate.api_core), it speaks exactly what
supabase-py would send, so everything the CLI does an integrator can do with the official clients; errors
come from the one mapping in busymate.api_core. It waits out a 503 with Retry-After (a database restarting)
for up to 15 s. `Api.for_project` is the CLI's: the project's URL and key, and before any token goes out a
check that the server answering is this project's (X-Busymate-Project), not another's on the same port.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from busymate.api_core import (
    NotThisProject,
    TokenSource,
    Unavailable,
    decode,
    headers,
    refusal,
    token_now,
    unreachable,
)
from busymate.project import IDENTITY_HEADER, project_id
from busymate.settings import Settings

__all__ = ["Api", "api_answers", "identity_error"]

UNAVAILABLE_WAIT = 15.0  # seconds a request waits out 503 + Retry-After answers before giving up
START_HINT = "start it with `busymate start`"


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
    """Calls to `url` under `key` and the token `token` gives (asked before each call)."""

    def __init__(
        self,
        url: str,
        key: str,
        token: TokenSource = None,
        *,
        timeout: float = 30.0,
        check: Callable[[httpx.Client], bool] | None = None,
        down_hint: str = "",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.token = token
        # asked before calls until it answers True: raises when the server is not the one meant
        self._check = check
        self._down_hint = down_hint
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    @classmethod
    def for_project(cls, settings: Settings, token: TokenSource = None, timeout: float = 30.0) -> Api:
        """The CLI's client: the settings' URL and publishable key, checked to be this project's server."""
        return cls(
            settings.url or settings.api_url,
            settings.anon_key or settings.publishable_key,  # either is a publishable key
            token,
            timeout=timeout,
            check=lambda http: api_answers(settings, http),
            down_hint=START_HINT,
        )

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
        """JSON in, JSON out; ApiRefused (busymate.api_core) with the server's own message when it refuses."""
        what = f"{method} {path}"
        if self._check is not None and self._check(self._http):  # before any token or password goes out
            self._check = None
        sent = headers(self.key, token_now(self.token))
        deadline = time.monotonic() + UNAVAILABLE_WAIT
        while True:
            try:
                response = self._http.request(method, path, json=json, params=params, headers=sent)
            except httpx.HTTPError as exc:
                raise unreachable(self.url, what, exc, self._down_hint) from exc
            if response.status_code != 503:
                return decode(what, response)
            # 503 with Retry-After: the server did nothing and expects its database back (a reset, a restart).
            refused = refusal(what, response)
            pause = refused.retry_after
            if not isinstance(refused, Unavailable) or pause is None:
                raise refused
            pause = min(max(pause, 0.1), UNAVAILABLE_WAIT)
            if time.monotonic() + pause > deadline:
                raise refused
            time.sleep(pause)

    def rpc(self, name: str, args: dict[str, object]) -> Any:
        """POST /rest/v1/rpc/<name>."""
        return self.request("POST", f"/rest/v1/rpc/{name}", json=args)

    def select(self, table: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /rest/v1/<table> with PostgREST query parameters."""
        rows = self.request("GET", f"/rest/v1/{table}", params=params)
        return rows if isinstance(rows, list) else []
