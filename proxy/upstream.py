"""Which upstreams the proxy refuses, whatever a device's allow list says.

A capture port must never be a way into the stack. The proxy refuses the stack's own listeners (the API
server's port, the database's port, every port of the proxy pool) on any address of this machine (loopback,
0.0.0.0 and ::, and this host's interface addresses), link-local addresses on any port (169.254.0.0/16 and
fe80::/10, where cloud metadata services answer), and what the operator blocks (`BUSYMATE_PROXY_BLOCK`); the
operator's exceptions (`BUSYMATE_PROXY_ALLOW`) win over both. A rule is `host`, `host:port`, an address or a
CIDR, `CIDR:port` or `[v6]:port`. Addresses and CIDRs are decided on the addresses a name resolves to, so
`localhost`, a name that resolves to 127.0.0.1, `[::1]`, `2130706433` and `0x7f000001` are all 127.0.0.1
here; a rule written as a name matches the name the client asked for.

It is applied in three places:
- `check()`, before a request or a CONNECT goes upstream: the client gets a 403 page naming the upstream and
  why. Its answers are cached for a few seconds; it gives the answer, the two below are the gate.
- `connecting()`, in mitmproxy's `server_connect` hook, which every upstream connection passes (a resend, a
  URL edited at a breakpoint, a streamed upload): an address literal is refused there, before a packet goes.
- the resolver guard: for a name, mitmproxy's `asyncio.open_connection` looks it up again; the guard checks
  the addresses that lookup returns, the ones the connection will use, so a name that answers a public address
  to the first lookup and 127.0.0.1 to the second (DNS rebinding) gets no further either.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mitmproxy import http
from mitmproxy.flow import Error
from mitmproxy.proxy.layers.http._base import format_error  # mitmproxy's own error page

from busymate.settings import Settings

log = logging.getLogger("busymate.proxy")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
REFUSED = "busymate.refused"  # flow.metadata: why the proxy refused the flow's upstream
CACHE_SECONDS = 5.0
CACHE_SIZE = 1024
_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)
# Set in server_connect, in the task that then opens the connection: its lookups are the ones to check.
_CONNECTING: contextvars.ContextVar[Upstreams | None] = contextvars.ContextVar(
    "busymate_upstream", default=None
)


@dataclass(frozen=True)
class Rule:
    """One entry of BUSYMATE_PROXY_BLOCK or BUSYMATE_PROXY_ALLOW."""

    text: str
    name: str | None = None
    network: Network | None = None
    port: int | None = None

    def matches_name(self, name: str, port: int) -> bool:
        """Whether this rule names `name` (as the client wrote it) on `port`."""
        return self.name is not None and self.name == name and self.port in (None, port)

    def matches_address(self, address: Address, port: int) -> bool:
        """Whether `address` on `port` falls under this rule."""
        return self.network is not None and address in self.network and self.port in (None, port)


def _rule_port(text: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{text!r}: {value!r} is not a port (1-65535)")
    return int(value)


def parse_rule(text: str) -> Rule:
    """A rule: `host`, `host:port`, an address or CIDR, `CIDR:port`, `[v6 CIDR]:port`; else ValueError."""
    host, port = text, None
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(
                f"{text!r} is not like [::1]:5432 (an IPv6 address or CIDR in brackets, then :port)"
            )
        port = _rule_port(text, rest[1:]) if rest else None
    elif text.count(":") == 1:
        host, _, value = text.partition(":")
        port = _rule_port(text, value)
    try:
        return Rule(text, network=ipaddress.ip_network(host), port=port)
    except ValueError:
        pass
    try:
        meant = ipaddress.ip_network(host, strict=False)
    except ValueError:
        meant = None
    if meant is not None:
        raise ValueError(f"{text!r}: {host} has host bits set; did you mean {meant}?")
    name = host.lower().rstrip(".")
    if "/" in host or ":" in host or re.fullmatch(r"[0-9.]+", name) or not _NAME.match(name):
        raise ValueError(f"{text!r} is not a host name, an address or a CIDR (like 10.0.0.0/8:5432)")
    return Rule(text, name=name, port=port)


def parse_rules(values: str | Iterable[str]) -> tuple[Rule, ...]:
    """Every rule of comma-separated lists (one string or several)."""
    texts = [values] if isinstance(values, str) else list(values)
    return tuple(parse_rule(part.strip()) for text in texts for part in text.split(",") if part.strip())


def _literal(host: str) -> Address | None:
    """`host` as an address when it is written as one, as asyncio decides (it skips the lookup for these)."""
    for family, make in ((socket.AF_INET, ipaddress.IPv4Address), (socket.AF_INET6, ipaddress.IPv6Address)):
        try:
            return make(socket.inet_pton(family, host))
        except (OSError, ValueError):
            continue
    return None


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_this_host(address: Address) -> bool:
    """Whether `address` is this machine's: loopback, 0.0.0.0 or ::, or an interface's (a socket binds it)."""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Refusal:
    """An upstream the proxy will not connect to, and why."""

    host: str
    port: int
    address: str
    reason: str

    @property
    def where(self) -> str:
        """`host:port`, with the address it resolved to when that differs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" + (f" ({self.address})" if self.address != self.host else "")

    def __str__(self) -> str:
        return f"busymate refuses the upstream {self.where}: {self.reason}"


