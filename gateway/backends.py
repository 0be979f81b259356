"""The gateway's wiring: the keys and the functions host built with the app, then at startup the database
pools, /rest/v1 (with its schema cache, reloaded on `NOTIFY pgrst` like PostgREST), /realtime/v1 (hub and
replication) and /auth/v1 (GoTrue and the OAuth server); all closed again at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from psycopg_pool import AsyncConnectionPool

from busymate.gateway.auth.gotrue import AuthApi
from busymate.gateway.auth.oauth import OAuthServer
from busymate.gateway.auth.store import AuthStore
from busymate.gateway.availability import Availability
from busymate.gateway.busymate_rules import BusymateRules
from busymate.gateway.edge import Edge, JwtVerifier, ProjectKeys
from busymate.gateway.functions import FunctionsHost
from busymate.gateway.realtime.access import Access
from busymate.gateway.realtime.hub import Hub
from busymate.gateway.realtime.limits import Limits
from busymate.gateway.realtime.replication import Replication
from busymate.gateway.rest import schema as schema_cache
from busymate.gateway.rest.handler import RestApi
from busymate.keys import SigningKeys
from busymate.settings import Settings

log = logging.getLogger("busymate.api")

EXPOSED_SCHEMAS = ("public",)
POOL_TIMEOUT = 5.0  # seconds a request waits for a database connection (504 PGRST003 after)


class Backends:
    """What the routes hand requests to; the database-backed parts are None until `startup` ran."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.signing = SigningKeys.for_project(settings.jwt_secret, settings.state_dir, settings.jwt_alg)
        self.verifier = JwtVerifier(settings.jwt_secret, (self.signing.ec_key,))
        self.keys = ProjectKeys(settings.jwt_secret, settings.publishable_key, settings.secret_key)
        self.edge = Edge(self.keys, self.verifier)
        self.functions = FunctionsHost(
            settings, self.signing, self.verifier.verify, self.keys.anon_key, self.keys.service_key
        )
        self.rest: RestApi | None = None
        self.hub: Hub | None = None
        self.auth: AuthApi | None = None
        self.oauth: OAuthServer | None = None
        self.availability: Availability | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: AsyncConnectionPool | None = None
        self._auth_pool: AsyncConnectionPool | None = None

    async def startup(self) -> None:
        """Open the pools, load the schema cache, start listening for reloads and start replication."""
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
        self.hub.add_hook(BusymateRules(self.hub))  # devices and access announcements: Busymate's own
        replication = Replication(self.hub, self.settings.db_url(), self._pool)
        self.hub.replication = replication
        self._tasks.append(asyncio.create_task(replication.run()))
        await asyncio.wait_for(replication.ready.wait(), timeout=30)

    async def shutdown(self) -> None:
        """Stop listening and close the pools."""
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
