"""Where the MCP server answers: its resource URL (RFC 8707: what a token's `aud` must name), the
authorization server that issues its tokens, and the Host names it accepts (the SDK's DNS-rebinding check)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from busymate.functions_api import FunctionRequest

PATH = "/functions/v1/mcp"
METADATA_PREFIX = "/.well-known/oauth-protected-resource"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
WILDCARD = ("0.0.0.0", "[::]")  # noqa: S104  a server bound to every address answers on loopback too


@dataclass(frozen=True)
class Site:
    """The server as one request reached it."""

    origin: str  # scheme://host[:port], as the client spelled it
    issuer: str  # the authorization server (the stack's /auth/v1)
    allowed_hosts: tuple[str, ...]

    @property
    def resource(self) -> str:
        """The resource URL tokens are issued for."""
        return f"{self.origin}{PATH}"

    @property
    def metadata_url(self) -> str:
        """RFC 9728 §3.1: the protected-resource metadata of `resource`."""
        return f"{self.origin}{METADATA_PREFIX}{PATH}"

    @property
    def allowed_origins(self) -> list[str]:
        """Browser origins that may call the server: those of the allowed hosts, and any loopback page (a
        local inspector) when the server itself is on loopback, as the SDK allows for a local server."""
        origins = [f"{scheme}://{host}" for host in self.allowed_hosts for scheme in ("http", "https")]
        if urlsplit(self.issuer).hostname in (*LOOPBACK, "::1", *WILDCARD, "::"):
            origins += [f"http://{name}:*" for name in LOOPBACK]
        return origins


def allowed_hosts(issuer: str, configured: str) -> tuple[str, ...]:
    """The Host values the server answers: the issuer's (the API's configured URL), the loopback names on
    its port when it listens there, and MCP_ALLOWED_HOSTS (comma- or space-separated `host[:port]`, or
    `host:*`)."""
    parts = urlsplit(issuer)
    netloc = parts.netloc.lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    hosts = [netloc]
    host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    if host in LOOPBACK or host in WILDCARD:
        hosts += [f"{name}:{port}" for name in LOOPBACK]
    hosts += [h.strip().lower() for h in configured.replace(",", " ").split() if h.strip()]
    return tuple(dict.fromkeys(hosts))


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """The SDK's rule: an exact match, or `name:*` for any port of `name`."""
    host = host.lower()
    return host in allowed or any(a.endswith(":*") and host.startswith(a[:-1]) for a in allowed)


def site_of(request: FunctionRequest, issuer: str, env: Mapping[str, str]) -> Site | None:
    """The site the request reached, or None when its Host is not one the server answers."""
    host = request.headers.get("host", "")
    allowed = allowed_hosts(issuer, env.get("MCP_ALLOWED_HOSTS", ""))
    if not host or not host_allowed(host, allowed):
        return None
    # A TLS-terminating proxy in front says so; the host is already one of the allowed ones.
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    scheme = proto if proto in ("http", "https") else "http"
    return Site(f"{scheme}://{host.lower()}", issuer, allowed)