class Upstreams:
    """The refused upstreams of one proxy (see the module's docstring)."""

    def __init__(
        self,
        listeners: Iterable[tuple[range, str]],
        block: Iterable[Rule] = (),
        allow: Iterable[Rule] = (),
    ) -> None:
        self.listeners = tuple(listeners)
        self.block = tuple(block)
        self.allow = tuple(allow)
        # check()'s answers, for a few seconds: they pick the page a client sees; connecting() is the gate.
        self._verdicts: dict[tuple[str, int], tuple[float, Refusal | None]] = {}
        self._getaddrinfo: Any = None

    @classmethod
    def for_proxy(cls, settings: Settings, pool: range) -> Upstreams:
        """The stack's API, database and pool ports and the operator's rules (ValueError names a bad rule)."""
        rules = {}
        for var, values in (("BLOCK", settings.proxy_block), ("ALLOW", settings.proxy_allow)):
            try:
                rules[var] = parse_rules(values)
            except ValueError as exc:
                raise ValueError(f"BUSYMATE_PROXY_{var} (--{var.lower()}-upstream): {exc}") from None
        listeners = (
            (range(settings.api_port, settings.api_port + 1), "the API server's port"),
            (range(settings.db_port, settings.db_port + 1), "the database's port"),
            (pool, f"a port of the proxy pool ({pool.start}-{pool.stop - 1})"),
        )
        return cls(listeners, rules["BLOCK"], rules["ALLOW"])

    def describe(self) -> str:
        """One line for the log: what is refused, and the operator's rules."""
        ports = ", ".join(
            f"{r.start}-{r.stop - 1}" if len(r) > 1 else str(r.start) for r, _ in self.listeners
        )
        line = f"never forwarding to the stack's ports ({ports}) on this machine, nor to link-local addresses"
        if self.block:
            line += "; blocked: " + ", ".join(r.text for r in self.block)
        if self.allow:
            line += "; allowed: " + ", ".join(r.text for r in self.allow)
        return line

    def _reason(self, address: Address, port: int) -> str | None:
        address = _unmapped(address)
        if any(rule.matches_address(address, port) for rule in self.allow):
            return None
        for rule in self.block:
            if rule.matches_address(address, port):
                return f"the operator blocks {rule.text} (BUSYMATE_PROXY_BLOCK)"
        if any(address in net for net in LINK_LOCAL):
            return "a link-local address (cloud metadata services answer there); no capture port leads there"
        for ports, what in self.listeners:
            if port in ports and is_this_host(address):
                return f"{what} on this machine; a capture port never leads into the stack"
        return None

    def judge(self, host: str, port: int, addresses: Iterable[Address]) -> Refusal | None:
        """The refusal for `host`:`port` resolved to `addresses` (any refused address refuses it), or None."""
        name = host.lower().rstrip(".")
        if any(rule.matches_name(name, port) for rule in self.allow):
            return None
        for rule in self.block:
            if rule.matches_name(name, port):
                return Refusal(host, port, host, f"the operator blocks {rule.text} (BUSYMATE_PROXY_BLOCK)")
        for address in addresses:
            reason = self._reason(address, port)
            if reason is not None:
                return Refusal(host, port, str(_unmapped(address)), reason)
        return None

    async def check(self, host: str, port: int) -> Refusal | None:
        """The refusal for a request to `host`:`port`, or None (an unknown name is left to mitmproxy)."""
        now = time.monotonic()
        cached = self._verdicts.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        bare = host.removeprefix("[").removesuffix("]")
        literal = _literal(bare)
        addresses = [literal] if literal is not None else await self._resolve(bare, port)
        verdict = self.judge(bare, port, addresses)
        if len(self._verdicts) >= CACHE_SIZE:
            self._verdicts.clear()
        self._verdicts[(host, port)] = (now + CACHE_SECONDS, verdict)
        return verdict

    async def _resolve(self, host: str, port: int) -> list[Address]:
        loop = asyncio.get_running_loop()
        try:
            infos = await (self._getaddrinfo or loop.getaddrinfo)(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return []
        return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))

    def connecting(self, host: str, port: int) -> Refusal | None:
        """server_connect: refuse an address literal now; mark a name's lookup for the resolver guard."""
        _CONNECTING.set(self)
        literal = _literal(host)
        return self.judge(host, port, [literal]) if literal is not None else None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wrap the loop's lookups: a connection `connecting` marked must not resolve to a refused address."""
        original = loop.getaddrinfo
        self._getaddrinfo = original

        async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            infos = await original(host, port, *args, **kwargs)
            if _CONNECTING.get() is self and isinstance(host, str) and str(port).isdigit():
                refusal = self.judge(host, int(port), [ipaddress.ip_address(info[4][0]) for info in infos])
                if refusal is not None:
                    log.warning("%s (when connecting)", refusal)
                    raise OSError(str(refusal))
            return infos

        loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
        log.info("%s", self.describe())


def refuse(flow: http.HTTPFlow, refusal: Refusal) -> None:
    """Answer the flow 403 with mitmproxy's error page; the reason is also its error, so the feed shows it."""
    flow.response = http.Response.make(403, format_error(403, str(refusal)), {"content-type": "text/html"})
    flow.error = Error(str(refusal))
    flow.metadata[REFUSED] = str(refusal)
