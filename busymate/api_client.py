"""The async client of the project's HTTP API, for the workers: the proxy (its control calls and its spool's
writes), `busymate tail`, and the functions host's `ctx.api`.

Built from a URL, a publishable key and a token source (a token, or a callable, plain or async, asked
before every call: the proxy's renewed operator token, the CLI's session), with busymate.api_core's headers
and its one error mapping. A call may name another token (the proxy writes under each device's own).
Several clients may share one httpx.AsyncClient (`with_token`, or pass `http`).
"""

from __future__ import annotations

from typing import Any

import httpx

from busymate.api_core import AsyncTokenSource, decode, headers, token_soon, unreachable


class AsyncApi:
    """Calls to `url` under `key` and the token `token` gives (the key alone when it gives None)."""

    def __init__(
        self,
        url: str,
        key: str,
        token: AsyncTokenSource = None,
        http: httpx.AsyncClient | None = None,
        *,
        timeout: float | httpx.Timeout = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.token = token
        self._owned = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)

    def with_token(self, token: AsyncTokenSource) -> AsyncApi:
        """The same client under another token, sharing the connection pool."""
        return AsyncApi(self.url, self.key, token, self._http)

    async def aclose(self) -> None:
        """Close the connection pool, if this client made it."""
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: object = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The raw answer, whatever its status, under `token` (default: the client's); ApiUnreachable when
        none came."""
        bearer = token if token is not None else await token_soon(self.token)
        sent = {**headers(self.key, bearer), **(extra or {})}
        try:
            return await self._http.request(
                method, f"{self.url}{path}", json=json, content=content, params=params, headers=sent
            )
        except httpx.HTTPError as exc:
            raise unreachable(self.url, f"{method} {path}", exc) from exc

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: object = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> Any:
        """JSON in, JSON out; ApiRefused (busymate.api_core) with the server's own status, code and message
        when it refuses."""
        response = await self.send(
            method, path, token=token, json=json, content=content, params=params, extra=extra
        )
        return decode(f"{method} {path}", response)

    async def rpc(self, name: str, args: dict[str, object], *, token: str | None = None) -> Any:
        """POST /rest/v1/rpc/<name>."""
        return await self.request("POST", f"/rest/v1/rpc/{name}", json=args, token=token)

    async def select(
        self, table: str, params: dict[str, str], *, token: str | None = None
    ) -> list[dict[str, Any]]:
        """GET /rest/v1/<table> with PostgREST query parameters."""
        rows = await self.request("GET", f"/rest/v1/{table}", params=params, token=token)
        return rows if isinstance(rows, list) else []
