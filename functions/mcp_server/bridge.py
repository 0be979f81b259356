"""One FunctionRequest through the SDK's ASGI app (its auth middleware, transport checks and JSON-RPC
server), collected into a FunctionResponse. The app answers in JSON (stateless streamable HTTP), so the
whole answer is known when the app returns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import Message

from busymate.functions.mcp_server.server import app_for
from busymate.functions.mcp_server.site import PATH, Site
from busymate.functions_api import FunctionRequest, FunctionResponse


async def serve(
    request: FunctionRequest, site: Site, challenges: dict[int, Callable[[str], str]]
) -> FunctionResponse:
    """Run the request through the site's MCP app; `challenges` rewrites the `WWW-Authenticate` of a 401 or
    403 the SDK's auth answers (to add the scopes to ask for)."""
    app, manager = app_for(site)
    where = urlsplit(site.origin)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": where.scheme,
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": request.query_string.encode("latin-1"),
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
        "client": (request.client_ip, 0),
        "server": (where.hostname or "", where.port or (443 if where.scheme == "https" else 80)),
    }
    delivered = False
    status = 500
    headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await asyncio.Event().wait()  # the body was whole; the client's leaving is the host's business
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for raw_name, raw_value in message.get("headers", []):
                name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    async with manager.run():
        await app(scope, receive, send)
    rewrite = challenges.get(status)
    if rewrite is not None and "www-authenticate" in headers:
        headers["www-authenticate"] = rewrite(headers["www-authenticate"])
    headers.pop("content-length", None)  # the host sets it
    return FunctionResponse(status, headers, b"".join(chunks))
