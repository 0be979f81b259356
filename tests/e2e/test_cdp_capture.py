"""`busymate.cdp_capture` against real Chromium (headless) and a local HTTPS site (h2; its leaf trusted by
`--ignore-certificate-errors-spki-list`, so the service worker registers as on a real site): every request
the page, its cross-site iframe, its dedicated worker and its service worker make is captured once, as
DevTools' Network panel shows it: bodies (request bodies too, a 200 kB one), each redirect hop its own 302
entry, wire headers from the ExtraInfo events (the two Set-Cookie headers), the WebSocket with its
messages, the SSE stream as streamed, the 10 MB download truncated at the cap with its full size, bodies
read before the navigation kept, the request the navigation cut off marked lost; two tabs opened by
`open_page`; and a raw `Runtime.evaluate` answers 2. Then the same engine fed made-up events: ExtraInfo in
either order across a redirect chain."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from busymate.cdp_capture import CdpCapture, CdpError, launch_chromium
from tests.e2e.cdp_site import BIG_POST_SIZE, DOWNLOAD_SIZE, Site
from tests.e2e.origin import make_certs
from tests.e2e.proxy_helpers import spki_hash

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium")


async def _capture(
    site: Site, profile: Path, trust: list[str]
) -> tuple[list[dict[str, Any]], Any, dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    process, ws_url = await launch_chromium(
        CHROMIUM, headless=True, user_data_dir=profile, extra_args=["--site-per-process", *trust]
    )
    try:
        capture = CdpCapture(ws_url, rows.append, max_body_bytes=1_048_576)
        await capture.start()
        # Two more tabs, each made blank, attached while it waits for the debugger, then navigated, so its
        # first request (the document) is seen.
        await capture.open_page(site.url + "/")
        await capture.open_page(site.url + "/page3")

        def done() -> bool:
            paths = {r["path"] for r in rows}
            return (
                {"/after", "/third"} <= paths and any(r["scheme"] == "wss" for r in rows) and "/slow" in paths
            )

        deadline = time.monotonic() + 30
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        evaluated = await capture.command("Runtime.evaluate", {"expression": "1+1", "returnByValue": True})
        extra = {"evaluated": evaluated, "stats": capture.stats, "pages": capture.pages}
        with pytest.raises(CdpError, match=r"wasn't found|not found"):
            await capture.command("Nope.nothing")
        await capture.close()
        await asyncio.sleep(0)
        extra["after_close"] = len(rows)
        return rows, capture, extra
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except Exception:
            process.kill()


def _body(row: dict[str, Any]) -> bytes:
    return base64.b64decode(row["response_body_b64"] or "")


def test_chromium_traffic_is_captured_once_with_bodies_and_states() -> None:
    with tempfile.TemporaryDirectory(prefix="cdp-test-") as folder:
        certs = make_certs(Path(folder) / "certs")
        trust = [f"--ignore-certificate-errors-spki-list={spki_hash(certs.leaf_file)}"]
        with Site(certs) as site:
            rows, _capture_done, extra = asyncio.run(_capture(site, Path(folder) / "profile", trust))
    by_url = Counter(f"{r['scheme']}://{r['host']}:{r['port']}{r['path']}?{r['query']}" for r in rows)
    doubles = {u: n for u, n in by_url.items() if n > 1}
    assert not doubles, doubles
    paths = {r["path"]: r for r in rows}
    summary = {r["path"]: (r["status"], r["response_body_state"], r["host"]) for r in rows}
    expected = {
        "/", "/api", "/echo", "/xhr", "/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0", "/frame",
        "/frame-data", "/worker-data", "/sw-data", "/ws", "/sse", "/download", "/slow", "/before-nav",
        "/page2", "/after", "/page3", "/third",
    }  # fmt: skip
    assert expected <= set(paths), (expected - set(paths), summary)
    assert len({r["id"] for r in rows}) == len(rows)

    page = next(r for r in rows if r["path"] == "/" and r["port"] == site.port)
    assert page["status"] == 200
    assert page["response_body_state"] == "captured"
    assert b"cdp test" in _body(page)
    assert page["http_version"] == "HTTP/2.0"  # HTTPS: h2 by ALPN
    assert page["captured_at"].endswith("Z")
    assert page["ttfb_ms"] is not None
    assert page["duration_ms"] is not None
    assert set(page["timings"]) == {"blocked", "dns", "connect", "ssl", "send", "wait", "receive"}

    posts = sorted((r for r in rows if r["path"] == "/echo"), key=lambda r: r["request_body_size"])
    assert [r["request_body_size"] for r in posts] == [len(b"hello body"), BIG_POST_SIZE]
    assert base64.b64decode(posts[0]["request_body_b64"]) == b"hello body"
    assert base64.b64decode(posts[1]["request_body_b64"]) == b"x" * BIG_POST_SIZE
    assert all(r["request_body_state"] == "captured" and r["method"] == "POST" for r in posts)
    assert _body(posts[1]) == b"x" * BIG_POST_SIZE

    # The wire headers (from the ExtraInfo events): Set-Cookie, which a fetch's own response event hides,
    # repeats kept; the Cookie header the browser then sent.
    api = paths["/api"]
    cookies = [v for n, v in api["response_headers"] if n.lower() == "set-cookie"]
    assert cookies == ["a=1; Path=/", "b=2"], api["response_headers"]
    xhr = paths["/xhr"]
    assert ["cookie", "a=1; b=2"] in [[n.lower(), v] for n, v in xhr["request_headers"]], xhr[
        "request_headers"
    ]
    assert json.loads(_body(xhr))["path"] == "/xhr"
    for n in (3, 2, 1):
        hop = paths[f"/redirect/{n}"]
        assert hop["status"] == 302, hop
        assert ["location", f"/redirect/{n - 1}"] in [[k.lower(), v] for k, v in hop["response_headers"]]
        assert hop["response_body_state"] == "none"
    assert paths["/redirect/0"]["status"] == 200
    assert _body(paths["/redirect/0"]) == b"landed"

    frame_data = paths["/frame-data"]
    assert frame_data["host"] == "localhost"
    assert frame_data["port"] == site.other_port
    assert json.loads(_body(frame_data))["path"] == "/frame-data"
    assert paths["/frame"]["status"] == 200
    assert b"frame" in _body(paths["/frame"])
    for path in ("/worker-data", "/sw-data"):
        assert paths[path]["status"] == 200, path
        assert paths[path]["response_body_state"] == "captured", path

    ws = paths["/ws"]
    assert ws["scheme"] == "wss"
    assert ws["status"] == 200, ws  # over HTTP/2 (RFC 8441: an extended CONNECT answered 200, not 101)
    messages = json.loads(_body(ws))
    assert [(m["from"], m["type"], m["content"]) for m in messages] == [
        ("client", "text", "hi"),
        ("client", "text", "there"),
        ("server", "text", "echo: hi"),
        ("server", "text", "echo: there"),
    ] or sorted(m["content"] for m in messages) == ["echo: hi", "echo: there", "hi", "there"]

    sse = paths["/sse"]
    assert sse["response_body_state"] == "streamed"
    assert sse["status"] == 200
    assert b"data: event 0\n" in _body(sse)
    assert b"data: event 2\n" in _body(sse)

    download = paths["/download"]
    assert download["response_body_state"] == "truncated"
    assert download["response_body_truncated"]
    assert download["response_body_size"] == DOWNLOAD_SIZE
    assert len(_body(download)) == 1_048_576

    # Read at loadingFinished: the navigation that followed evicted nothing.
    assert json.loads(_body(paths["/before-nav"]))["path"] == "/before-nav"
    assert paths["/before-nav"]["response_body_state"] == "captured"
    slow = paths["/slow"]
    assert slow["response_body_state"] == "lost", slow
    assert "ERR_ABORTED" in (slow["error"] or ""), slow
    assert paths["/after"]["status"] == 200
    assert paths["/page2"]["status"] == 200

    assert extra["evaluated"]["result"]["value"] == 2
    stats = extra["stats"]
    # Nothing evicted but the service worker's own script, whose body Chrome never keeps ("No data found").
    evicted = [r["path"] for r in rows if r["response_body_state"] == "evicted"]
    assert set(evicted) <= {"/sw.js"}, evicted
    assert (stats.captured, stats.pending) == (len(rows), 0)
    assert stats.targets >= 5  # three tabs (about:blank too), the iframe, the worker, the service worker
    assert len(extra["pages"]) == 3
    assert extra["after_close"] == len(rows)


def _event(method: str, session: str, **params: Any) -> dict[str, Any]:
    return {"method": method, "sessionId": session, "params": params}


def _request(request_id: str, url: str, at: float, **extra: Any) -> dict[str, Any]:
    return _event(
        "Network.requestWillBeSent",
        "S1",
        requestId=request_id,
        loaderId="L1",
        frameId="F1",
        type="Fetch",
        timestamp=at,
        wallTime=1_800_000_000 + at,
        request={"url": url, "method": "GET", "headers": {"Accept": "*/*"}},
        **extra,
    )


def _response(status: int, url: str) -> dict[str, Any]:
    return {
        "url": url,
        "status": status,
        "headers": {"X-Renderer": "1"},
        "protocol": "h2",
        "mimeType": "text/plain",
    }


def test_extra_info_in_either_order_and_redirect_hops_from_synthetic_events() -> None:
    """The ExtraInfo events of a chain are matched to its hops by rank, whether they come before or after
    the main events; each hop's wire headers and status are its own; bodies off gives `skipped`; a session
    that goes away sends what it held (a request in flight as lost)."""
    rows: list[dict[str, Any]] = []

    async def run() -> CdpCapture:
        capture = CdpCapture("ws://127.0.0.1:9/unused", rows.append, bodies=False)
        capture._dispatch(
            _event(
                "Target.attachedToTarget",
                "",
                sessionId="S1",
                targetInfo={"targetId": "T1", "type": "page", "url": "https://a.test/"},
                waitingForDebugger=False,
            )
        )
        extra_req = "Network.requestWillBeSentExtraInfo"
        extra_res = "Network.responseReceivedExtraInfo"
        first_headers = {"Location": "/b", "Set-Cookie": "x=1\ny=2"}
        second_head = "HTTP/1.1 302 Found\r\nLocation: /c\r\n\r\n"
        last = _response(200, "https://a.test/c")
        last_headers = {"content-type": "text/plain", "x-wire": "1"}
        events = [
            # hop 0's ExtraInfo before its request; hop 1's response ExtraInfo after the redirect closing it.
            _event(extra_req, "S1", requestId="R", headers={"cookie": "k=v", ":path": "/a"}),
            _event(extra_res, "S1", requestId="R", statusCode=301, headers=first_headers),
            _request("R", "https://a.test/a", 1.0),
            _request(
                "R",
                "https://a.test/b",
                1.1,
                redirectResponse=_response(301, "https://a.test/a"),
                redirectHasExtraInfo=True,
            ),
            _request(
                "R",
                "https://a.test/c",
                1.2,
                redirectResponse=_response(302, "https://a.test/b"),
                redirectHasExtraInfo=True,
            ),
            _event(extra_req, "S1", requestId="R", headers={"cookie": "k=v; x=1"}),
            _event(extra_res, "S1", requestId="R", statusCode=302, headersText=second_head),
            _event("Network.responseReceived", "S1", requestId="R", response=last, hasExtraInfo=True),
            _event("Network.dataReceived", "S1", requestId="R", dataLength=5, encodedDataLength=5),
            _event("Network.loadingFinished", "S1", requestId="R", timestamp=1.3, encodedDataLength=120),
            _event(extra_req, "S1", requestId="R", headers={"cookie": "k=v; x=1; y=2"}),
            _event(extra_res, "S1", requestId="R", statusCode=200, headers=last_headers),
            _request("P", "https://a.test/pending", 1.4),
            _event("Target.detachedFromTarget", "", sessionId="S1"),
        ]
        for event in events:
            capture._dispatch(event)
        await asyncio.sleep(0)
        return capture

    capture = asyncio.run(run())
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {"/a", "/b", "/c", "/pending"}
    a, b, c = by_path["/a"], by_path["/b"], by_path["/c"]
    assert (a["status"], b["status"], c["status"]) == (301, 302, 200)
    assert a["request_headers"] == [["cookie", "k=v"]]  # the pseudo-header left out
    assert a["response_headers"] == [["Location", "/b"], ["Set-Cookie", "x=1"], ["Set-Cookie", "y=2"]]
    assert b["request_headers"] == [["cookie", "k=v; x=1"]]
    assert b["response_headers"] == [["Location", "/c"]]
    assert c["request_headers"] == [["cookie", "k=v; x=1; y=2"]]
    assert c["response_headers"] == [["content-type", "text/plain"], ["x-wire", "1"]]
    assert c["response_body_state"] == "skipped"
    assert c["response_body_size"] == 5
    assert c["http_version"] == "HTTP/2.0"
    assert c["duration_ms"] == pytest.approx(100, abs=0.01)
    assert c["captured_at"] == "2027-01-15T08:00:01.200Z"
    assert a["response_body_state"] == "none"
    pending = by_path["/pending"]
    assert pending["response_body_state"] == "none"
    assert "target closed" in pending["error"]
    assert capture.stats.captured == 4
    assert capture.stats.pending == 0
