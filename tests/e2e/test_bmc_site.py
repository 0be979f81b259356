"""The trap page of tests/e2e/cdp_site.py through the real `bmc launch --headless` into the database and live.

A local HTTPS site (h2, its leaf trusted with `--ignore-certificate-errors-spki-list`, passed by bmc's
hidden `--chromium-arg`) serves a page with fetch, POSTs, XHR, a 3-hop redirect chain, a cross-site iframe,
a worker, a service worker, a WebSocket, an SSE stream, a 10 MB download and a navigation. `bmc`, paired
with a real code, captures it: every request of the page is stored ONCE in `public.entries` for bmc's device
(counted by URL and method), with the right statuses (302 for each hop, 200 for the WebSocket over h2) and
the JSON bodies of the fetches; the download is truncated at the cap with its full size; the request the
navigation cut off is stored as lost. A member of the workspace subscribed to `ws:<workspace_id>` hears
every stored entry, once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from realtime import AsyncRealtimeChannel

from busymate.settings import Settings
from busymate.stack.api_process import settings_env
from tests.e2e.cdp_site import DOWNLOAD_SIZE, Site
from tests.e2e.origin import make_certs
from tests.e2e.proxy_helpers import fresh_workspace, rpc, spki_hash, sql, worker_env
from tests.e2e.realtime_helpers import Inbox, joined, options, realtime_client
from tests.world import World, add_user

CHROMIUM = "/usr/bin/chromium"
BMC = str(Path(sys.executable).parent / "bmc")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")

EXPECTED = {
    "/", "/api", "/echo", "/xhr", "/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0", "/frame",
    "/frame-data", "/worker.js", "/worker-data", "/sw-data", "/ws", "/sse", "/download", "/slow",
    "/before-nav", "/page2", "/after",
}  # fmt: skip


def _paired_env(settings: Settings, world: World, home: Path) -> tuple[dict[str, str], str, str, str]:
    """A BMC_HOME paired with a fresh bmc device of a fresh workspace: (env, device, workspace, member)."""
    env = {**os.environ, **settings_env(settings), **worker_env(settings), "BMC_HOME": str(home)}
    workspace_id = fresh_workspace(settings, "bmc-site")
    _, owner = add_user(settings, workspace_id, "member", "bmc-site-owner")
    device = rpc(
        settings,
        world.tokens["admin"],
        "create_device",
        {"workspace_id": workspace_id, "name": f"bmc-site-{uuid.uuid4().hex[:6]}", "source": "bmc"},
    )
    issued = rpc(
        settings,
        world.tokens["admin"],
        "issue_device_activation",
        {"device_uuid": device["uuid"], "valid_for": "15 minutes"},
    )
    paired = subprocess.run(
        [BMC, "pair", str(issued["code"])], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert paired.returncode == 0, paired.stderr
    return env, str(device["uuid"]), workspace_id, owner


def _entries(settings: Settings, device_uuid: str) -> list[dict[str, Any]]:
    columns = (
        "id, method, scheme, host, port, path, query, status, response_body, response_body_state, "
        "response_body_size, error"
    )
    rows = sql(settings, f"select {columns} from public.entries where device_uuid = %s", (device_uuid,))
    names = [c.strip() for c in columns.split(",")]
    return [dict(zip(names, row, strict=True)) for row in rows]


async def _capture_live(
    settings: Settings, env: dict[str, str], member: str, workspace_id: str, log: Path
) -> list[dict[str, Any]]:
    """bmc runs the page while the member listens on the firehose; the firehose rows (as objects) until
    every path of the page was heard and bmc stopped."""
    async with realtime_client(settings, member) as client:
        firehose: Inbox[dict[str, Any]] = Inbox("ws firehose")
        feed: AsyncRealtimeChannel = client.channel(f"ws:{workspace_id}", options(private=True))
        feed.on_broadcast("INSERT", lambda m: firehose.put(dict(m)))
        await joined(feed)
        certs = make_certs(log.parent / "certs")
        with Site(certs) as site, log.open("wb") as out:
            trust = f"--ignore-certificate-errors-spki-list={spki_hash(certs.leaf_file)}"
            args = ["launch", "--headless", "--chromium", CHROMIUM, "--chromium-arg", trust]
            args += ["--chromium-arg", "--site-per-process", site.url + "/"]
            proc = subprocess.Popen([BMC, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
            try:

                def rows() -> list[dict[str, Any]]:
                    found = []
                    for message in firehose.items:
                        payload = message["payload"]
                        found += [dict(zip(payload["columns"], r, strict=True)) for r in payload["rows"]]
                    return found

                def seen() -> set[str]:
                    return {r["path"] for r in rows()}

                try:
                    await firehose.first(lambda _: seen() >= EXPECTED, "every path of the page", 40)
                except AssertionError:
                    raise AssertionError(f"missing {EXPECTED - seen()}:\n{log.read_text()[-3000:]}") from None
            finally:
                proc.send_signal(signal.SIGINT)  # bmc sends what it holds, then stops
                await asyncio.to_thread(proc.wait, 30)
        assert proc.returncode == 0, log.read_text()[-3000:]
        await firehose.settle(1.0)  # messages of its last batch still on their way
        return rows()


def test_bmc_stores_every_request_of_the_trap_page_once_and_live(
    stack: Settings, world: World, tmp_path: Path
) -> None:
    env, device_uuid, workspace_id, member = _paired_env(stack, world, tmp_path / "bmc")
    heard = asyncio.run(_capture_live(stack, env, member, workspace_id, tmp_path / "bmc.log"))

    stored = _entries(stack, device_uuid)
    by_url = Counter(
        (e["method"], e["scheme"], e["host"], e["port"], e["path"], e["query"], e["status"]) for e in stored
    )
    # Once each (the two POSTs to /echo differ by query). /sw.js, the service worker's script, is fetched
    # by the browser for the registration and may be again for its update check: each a real request.
    doubles = {k: n for k, n in by_url.items() if n > 1 and k[4] != "/sw.js"}
    assert not doubles, doubles
    assert len({e["id"] for e in stored}) == len(stored)
    paths = {e["path"]: e for e in stored}
    assert set(paths) >= EXPECTED, EXPECTED - set(paths)
    assert {e["scheme"] for e in stored} == {"https", "wss"}

    for n in (3, 2, 1):
        assert paths[f"/redirect/{n}"]["status"] == 302
    assert paths["/redirect/0"]["status"] == 200
    assert bytes(paths["/redirect/0"]["response_body"]) == b"landed"
    for path in ("/api", "/xhr", "/frame-data", "/worker-data", "/sw-data", "/before-nav", "/after"):
        entry = paths[path]
        assert entry["status"] == 200, entry
        assert json.loads(bytes(entry["response_body"]))["path"] == path, path
    assert paths["/frame-data"]["host"] == "localhost"
    assert paths["/ws"]["status"] == 200  # a WebSocket over h2
    assert paths["/sse"]["response_body_state"] == "streamed"
    download = paths["/download"]
    assert (download["response_body_state"], download["response_body_size"]) == ("truncated", DOWNLOAD_SIZE)
    assert paths["/slow"]["response_body_state"] == "lost"

    # Live: every stored entry heard once on the firehose, nothing heard that is not stored.
    heard_ids = Counter(str(r["id"]) for r in heard)
    assert all(n == 1 for n in heard_ids.values()), heard_ids
    assert set(heard_ids) == {str(e["id"]) for e in stored}
