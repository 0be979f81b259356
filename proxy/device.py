"""What the addon knows of a proxy device with an open port, and how the proxy runs."""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass

from busymate.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEVICE = "busymate.device"  # flow.metadata: the device a replayed flow belongs to


@dataclass(frozen=True)
class Device:
    """A proxy device with an open port."""

    uuid: str
    name: str
    workspace_id: str
    port: int
    allowed: tuple[Network, ...]
    credential_id: str  # which pairing its token belongs to: a change lets its spool be written again
    token: str  # issued by /functions/v1/device-token
    paired_at: str | None = None  # which credential this is: a new pairing moves it

    def allows(self, address: str) -> bool:
        """Whether a connection from `address` may use this device's port."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.allowed)


@dataclass(frozen=True)
class ProxyConfig:
    """How the proxy runs."""

    settings: Settings
    ports: range
    listen_host: str = "0.0.0.0"  # noqa: S104 - phones reach it over the LAN; the source gate decides
    breakpoint_timeout: float = 60.0
    flush_interval: float = 0.05


def networks(values: list[str] | None) -> tuple[Network, ...]:
    """The networks of `allowed_sources` (a value that is none is skipped)."""
    nets = []
    for value in values or []:
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(value, strict=False))
    return tuple(nets)
