"""The dashboard's static files at `/` (docs/dashboard.md): `dashboard/dist` as built by `make dashboard`,
its runtime `/config.json`, and `index.html` for the app's own paths (deep links such as `/devices?uuid=`).

Only GET and HEAD of paths outside the API's prefixes come here; anything else, a file that is not there (to a
client that does not ask for HTML) and any path that resolves outside the folder get the gateway's 404 as
before (`None`).
"""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path

import orjson

from busymate.gateway.rest.handler import Response
from busymate.settings import Settings

API_PREFIXES = ("/rest/", "/realtime/", "/auth/", "/functions/", "/.well-known/", "/socket/")
INDEX = "index.html"
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"  # Vite's assets/ carry a content hash in their names
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")
MISSING_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Busymate: dashboard not built</title></head>
<body><h1>The dashboard is not built</h1>
<p>Run <code>make up</code> (or <code>make dashboard</code>) in the Busymate checkout, then reload.</p>
<p>The API answers as usual under <code>/rest/v1</code>, <code>/auth/v1</code>, <code>/realtime/v1</code> and
<code>/functions/v1</code>.</p></body></html>
"""


def content_type(path: Path) -> str:
    """The file's media type by its name, with a charset for text."""
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith(TEXT_TYPES) else kind


def is_api_path(path: str) -> bool:
    """Whether `path` belongs to the API (its answers and errors are the API's, never the dashboard's)."""
    return path.startswith(API_PREFIXES) or path.rstrip("/") in {p.rstrip("/") for p in API_PREFIXES}


class Dashboard:
    """Answers the dashboard's requests from one folder."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.dashboard_dir.resolve()
        self.publishable_key = settings.publishable_key
        self.fallback_url = settings.api_url
        # X-Forwarded-Host is believed only when the operator names a proxy in front (uvicorn already took
        # the scheme from X-Forwarded-Proto in that case, and only from those proxies).
        self.trust_forwarded = bool(settings.trusted_proxies)

    async def answer(self, method: str, path: str, headers: dict[str, str], scheme: str) -> Response | None:
        """The answer to a GET or HEAD of `path`, or None when the gateway's 404 stands."""
        if method not in ("GET", "HEAD") or is_api_path(path):
            return None
        if path == "/config.json":
            return self.config(headers, scheme)
        if not (self.root / INDEX).is_file():
            return Response(
                503, {"content-type": "text/html; charset=utf-8", "cache-control": NO_CACHE}, MISSING_PAGE
            )
        file = self.file(path)
        if file is None and path != "/" and not path.startswith("/assets/"):
            accept = headers.get("accept", "")
            if "text/html" in accept and self.inside(path):
                file = self.root / INDEX  # the app's own route: it reads the path itself
        if file is None:
            return None
        body = await asyncio.to_thread(file.read_bytes)
        cache = IMMUTABLE if file.parent == self.root / "assets" else NO_CACHE
        return Response(
            200,
            {"content-type": content_type(file), "cache-control": cache, "x-content-type-options": "nosniff"},
            body,
        )

    def inside(self, path: str) -> bool:
        """Whether `path` stays inside the folder once resolved (`..`, symlinks and all)."""
        try:
            return (self.root / path.lstrip("/")).resolve().is_relative_to(self.root)
        except (OSError, ValueError):  # a NUL byte, a loop of links
            return False

    def file(self, path: str) -> Path | None:
        """The file `path` names inside the folder (`/` is index.html), or None."""
        name = path.lstrip("/") or INDEX
        try:
            candidate = (self.root / name).resolve()
            if not candidate.is_relative_to(self.root):
                return None
            if candidate.is_dir():
                candidate = candidate / INDEX
            return candidate if candidate.is_file() else None
        except (OSError, ValueError):
            return None

    def config(self, headers: dict[str, str], scheme: str) -> Response:
        """`{"url", "anonKey"}`: the API as this browser reached it, and the project's publishable key."""
        host = headers.get("host", "")
        forwarded = headers.get("x-forwarded-host", "").split(",")[0].strip()
        if self.trust_forwarded and forwarded:
            host = forwarded
        url = f"{scheme}://{host}" if host else self.fallback_url
        body = orjson.dumps({"url": url, "anonKey": self.publishable_key})
        return Response(
            200, {"content-type": "application/json; charset=utf-8", "cache-control": "no-store"}, body
        )
