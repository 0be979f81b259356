"""A small client of the stack's HTTP APIs for the CLI and workers: /auth/v1, /rest/v1 and /functions/v1,
with one-line errors.

It speaks exactly what supabase-py would send (apikey header, Bearer token), so everything the CLI does an
integrator can do with the official clients.
"""

from __future__ import annotations

from typing import Any

import httpx

from busymate import tokens
from busymate.errors import BusymateError
from busymate.settings import Settings


class Api:
    """Calls under one bearer token (the anon key when none)."""

    def __init__(self, settings: Settings, token: str | None = None, timeout: float = 30.0) -> None:
        self.settings = settings
        self.anon_key = tokens.anon_key(settings.jwt_secret)
        self.token = token or self.anon_key
        self._http = httpx.Client(base_url=settings.api_url, timeout=timeout)

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
        headers = {"apikey": self.anon_key, "authorization": f"Bearer {self.token}"}
        try:
            response = self._http.request(method, path, json=json, params=params, headers=headers)
        except httpx.ConnectError as exc:
            raise BusymateError(
                f"the API server does not answer at {self.settings.api_url}: start it with `busymate start`"
            ) from exc
        except httpx.HTTPError as exc:
            raise BusymateError(f"{method} {path} failed: {exc}") from exc
        if response.status_code >= 400:
            raise BusymateError(f"{method} {path}: {response.status_code} {_message(response)}")
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


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        for key in ("message", "msg", "error_description", "error"):
            if isinstance(body.get(key), str):
                hint = body.get("hint")
                return f"{body[key]}" + (f" (hint: {hint})" if isinstance(hint, str) and hint else "")
    return str(body)[:300]
