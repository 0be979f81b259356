"""ASGI plumbing the gateway's routes share: the callable types, reading a capped body, sending a `Response`,
a JSON answer and the caller's address."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from busymate.gateway.rest.errors import ApiError
from busymate.gateway.rest.handler import Response

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def client_ip(scope: Scope) -> str:
    """The caller's address: the TCP peer, or what uvicorn read from X-Forwarded-For when the peer is one of
    the trusted proxies; "" when that is not an IP address (it would not fit auth.sessions.ip)."""
    client = scope.get("client")
    if not client:
        return ""
    try:
        return str(ipaddress.ip_address(str(client[0])))
    except ValueError:
        return ""


def json_response(status: int, payload: object) -> Response:
    """A JSON answer."""
    return Response(status, {"content-type": "application/json; charset=utf-8"}, orjson.dumps(payload))


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refused with the gateway's 413 once it passes `limit` bytes."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413, "", f"Request size limit exceeded: the body is over {limit} bytes", gateway=True
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def send_response(send: Send, response: Response) -> None:
    """Send `response` whole, with its length."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
