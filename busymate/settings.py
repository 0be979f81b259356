"""One settings object, built once at the edge and passed down."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from busymate.errors import BusymateError
from busymate.tokens import LOCAL_PUBLISHABLE_KEY, LOCAL_SECRET_KEY

DEFAULT_DB_PORT = 54322
DEFAULT_API_PORT = 54321
# The built dashboard (`make dashboard`) in this checkout, found from the package source.
DEFAULT_DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "dist"
# The Supabase CLI's well-known local password for every database login role.
LOCAL_DB_PASSWORD = "postgres"  # noqa: S105
# The Supabase CLI's well-known local JWT secret (the one `supabase status` prints; docs/auth.md).
LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"  # noqa: S105


def find_project_dir(start: Path) -> Path:
    """The nearest folder at or above `start` that holds `supabase/config.toml`."""
    for folder in (start, *start.parents):
        if (folder / "supabase" / "config.toml").is_file():
            return folder
    raise BusymateError(
        f"no Busymate project found at or above {start} (looked for supabase/config.toml); "
        "run this inside a checkout or set BUSYMATE_PROJECT_DIR"
    )


# The variables a function may be lent (NEEDS "env"): BusyBro's model and its grounding sources.
FUNCTION_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "BUSYBRO_MODEL",
    "BUSYBRO_PING_SECONDS",
    "DASH_ORIGIN",
    "GITHUB_TOKEN",
    "GITHUB_API_URL",
    "BUSYBRO_DOCS_REPO",
    "MCP_ALLOWED_HOSTS",  # the MCP server's public host names (docs/mcp.md), beside the API's own
)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise BusymateError(f"{name}={raw!r} is not a TCP port (1-65535)")
    return int(raw)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise BusymateError(f"{name}={raw!r} is not a positive whole number")
    return int(raw)


DEFAULT_PROXY_PORTS = range(9100, 9200)


def parse_port_range(text: str) -> range:
    """`9100-9199` (or one port) as a range; ValueError with the reason otherwise."""
    first, _, last = text.strip().partition("-")
    try:
        lo, hi = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"{text!r} is not a port range like 9100-9199") from None
    if not 0 < lo <= hi < 65536:
        raise ValueError(f"{text!r} is not a port range like 9100-9199 (1-65535, low to high)")
    return range(lo, hi + 1)


def _port_range(env: Mapping[str, str], name: str, default: range) -> range:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse_port_range(raw)
    except ValueError as exc:
        raise BusymateError(f"{name}: {exc}") from None


def parse_trusted_proxies(text: str) -> tuple[str, ...]:
    """`10.0.0.0/8, 127.0.0.1` as networks; ValueError naming the entry that is not an address or network."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item)))
        except ValueError:
            try:
                near = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (CIDR)") from None
            raise ValueError(f"{item!r} has host bits set: did you mean {near}?") from None
    return tuple(networks)


