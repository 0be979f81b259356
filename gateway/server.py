"""The local stack's one HTTP server (127.0.0.1:54321): the gateway, then /rest/v1, /realtime/v1, /auth/v1
(with the OAuth 2.1 authorization server) and /functions/v1.

A bare ASGI app on uvicorn with uvloop and httptools: no framework between the socket and the handler. The
gateway does what Supabase's Kong does (https://supabase.com/docs/guides/api/api-keys): an `apikey` must be
one of the project's keys, `sb_publishable_`/`sb_secret_` keys become the anon/service_role roles, and CORS
preflights are answered. Reading the keys and tokens is gateway/edge.py's; this module turns its refusals into
Kong's and PostgREST's answers.

Run it with `python -m busymate.gateway.server` (what `busymate start` does) or `serve(settings)`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from busymate.gateway.auth.errors import HttpRequest
from busymate.gateway.auth.gotrue import Answer, AuthApi, json_body
from busymate.gateway.auth.oauth import OAuthServer
from busymate.gateway.auth.store import AuthStore
from busymate.gateway.availability import RETRY_AFTER, Availability, connection_lost, first_line
from busymate.gateway.edge import Edge, EdgeError, JwtVerifier, ProjectKeys
from busymate.gateway.functions import FunctionResponse, FunctionsHost
from busymate.gateway.logs import configure as configure_logging
from busymate.gateway.realtime.access import Access
from busymate.gateway.realtime.hub import Hub
from busymate.gateway.realtime.limits import Limits
from busymate.gateway.realtime.replication import Replication
from busymate.gateway.rest import schema as schema_cache
from busymate.gateway.rest.errors import ApiError, edge_error
from busymate.gateway.rest.handler import ANON_ROLE, Call, Response, RestApi, error_response
from busymate.keys import SigningKeys
from busymate.project import IDENTITY_HEADER, project_id
from busymate.settings import Settings

log = logging.getLogger("busymate.api")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

EXPOSED_SCHEMAS = ("public",)
FRAME_LEVELS = 10  # what a Realtime frame adds around a broadcast's payload, with room to spare
POOL_TIMEOUT = 5.0  # seconds a request waits for a database connection (504 PGRST003 after)
CORS_EXPOSE = (
    "Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, "
    "Transfer-Encoding, Range-Unit, Preference-Applied, Proxy-Status"
)


class App:
    """The ASGI application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.signing = SigningKeys.for_project(settings.jwt_secret, settings.state_dir, settings.jwt_alg)
        self.verifier = JwtVerifier(settings.jwt_secret, (self.signing.ec_key,))
        self.keys = ProjectKeys(settings.jwt_secret, settings.publishable_key, settings.secret_key)
        self.edge = Edge(self.keys, self.verifier)
        self.anon_key = self.keys.anon_key
        self.service_key = self.keys.service_key
        self.max_body = settings.max_body_bytes
        self.project_id = project_id(settings.state_dir)  # on every answer: the CLI checks whose server it is
        self.rest: RestApi | None = None
        self.hub: Hub | None = None
        self.auth: AuthApi | None = None
        self.oauth: OAuthServer | None = None
        self.functions = FunctionsHost(
            settings, self.signing, self.verifier.verify, self.anon_key, self.keys.service_key
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: AsyncConnectionPool | None = None
        self._auth_pool: AsyncConnectionPool | None = None
        self.availability: Availability | None = None

    # -- lifespan --------------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Open the pool, load the schema cache and start listening for reloads."""
        conninfo = self.settings.db_url(user="authenticator")
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=2,
            max_size=self.settings.db_pool_size,
            kwargs={"autocommit": True},
            open=False,
            name="rest",
            timeout=POOL_TIMEOUT,
        )
        await self._pool.open(wait=True, timeout=30)
        self._auth_pool = AsyncConnectionPool(
            self.settings.db_url(user="supabase_auth_admin"),
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True},
            open=False,
            name="auth",
            timeout=POOL_TIMEOUT,
        )
        await self._auth_pool.open(wait=True, timeout=30)
        self.availability = Availability(conninfo, (self._pool, self._auth_pool))
        store = AuthStore(self._auth_pool)
        self.auth = AuthApi(self.settings, store, self.signing, self.verifier, self.availability)
        self.oauth = OAuthServer(self.settings, store, self.auth)
        cache = await asyncio.to_thread(self._load_cache)
        self.rest = RestApi(
            self._pool, cache, max_rows=self.settings.max_rows, availability=self.availability
        )
        self._tasks.append(asyncio.create_task(self._listen()))
        access = Access(self._pool, Limits.from_settings(self.settings))
        self.hub = Hub(self.edge, access)
        replication = Replication(self.hub, self.settings.db_url(), self._pool)
        self.hub.replication = replication
        self._tasks.append(asyncio.create_task(replication.run()))
        await asyncio.wait_for(replication.ready.wait(), timeout=30)

    async def shutdown(self) -> None:
        """Stop listening and close the pool."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.availability is not None:
            await self.availability.close()
        await self.functions.aclose()
        for pool in (self._pool, self._auth_pool):
            if pool is not None:
                await pool.close()

    def _load_cache(self) -> schema_cache.SchemaCache:
        with psycopg.connect(self.settings.db_url(user="authenticator"), autocommit=True) as conn:
            conn.execute("set search_path = ''")
            return schema_cache.load(conn, EXPOSED_SCHEMAS)

    async def _listen(self) -> None:
        """LISTEN pgrst: reload on 'reload schema', 'reload config' or an empty payload, like PostgREST."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.settings.db_url(user="authenticator"), autocommit=True
                )
                async with conn:
                    await conn.execute("listen pgrst")
                    async for notify in conn.notifies():
                        if notify.payload in ("reload schema", "reload config", ""):
                            cache = await asyncio.to_thread(self._load_cache)
                            if self.rest is not None:
                                self.rest.cache = cache
                            log.info("schema cache reloaded")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("schema listener lost its connection; retrying in 1 s")
                await asyncio.sleep(1)

    # -- requests --------------------------------------------------------------------------------------------

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
                await self._function(scope, receive, send, headers)
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
            response.headers["access-control-allow-origin"] = "*"
            response.headers["access-control-expose-headers"] = CORS_EXPOSE
        response.headers[IDENTITY_HEADER] = self.project_id
        await _send(send, response)

    async def _route(
        self, scope: Scope, receive: Receive, headers: dict[str, str], prefer: list[str]
    ) -> Response:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "OPTIONS" and "access-control-request-method" in headers:
            return self._preflight(headers)
        if path.startswith(("/auth/v1/", "/.well-known/")) or path == "/auth/v1":
            return await self._auth(scope, receive, headers)
        if path.startswith("/realtime/v1/api/") and self.hub is not None:
            body = await _read_body(receive, self.max_body)
            if _too_deep(body):
                message = f"the body is nested more than {254 - FRAME_LEVELS} levels deep"
                return _json(422, {"errors": {"messages": [message]}})
            query = scope["query_string"].decode("latin-1")
            answer = await self.hub.http(method, path[len("/realtime/v1") :], query, headers, body)
            if answer.body is None:
                return Response(answer.status, {})
            return _json(answer.status, answer.body)
        if not (path == "/rest/v1" or path.startswith("/rest/v1/")):
            return _json(404, {"message": "no Route matched with those values"})
        query = scope["query_string"].decode("latin-1")
        claims = self._gateway(headers, query)
        role = str(claims.get("role") or ANON_ROLE)
        if self.rest is None:
            raise ApiError(503, "PGRST002", "Could not query the database for the schema cache. Retrying.")
        body = await _read_body(receive, self.max_body)
        sub = path[len("/rest/v1") :] or "/"
        call = Call(method, sub, query, headers, prefer, body, claims, role)
        return await self.rest.handle(call)

    async def _auth(self, scope: Scope, receive: Receive, headers: dict[str, str]) -> Response:
        """/auth/v1 and the OAuth metadata: the key is required except on the paths Kong leaves open."""
        if self.auth is None or self.oauth is None:
            return _json(
                503, {"code": 503, "error_code": "unavailable", "msg": "The auth server is starting"}
            )
        path: str = scope["path"]
        sub = path[len("/auth/v1") :] if path.startswith("/auth/v1") else path
        query = scope["query_string"].decode("latin-1")
        bearer = headers.get("authorization", "")[7:].strip()
        legacy = self.keys.legacy(bearer)
        if legacy != bearer:
            # Kong turns the opaque keys into the legacy JWTs before GoTrue sees them.
            headers = {**headers, "authorization": f"Bearer {legacy}"}
        cookies = {k: m.value for k, m in SimpleCookie(headers.get("cookie", "")).items()}
        request = HttpRequest(
            scope["method"],
            sub,
            query,
            headers,
            await _read_body(receive, self.max_body),
            _client_ip(scope),
            cookies,
        )
        if self.oauth.handles(request):
            return _answer(await self.oauth.handle(request))
        if not path.startswith("/auth/v1"):
            return _json(404, {"message": "no Route matched with those values"})
        if not sub.startswith(("/health", "/.well-known/")):
            self._gateway(headers, query, verify=False)  # Kong's key check; GoTrue checks tokens itself
        return _answer(await self.auth.handle(request))

    async def _function(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        """/functions/v1/<name>: run the function, streaming its body if it streams."""
        try:
            body = await _read_body(receive, self.max_body)
            answer = await self.functions.call(
                scope["path"][len("/functions/v1") :],
                scope["method"],
                scope["query_string"].decode("latin-1"),
                headers,
                body,
                _client_ip(scope),
            )
        except ApiError as exc:
            await _send(send, error_response(exc))
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
        async for chunk in answer.body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """/realtime/v1/websocket (and Realtime's own /socket/websocket); any other path is refused."""
        path = scope["path"].rstrip("/")
        if self.hub is None or path not in ("/realtime/v1/websocket", "/socket/websocket"):
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.hub.websocket(scope, receive, send)

    def _unreachable(self, exc: BaseException) -> ApiError:
        """PostgREST's PGRST001 for a connection lost under a request; the database is probed until it is
        back."""
        if self.availability is not None:
            self.availability.lost(exc)
        return ApiError(
            503,
            "PGRST001",
            "Database client error. Retrying the connection.",
            details=first_line(exc),
            headers={"retry-after": RETRY_AFTER},
        )

    def _gateway(self, headers: dict[str, str], query: str, *, verify: bool = True) -> dict[str, object]:
        """The request's claims from the edge (gateway/edge.py); a refusal in Kong's shape for a key, in
        PostgREST's for a token."""
        try:
            return self.edge.request_claims(headers, query, verify=verify)
        except EdgeError as exc:
            if exc.kind == "no_apikey":
                raise _gateway_error("No API key found in request") from exc
            if exc.kind == "unknown_key":
                raise _gateway_error("Invalid authentication credentials") from exc
            raise edge_error(exc) from exc

    def _preflight(self, headers: dict[str, str]) -> Response:
        requested = headers.get("access-control-request-headers", "")
        allow = "Authorization" + (f", {requested}" if requested else "")
        return Response(
            200,
            {
                "access-control-allow-origin": "*",
                "access-control-allow-methods": "GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD",
                "access-control-allow-headers": allow,
                "access-control-max-age": "86400",
            },
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _client_ip(scope: Scope) -> str:
    """The caller's address: the TCP peer, or what uvicorn read from X-Forwarded-For when the peer is one of
    the trusted proxies; "" when that is not an IP address (it would not fit auth.sessions.ip)."""
    client = scope.get("client")
    if not client:
        return ""
    try:
        return str(ipaddress.ip_address(str(client[0])))
    except ValueError:
        return ""


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


def _gateway_error(message: str) -> ApiError:
    return ApiError(401, "", message, gateway=True)


def _json(status: int, payload: object) -> Response:
    return Response(status, {"content-type": "application/json; charset=utf-8"}, orjson.dumps(payload))


async def _read_body(receive: Receive, limit: int) -> bytes:
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


async def _send(send: Send, response: Response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m busymate.gateway.server")
    parser.add_argument("--log-file", type=Path, help="log here, rotated by size (default: stderr)")
    serve(Settings.from_env(), parser.parse_args().log_file)
