"""describe_api's security schemes: how a host's requests authenticate, from header, cookie and query
parameter names and the Authorization scheme word, never their values (a bearer token is only looked at to
say whether it is a JWT)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from busymate.functions.busybro.tools.redact import is_sensitive_name

# Headers every client sends, whatever the API's auth: never a scheme.
_ORDINARY = frozenset(
    {"content-type", "content-length", "accept", "user-agent", "host", "proxy-authorization"}
)


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:60]


def _authorization(name: str, value: str) -> tuple[str, dict[str, Any]]:
    word, _, credential = value.strip().partition(" ")
    if word.lower() == "bearer":
        jwt = credential.strip().startswith("eyJ")
        return "bearerAuth", {"type": "http", "scheme": "bearer", **({"bearerFormat": "JWT"} if jwt else {})}
    if word.lower() == "basic":
        return "basicAuth", {"type": "http", "scheme": "basic"}
    return "authorizationHeader", {"type": "apiKey", "in": "header", "name": name}


def schemes(headers: list[list[str]], query: str | None) -> dict[str, dict[str, Any]]:
    """The OpenAPI security schemes one request shows, by component name."""
    found: dict[str, dict[str, Any]] = {}
    for name, value in headers:
        lower = name.lower()
        if lower == "authorization":
            key, scheme = _authorization(name, value)
            found[key] = scheme
        elif lower == "cookie":
            for part in value.split(";"):
                cookie = part.partition("=")[0].strip()
                if cookie and is_sensitive_name(cookie):
                    found[f"cookie_{_ident(cookie)}"] = {"type": "apiKey", "in": "cookie", "name": cookie}
        elif lower not in _ORDINARY and is_sensitive_name(name):
            found[f"header_{_ident(lower)}"] = {"type": "apiKey", "in": "header", "name": name}
    for name, _ in parse_qsl(query or "", keep_blank_values=True):
        if is_sensitive_name(name):
            found[f"query_{_ident(name)}"] = {"type": "apiKey", "in": "query", "name": name}
    return found
