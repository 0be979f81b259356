"""An async client of the project's HTTP API: a URL, a publishable (or secret) key and a bearer token.

It sends what supabase-py sends (apikey header, Bearer token) and maps a refusal to busymate.client's
ApiRefused (status, code, message, details, hint), the one error mapping the CLI uses too. Functions get
theirs from the host (busymate/functions_api.py); several clients may share one httpx.AsyncClient.
"""

from __future__ import annotations

from typing import Any

import httpx

from busymate.client import refusal


class AsyncApi:
    """Calls to `url` under `key` and `token` (the key alone when token is None)."""

    def __init__(self, url: str, key: str, token: str | None, http: httpx.AsyncClient) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.token = token or key
        self._http = http

    def with_token(self, token: str | None) -> AsyncApi:
        """The same client under another token, sharing the connection pool."""
        return AsyncApi(self.url, self.key, token, self._http)

    async def request(
        self, method: str, path: str, *, json: object = None, params: dict[str, str] | None = None
    ) -> Any:
        """JSON in, JSON out; ApiRefused with the server's own status, code and message when it refuses."""
        headers = {"apikey": self.key, "authorization": f"Bearer {self.token}"}
        response = await self._http.request(
            method, f"{self.url}{path}", json=json, params=params, headers=headers
        )
        if response.status_code >= 400:
            raise refusal(f"{method} {path}", response)
        return response.json() if response.content else None

    async def rpc(self, name: str, args: dict[str, object]) -> Any:
        """POST /rest/v1/rpc/<name>."""
        return await self.request("POST", f"/rest/v1/rpc/{name}", json=args)

    async def select(self, table: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """GET /rest/v1/<table> with PostgREST query parameters."""
        rows = await self.request("GET", f"/rest/v1/{table}", params=params)
        return rows if isinstance(rows, list) else []
