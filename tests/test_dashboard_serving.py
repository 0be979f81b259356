"""The dashboard's static serving rules (gateway/dashboard.py) through the real ASGI app, against a made-up
dist folder: content types and caching, no way out of the folder, index.html for the app's own paths only when
HTML is asked for, a 503 page when nothing is built, and /config.json; the API's paths answer as before."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from busymate.gateway.server import App
from busymate.settings import Settings
from tests.conftest import PROJECT_DIR

INDEX = b"<!doctype html><title>dashboard</title><div id=root></div>"
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _settings(tmp_path: Path, dist: Path, **changes: object) -> Settings:
    settings = Settings(project_dir=PROJECT_DIR, state_dir=tmp_path / "state", dashboard_dir=dist)
    settings.state_dir.mkdir(exist_ok=True)
    return settings.with_overrides(**changes)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_bytes(INDEX)
    (folder / "assets" / "index-3f2a.js").write_text("console.log(1)\n")
    (folder / "assets" / "index-9b1c.css").write_text("body{}\n")
    (folder / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "secret.txt").write_text("outside the folder")
    return folder


def _get(settings: Settings, path: str, method: str = "GET", **headers: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=App(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:54321") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(call())


@pytest.fixture
def app_settings(tmp_path: Path, dist: Path) -> Settings:
    return _settings(tmp_path, dist)


def test_root_is_index_html_never_cached(app_settings: Settings) -> None:
    answer = _get(app_settings, "/")
    assert answer.status_code == 200
    assert answer.content == INDEX
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    assert _get(app_settings, "/index.html").content == INDEX


@pytest.mark.parametrize(
    ("path", "kind", "cache"),
    [
        ("/assets/index-3f2a.js", "text/javascript; charset=utf-8", "immutable"),
        ("/assets/index-9b1c.css", "text/css; charset=utf-8", "immutable"),
        ("/favicon.svg", "image/svg+xml; charset=utf-8", "no-cache"),
        ("/logo.png", "image/png", "no-cache"),
    ],
)
def test_files_carry_their_content_type(app_settings: Settings, path: str, kind: str, cache: str) -> None:
    answer = _get(app_settings, path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == kind
    assert cache in answer.headers["cache-control"]
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_head_answers_like_get(app_settings: Settings) -> None:
    answer = _get(app_settings, "/assets/index-3f2a.js", "HEAD")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"


def _raw(settings: Settings, path: str, accept: str) -> tuple[int, bytes]:
    """GET `path` exactly as written (httpx would normalise the dots away), as uvicorn would pass it on."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "scheme": "http",
        "headers": [(b"host", b"127.0.0.1"), (b"accept", accept.encode())],
        "client": ("127.0.0.1", 5000),
    }
    asyncio.run(App(settings)(scope, receive, send))
    return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("path", ["/../secret.txt", "/assets/../../secret.txt", "//../secret.txt"])
def test_nothing_outside_the_folder(app_settings: Settings, path: str) -> None:
    for accept in ("*/*", HTML["accept"]):
        status, body = _raw(app_settings, path, accept)
        assert status == 404, (path, accept)
        assert b"outside the folder" not in body


def test_a_link_out_of_the_folder_is_refused(app_settings: Settings, dist: Path) -> None:
    (dist / "escape.txt").symlink_to(dist.parent / "secret.txt")
    answer = _get(app_settings, "/escape.txt")
    assert answer.status_code == 404
    assert b"outside the folder" not in answer.content


def test_app_paths_get_index_html_only_when_html_is_asked_for(app_settings: Settings) -> None:
    deep = _get(app_settings, "/devices?uuid=00000000-0000-0000-0000-000000000001", **HTML)
    assert deep.status_code == 200
    assert deep.content == INDEX
    assert deep.headers["cache-control"] == "no-cache"
    json_client = _get(app_settings, "/devices", accept="application/json")
    assert json_client.status_code == 404
    assert json_client.json() == {"message": "no Route matched with those values"}
    # a missing hashed asset is a 404 even to a browser: never HTML under a script's name
    assert _get(app_settings, "/assets/gone-0000.js", **HTML).status_code == 404
    assert _get(app_settings, "/devices", "POST", **HTML).status_code == 404


@pytest.mark.parametrize(
    "path", ["/rest/", "/rest", "/realtime/v1/other", "/functions", "/auth/x", "/socket/websocket"]
)
def test_api_paths_keep_their_answers(app_settings: Settings, path: str) -> None:
    answer = _get(app_settings, path, **HTML)
    assert answer.status_code == 404
    assert answer.json() == {"message": "no Route matched with those values"}


def test_nothing_built_is_a_503_page_saying_what_to_run(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tmp_path / "no-dist")
    for path in ("/", "/devices"):
        answer = _get(settings, path, **HTML)
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert "make up" in answer.text
        assert "make dashboard" in answer.text
    assert _get(settings, "/config.json").status_code == 200  # generated, not built
    assert _get(settings, "/rest/").status_code == 404


def test_config_json_is_the_api_as_the_browser_reached_it(app_settings: Settings) -> None:
    answer = _get(app_settings, "/config.json", host="dash.example.test:8443")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {"url": "http://dash.example.test:8443", "anonKey": app_settings.publishable_key}
    # X-Forwarded-Host is not believed unless a proxy is trusted
    spoofed = _get(app_settings, "/config.json", **{"x-forwarded-host": "evil.test"})
    assert spoofed.json()["url"] == "http://127.0.0.1:54321"


def test_config_json_believes_a_trusted_proxy(tmp_path: Path, dist: Path) -> None:
    settings = _settings(tmp_path, dist, trusted_proxies=("10.0.0.0/8",))
    answer = _get(settings, "/config.json", **{"x-forwarded-host": "busymate.example.com, inner"})
    assert answer.json()["url"] == "http://busymate.example.com"
