"""GET /functions/v1/pac/<device uuid>: the proxy auto-config (PAC) file of a proxy device.

Operating systems (an iPhone's "Automatic" proxy, macOS, Windows, browsers) fetch a PAC file by URL with no
token, so this function runs without one (VERIFY_JWT = False): the device's uuid is the secret. It asks the
`device_pac_port` RPC under the publishable key alone, which answers a proxy device's port and nothing for any
other uuid, and answers

    function FindProxyForURL(url, host) { return "PROXY <host>:<port>; DIRECT"; }

where <host> is the host this request reached the API at (its Host header, without the port): the proxy runs
beside the API, and a phone that could fetch this file reaches that host. `DIRECT` is the fallback when the
proxy does not answer. docs/devices.md, "PAC".
"""

from __future__ import annotations

import re
import uuid

from busymate.api_core import ApiRefused
from busymate.functions_api import FunctionContext, FunctionRequest, FunctionResponse

VERIFY_JWT = False  # operating systems fetch PAC files without a token; the device uuid is the secret

CONTENT_TYPE = "application/x-ns-proxy-autoconfig"
HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(?::\d{1,5})?")


def _error(status: int, error: str, message: str) -> FunctionResponse:
    return FunctionResponse.json(status, {"error": error, "message": message})


def proxy_host(host_header: str) -> str | None:
    """The host part of a Host header (brackets kept for IPv6), or None when it is not a plain host."""
    host_header = host_header.strip()
    if not HOST.fullmatch(host_header):
        return None
    if host_header.startswith("["):
        return host_header[: host_header.index("]") + 1]
    return host_header.rsplit(":", 1)[0] if ":" in host_header else host_header


def pac_file(host: str, port: int) -> bytes:
    """The PAC script: everything through the device's proxy port, directly when the proxy is away."""
    return (f'function FindProxyForURL(url, host) {{\n  return "PROXY {host}:{port}; DIRECT";\n}}\n').encode()


async def handle(request: FunctionRequest, ctx: FunctionContext) -> FunctionResponse:
    """The PAC file of the proxy device the path names, or a clear 4xx."""
    if request.method not in ("GET", "HEAD"):
        return _error(405, "method_not_allowed", "GET /functions/v1/pac/<device uuid>")
    name = request.path.strip("/").removesuffix(".pac")
    try:
        device = str(uuid.UUID(name))
    except ValueError:
        return _error(
            400, "validation_failed", "name a proxy device by its uuid: GET /functions/v1/pac/<device uuid>"
        )
    host = proxy_host(request.headers.get("host", ""))
    if host is None:
        return _error(400, "bad_host", "the request's Host header is not a host name or address")
    try:
        port = await ctx.anon.rpc("device_pac_port", {"device_uuid": device})
    except ApiRefused as exc:
        if exc.status >= 500:
            raise
        return _error(404, "not_found", f"no proxy device {device}")
    if not isinstance(port, int) or isinstance(port, bool):
        return _error(404, "not_found", f"no proxy device {device}")
    return FunctionResponse(
        200,
        {"content-type": CONTENT_TYPE, "cache-control": "no-cache"},
        pac_file(host, port),
    )
