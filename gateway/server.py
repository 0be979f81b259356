"""The local stack's one HTTP server (127.0.0.1:54321): the gateway, then /rest/v1, /realtime/v1, /auth/v1
(with the OAuth 2.1 authorization server) and /functions/v1; the dashboard at / (gateway/dashboard.py).

A bare ASGI app on uvicorn with uvloop and httptools: no framework between the socket and the handler. The
gateway does what Supabase's Kong does (https://supabase.com/docs/guides/api/api-keys): an `apikey` must be
one of the project's keys, `sb_publishable_`/`sb_secret_` keys become the anon/service_role roles, and CORS
preflights are answered (gateway/kong.py, reading keys and tokens through gateway/edge.py). This module is the
ASGI app: it routes each request to its backend, wired in gateway/backends.py.

Run it with `python -m busymate.gateway.server` (what `busymate start` does) or `serve(settings)`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import orjson
import psycopg

from busymate.functions_api import FunctionResponse
from busymate.gateway import kong
from busymate.gateway.asgi import Receive, Scope, Send, client_ip, json_response, read_body, send_response
from busymate.gateway.auth.answer import Answer, json_body
from busymate.gateway.auth.errors import HttpRequest
from busymate.gateway.availability import RETRY_AFTER, connection_lost, first_line
from busymate.gateway.backends import Backends
from busymate.gateway.dashboard import Dashboard
from busymate.gateway.logs import configure as configure_logging
from busymate.gateway.rest.errors import ApiError
from busymate.gateway.rest.handler import ANON_ROLE, Call, Response, error_response
from busymate.project import IDENTITY_HEADER, project_id
from busymate.settings import Settings

log = logging.getLogger("busymate.api")

FRAME_LEVELS = 10  # what a Realtime frame adds around a broadcast's payload, with room to spare
# RFC 9728 §3.1: a function that is a protected resource (mcp) answers its metadata at this prefix + its path.
RESOURCE_METADATA = "/.well-known/oauth-protected-resource/functions/v1/"


class App:
    """The ASGI application: routes each request to its backend (gateway/backends.py)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backends = Backends(settings)
        self.dashboard = Dashboard(settings)
        self.max_body = settings.max_body_bytes
        self.project_id = project_id(settings.state_dir)  # on every answer: the CLI checks whose server it is

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        headers: dict[str, str] = {}
        prefer: list[str] = []
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name == "prefer":
                prefer.append(value)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        origin = headers.get("origin")
        try:
            if scope["path"].startswith("/functions/v1/"):
                await self._function(scope, receive, send, headers, scope["path"][len("/functions/v1") :])
                return
            if scope["path"].startswith(RESOURCE_METADATA):
                name, _, rest = scope["path"][len(RESOURCE_METADATA) :].partition("/")
                where = f"/{name}/.well-known/oauth-protected-resource{f'/{rest}' if rest else ''}"
                await self._function(scope, receive, send, headers, where)
                return
            response = await self._route(scope, receive, headers, prefer)
        except ApiError as exc:
            response = error_response(exc)
        except psycopg.OperationalError as exc:
            if not connection_lost(exc):
                raise
            response = error_response(self._unreachable(exc))
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            response = error_response(ApiError(500, "PGRST500", "Internal server error"))
        if origin:
            kong.expose_cors(response)
        response.headers[IDENTITY_HEADER] = self.project_id
        await send_response(send, response)

    async def _route(
        self, scope: Scope, receive: Receive, headers: dict[str, str], prefer: list[str]
    ) -> Response:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "OPTIONS" and "access-control-request-method" in headers:
            return kong.preflight(headers)
        if path.startswith(("/auth/v1/", "/.well-known/")) or path == "/auth/v1":
            return await self._auth(scope, receive, headers)
        hub = self.backends.hub
        if path.startswith("/realtime/v1/api/") and hub is not None:
            body = await read_body(receive, self.max_body)
            if _too_deep(body):
                message = f"the body is nested more than {254 - FRAME_LEVELS} levels deep"
                return json_response(422, {"errors": {"messages": [message]}})
            query = scope["query_string"].decode("latin-1")
            answer = await hub.http(method, path[len("/realtime/v1") :], query, headers, body)
            if answer.body is None:
                return Response(answer.status, {})
            return json_response(answer.status, answer.body)
        if not (path == "/rest/v1" or path.startswith("/rest/v1/")):
            page = await self.dashboard.answer(method, path, headers, scope.get("scheme", "http"))
            return page or json_response(404, {"message": "no Route matched with those values"})
        query = scope["query_string"].decode("latin-1")
        claims = kong.request_claims(self.backends.edge, headers, query)
        role = str(claims.get("role") or ANON_ROLE)
        rest = self.backends.rest
        if rest is None:
            raise ApiError(503, "PGRST002", "Could not query the database for the schema cache. Retrying.")
        body = await read_body(receive, self.max_body)
        sub = path[len("/rest/v1") :] or "/"
        call = Call(method, sub, query, headers, prefer, body, claims, role)
        return await rest.handle(call)

    async def _auth(self, scope: Scope, receive: Receive, headers: dict[str, str]) -> Response:
        """/auth/v1 and the OAuth metadata: the key is required except on the paths Kong leaves open."""
        auth, oauth = self.backends.auth, self.backends.oauth
        if auth is None or oauth is None:
            return json_response(
                503, {"code": 503, "error_code": "unavailable", "msg": "The auth server is starting"}
            )
        path: str = scope["path"]
        sub = path[len("/auth/v1") :] if path.startswith("/auth/v1") else path
        query = scope["query_string"].decode("latin-1")
        bearer = headers.get("authorization", "")[7:].strip()
        legacy = self.backends.keys.legacy(bearer)
        if legacy != bearer:
            # Kong turns the opaque keys into the legacy JWTs before GoTrue sees them.
            headers = {**headers, "authorization": f"Bearer {legacy}"}
        cookies = {k: m.value for k, m in SimpleCookie(headers.get("cookie", "")).items()}
        request = HttpRequest(
            scope["method"],
            sub,
            query,
            headers,
            await read_body(receive, self.max_body),
            client_ip(scope),
            cookies,
        )
        if oauth.handles(request):
            return _answer(await oauth.handle(request))
        if not path.startswith("/auth/v1"):
            return json_response(404, {"message": "no Route matched with those values"})
        if not sub.startswith(("/health", "/.well-known/")):
            # Kong's key check; GoTrue checks tokens itself
            kong.request_claims(self.backends.edge, headers, query, verify=False)
        return _answer(await auth.handle(request))

    async def _function(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], path: str
    ) -> None:
        """/functions/v1/<name> (`path` is `/<name>[/rest]`): run the function, streaming its body if it
        streams. Its RFC 9728 metadata reaches it as `/<name>/.well-known/oauth-protected-resource`."""
        try:
            body = await read_body(receive, self.max_body)
            answer = await self.backends.functions.call(
                path,
                scope["method"],
                scope["query_string"].decode("latin-1"),
                headers,
                body,
                client_ip(scope),
            )
        except ApiError as exc:
            await send_response(send, error_response(exc))
            return
        except Exception:
            log.exception("function %s failed", scope["path"])
            answer = FunctionResponse.json(500, {"code": "INTERNAL_ERROR", "message": "The function failed"})
        out = dict(answer.headers)
        if headers.get("origin"):
            out["access-control-allow-origin"] = "*"
        if answer.status == 503 and not any(k.lower() == "retry-after" for k in out):
            out["retry-after"] = RETRY_AFTER  # the database is away (or the function says it is busy)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out.items()]
        if isinstance(answer.body, bytes):
            raw.append((b"content-length", str(len(answer.body)).encode()))
            await send({"type": "http.response.start", "status": answer.status, "headers": raw})
            await send({"type": "http.response.body", "body": answer.body})
            return
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
        await _stream(answer.body, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """/realtime/v1/websocket (and Realtime's own /socket/websocket); any other path is refused."""
        path = scope["path"].rstrip("/")
        hub = self.backends.hub
        if hub is None or path not in ("/realtime/v1/websocket", "/socket/websocket"):
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        await hub.websocket(scope, receive, send)

    def _unreachable(self, exc: BaseException) -> ApiError:
        """PostgREST's PGRST001 for a connection lost under a request; the database is probed until it is
        back."""
        if self.backends.availability is not None:
            self.backends.availability.lost(exc)
        return ApiError(
            503,
            "PGRST001",
            "Database client error. Retrying the connection.",
            details=first_line(exc),
            headers={"retry-after": RETRY_AFTER},
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.backends.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.backends.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _too_deep(body: bytes) -> bool:
    """Whether `body` is JSON that orjson reads (1024 levels) but could not write again inside a Realtime
    frame (254 levels in all, the frame taking a few): such a payload would fail half-way through a
    broadcast."""
    try:
        value = orjson.loads(body)
        for _ in range(FRAME_LEVELS):
            value = [value]
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return True
    except orjson.JSONDecodeError:
        return False  # not JSON: the hub says so in its own words
    return False


def _answer(answer: Answer) -> Response:
    headers = dict(answer.headers or {})
    body = json_body(answer)
    if body:
        headers.setdefault("content-type", answer.content_type)
    return Response(answer.status, headers, body)


def serve(settings: Settings, log_file: Path | None = None) -> None:
    """Run the server in the foreground until interrupted, logging to `log_file` (rotated) or stderr."""
    import uvicorn

    from busymate.gateway.httpproto import head_limited

    configure_logging(log_file, settings.api_log_max_bytes)
    trusted = list(settings.trusted_proxies)
    uvicorn.run(
        App(settings),
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop",
        http=head_limited(settings.max_header_bytes),  # httptools, with the head capped (431)
        h11_max_incomplete_event_size=settings.max_header_bytes,  # the same cap if h11 is ever used
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, and every local client is
        # 127.0.0.1: only the operator's proxies are believed, and then only the right-most untrusted hop.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
        log_config=None,  # uvicorn's records go to our handler (rotated, tracebacks once)
        ws="websockets-sansio",
        ws_per_message_deflate=False,  # compressing every frame per socket would dominate a fan-out
        ws_max_size=5 * 1024 * 1024,  # Realtime's largest frame
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=75,  # like a gateway: clients keep their connections between bursts
        timeout_graceful_shutdown=3,  # then close what is still open (sockets, streams) and exit
    )


async def _stream(body: AsyncIterator[bytes], receive: Receive, send: Send) -> None:
    """Send a streamed body as it comes; when the client goes away first, stop pulling from it (the function's
    generator is closed at its current await, so a BusyBro answer makes no further model call)."""

    async def pump() -> None:
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    streaming, watching = asyncio.create_task(pump()), asyncio.create_task(gone())
    try:
        await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (streaming, watching):
            task.cancel()
        await asyncio.gather(streaming, watching, return_exceptions=True)
        close = getattr(body, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
    if streaming.done() and not streaming.cancelled() and streaming.exception() is not None:
        log.error("a streamed function body failed", exc_info=streaming.exception())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m busymate.gateway.server")
    parser.add_argument("--log-file", type=Path, help="log here, rotated by size (default: stderr)")
    serve(Settings.from_env(), parser.parse_args().log_file)
