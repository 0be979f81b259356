"""Which URIs the OAuth server accepts: redirect URIs (OAuth 2.1 §2.3.1, RFC 8252), resource indicators
(RFC 8707) and client ID metadata document URLs, each checked the strict way so parsers cannot disagree."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

# RFC 3986's characters: unreserved, reserved and "%". A backslash, a space, a quote or anything outside
# ASCII is read differently by different parsers (WHATWG browsers read "\\" as "/"): such a URI is refused.
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_LOOPBACK_NAMES = ("localhost",)


def loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or `localhost`, compared exactly as parsed (RFC 8252 §7.3 and §8.3)."""
    if host is None:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def strict_url(uri: str) -> SplitResult | None:
    """`uri` split, when it is an absolute URI with no characters parsers disagree on, no userinfo and no
    fragment, whose authority is exactly host[:port] as parsed; None otherwise."""
    if len(uri) > 2000 or not _URI_CHARS.fullmatch(uri) or "#" in uri:
        return None
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:  # a bad port or IPv6 literal
        return None
    if not _SCHEME.fullmatch(parts.scheme) or "@" in parts.netloc:
        return None
    host = parts.hostname or ""
    shown = f"[{host}]" if ":" in host else host
    if parts.netloc.lower() != (f"{shown}:{port}" if port is not None else shown):
        return None
    return parts


def valid_redirect(uri: str) -> bool:
    """A redirect URI a client may register (OAuth 2.1 §2.3.1, RFC 8252 §7): https with a host, http on a
    loopback host, or a private-use scheme for a native app."""
    parts = strict_url(uri)
    if parts is None:
        return False
    scheme = parts.scheme.lower()
    if scheme == "http":
        return loopback(parts.hostname)
    if scheme == "https":
        return bool(parts.hostname)
    # A private-use scheme (RFC 8252 §7.1), reverse domain, e.g. com.example.app:/callback: no authority.
    return "." in scheme and not parts.netloc


def valid_resource(uri: str) -> bool:
    """An RFC 8707 resource indicator: an absolute http(s) URI without a fragment."""
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.fragment


def metadata_document_url(client_id: str) -> bool:
    """Whether `client_id` is a metadata document's URL: https with a path (http on a loopback host)."""
    parts = strict_url(client_id)
    if parts is None or parts.path in ("", "/"):
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and loopback(parts.hostname))