def _trusted(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    try:
        return parse_trusted_proxies(env.get(name) or "")
    except ValueError as exc:
        raise BusymateError(f"{name}: {exc}") from None


def _words(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(word.strip() for word in (env.get(name) or "").split(",") if word.strip())


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise BusymateError(f"{name}={raw!r} is not true or false")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where the project lives and how to reach its database."""

    project_dir: Path
    state_dir: Path
    db_host: str = "127.0.0.1"
    db_port: int = DEFAULT_DB_PORT
    db_name: str = "postgres"
    db_password: str = LOCAL_DB_PASSWORD
    api_host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    jwt_secret: str = LOCAL_JWT_SECRET
    publishable_key: str = LOCAL_PUBLISHABLE_KEY
    secret_key: str = LOCAL_SECRET_KEY
    # The API server: the largest request body it reads, its pool of `authenticator` connections, and
    # PostgREST's db-max-rows (Supabase's default 1000).
    max_body_bytes: int = 64 * 1024 * 1024
    db_pool_size: int = 10
    max_rows: int | None = 1000
    # /auth/v1: which key signs new tokens (HS256 with jwt_secret, or ES256 with the key under state_dir), how
    # long an access token lives, whether anyone may sign up, and how many sign-in or pairing attempts one
    # address gets per 5 minutes (GoTrue's default for sign-ins is 30).
    jwt_alg: str = "HS256"
    jwt_expiry: int = 3600
    auth_signup: bool = True
    auth_rate_limit: int = 30
    pair_rate_limit: int = 30
    device_token_days: int = 365
    # /realtime/v1 (gateway/realtime/limits.py): how many of the pool's connections Realtime's checks may hold
    # at once (the rest stay REST's), channels and joins per second per socket (Supabase's 100 and 100), and
    # presence kept in memory: one tracked payload, and the whole server's.
    realtime_db_connections: int = 3
    realtime_max_channels_per_client: int = 100
    realtime_max_joins_per_second: int = 100
    realtime_presence_max_kb: int = 256
    realtime_presence_total_mb: int = 64
    # The API server's own limits: the request line and headers together (431 beyond), and api.log's size
    # before it rotates. Proxies whose X-Forwarded-For it believes (networks): none, so rate limits and
    # recorded addresses use the TCP peer unless the operator names the proxy in front.
    max_header_bytes: int = 64 * 1024
    api_log_max_bytes: int = 10 * 1024 * 1024
    trusted_proxies: tuple[str, ...] = ()
    # The proxy's port pool: proxy devices draw their ports from it, and the proxy opens only these.
    proxy_ports: range = DEFAULT_PROXY_PORTS
    # Upstreams the proxy refuses besides the stack's own ports and link-local addresses, and exceptions to
    # both (`host`, `host:port`, CIDR, `CIDR:port`, `[v6]:port`; busymate/proxy/upstream.py checks them).
    proxy_block: tuple[str, ...] = ()
    proxy_allow: tuple[str, ...] = ()
    # Durability trades speed for safety; throw-away test clusters turn it off.
    durable: bool = True
    pg_bindir: Path | None = None
    # What a worker (the proxy, `busymate tail`, the API client) reaches the API with: its URL and publishable
    # (anon) key, from BUSYMATE_URL / BUSYMATE_ANON_KEY, else SUPABASE_URL / SUPABASE_ANON_KEY. Workers never
    # derive them from jwt_secret; the CLI fills them from the local stack it runs when they are not set.
    url: str = ""
    anon_key: str = ""
    # The dashboard's static files the API server serves at / (gateway/dashboard.py).
    dashboard_dir: Path = DEFAULT_DASHBOARD_DIR
    # Secrets and settings lent to the functions that declare them (docs/functions.md, NEEDS "env"), read from
    # the server's environment by name: the analogue of `supabase secrets set` (FUNCTION_ENV lists them).
    function_env: tuple[tuple[str, str], ...] = ()

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory, always inside the state folder."""
        return self.state_dir / "postgres"

    def db_url(self, *, user: str = "postgres", database: str | None = None) -> str:
        """A libpq URL for `user` on this project's cluster (the `DB_URL` of `supabase status`)."""
        return (
            f"postgresql://{user}:{self.db_password}@{self.db_host}:{self.db_port}/{database or self.db_name}"
        )

    @property
    def api_url(self) -> str:
        """Where the API server answers (the `API_URL` of `supabase status`)."""
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def auth_url(self) -> str:
        """/auth/v1 of the API server: also the `iss` of the tokens it issues and its OAuth issuer."""
        return f"{self.api_url}/auth/v1"

    @property
    def migrations_dir(self) -> Path:
        """The Supabase CLI project's migrations."""
        return self.project_dir / "supabase" / "migrations"

    @property
    def platform_dir(self) -> Path:
        """What a Supabase image provides, for a bare Postgres."""
        return self.project_dir / "sql" / "platform"

    @property
    def testing_dir(self) -> Path:
        """Our pgTAP helpers."""
        return self.project_dir / "sql" / "testing"

    @property
    def seed_file(self) -> Path:
        """The Supabase CLI project's seed."""
        return self.project_dir / "supabase" / "seed.sql"

    @property
    def db_tests_dir(self) -> Path:
        """The pgTAP files."""
        return self.project_dir / "supabase" / "tests"

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests use it to pick free ports and folders)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """Build the settings from BUSYMATE_* variables, with the Supabase CLI's defaults."""
        env = os.environ if env is None else env
        if env.get("BUSYMATE_PROJECT_DIR"):
            project = Path(env["BUSYMATE_PROJECT_DIR"]).resolve()
        else:
            project = find_project_dir((cwd or Path.cwd()).resolve())
        state = (
            Path(env["BUSYMATE_STATE_DIR"]).resolve()
            if env.get("BUSYMATE_STATE_DIR")
            else project / ".busymate"
        )
        bindir = Path(env["BUSYMATE_PG_BINDIR"]) if env.get("BUSYMATE_PG_BINDIR") else None
        return cls(
            project_dir=project,
            state_dir=state,
            db_port=_port(env, "BUSYMATE_DB_PORT", DEFAULT_DB_PORT),
            api_port=_port(env, "BUSYMATE_API_PORT", DEFAULT_API_PORT),
            db_password=env.get("BUSYMATE_DB_PASSWORD") or LOCAL_DB_PASSWORD,
            jwt_secret=env.get("BUSYMATE_JWT_SECRET") or LOCAL_JWT_SECRET,
            publishable_key=env.get("BUSYMATE_PUBLISHABLE_KEY") or LOCAL_PUBLISHABLE_KEY,
            secret_key=env.get("BUSYMATE_SECRET_KEY") or LOCAL_SECRET_KEY,
            max_body_bytes=_positive_int(env, "BUSYMATE_MAX_BODY_BYTES", 64 * 1024 * 1024),
            jwt_alg=(env.get("BUSYMATE_JWT_ALG") or "HS256").upper(),
            jwt_expiry=_positive_int(env, "BUSYMATE_JWT_EXPIRY", 3600),
            auth_signup=_flag(env, "BUSYMATE_AUTH_SIGNUP", True),
            auth_rate_limit=_positive_int(env, "BUSYMATE_AUTH_RATE_LIMIT", 30),
            pair_rate_limit=_positive_int(env, "BUSYMATE_PAIR_RATE_LIMIT", 30),
            device_token_days=_positive_int(env, "BUSYMATE_DEVICE_TOKEN_DAYS", 365),
            realtime_db_connections=_positive_int(env, "BUSYMATE_REALTIME_DB_CONNECTIONS", 3),
            realtime_max_channels_per_client=_positive_int(env, "BUSYMATE_REALTIME_MAX_CHANNELS", 100),
            realtime_max_joins_per_second=_positive_int(env, "BUSYMATE_REALTIME_MAX_JOINS_PER_SECOND", 100),
            realtime_presence_max_kb=_positive_int(env, "BUSYMATE_REALTIME_PRESENCE_MAX_KB", 256),
            realtime_presence_total_mb=_positive_int(env, "BUSYMATE_REALTIME_PRESENCE_TOTAL_MB", 64),
            max_header_bytes=_positive_int(env, "BUSYMATE_MAX_HEADER_BYTES", 64 * 1024),
            api_log_max_bytes=_positive_int(env, "BUSYMATE_API_LOG_MAX_BYTES", 10 * 1024 * 1024),
            trusted_proxies=_trusted(env, "BUSYMATE_TRUSTED_PROXIES"),
            proxy_ports=_port_range(env, "BUSYMATE_PROXY_PORTS", DEFAULT_PROXY_PORTS),
            proxy_block=_words(env, "BUSYMATE_PROXY_BLOCK"),
            proxy_allow=_words(env, "BUSYMATE_PROXY_ALLOW"),
            pg_bindir=bindir,
            url=(env.get("BUSYMATE_URL") or env.get("SUPABASE_URL") or "").rstrip("/"),
            anon_key=env.get("BUSYMATE_ANON_KEY") or env.get("SUPABASE_ANON_KEY") or "",
            dashboard_dir=(
                Path(env["BUSYMATE_DASHBOARD_DIR"]).resolve()
                if env.get("BUSYMATE_DASHBOARD_DIR")
                else DEFAULT_DASHBOARD_DIR
            ),
            function_env=tuple((name, env[name]) for name in FUNCTION_ENV if env.get(name)),
        )
