"""`bmc` end to end, through its real command line, against real headless Chromium and its own API server.

One capture session proves, in order:
- `bmc pair CODE` with a code issued as the admin (like `busymate devices add NAME --source bmc`) keeps a 0600
  credential under BMC_HOME; `bmc status` names the device and its workspace; before pairing, `bmc status`
  says to run `bmc pair CODE`, a wrong code says how to get a new one, `bmc launch --chromium` with a missing
  program says to give `--chromium`, and `bmc attach` where no browser listens says how to start one;
- `bmc launch --headless URL` captures the page's requests into `public.entries` (source bmc, this device) and
  live on `ws:<workspace_id>`, heard by a member of the workspace;
- a `cdp-command` (Runtime.evaluate of `1+1`) sent on `device:<uuid>` by the device's owner comes back as a
  `cdp-result` with 2; another member of the workspace is refused at the channel;
- the API stopped for 30 s while the page keeps fetching: bmc keeps capturing into its spool and says so (its
  log, `bmc status`); once the API is back every request the page made is stored exactly once;
- `unpair_device` by the admin makes the running bmc forget its credential and stop; pairing again and then
  `bmc unpair` forgets the credential too (and says the device is offline).

Takes about 30 s (the outage) plus some 20 s of capture.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from realtime import AsyncRealtimeChannel

from busymate.settings import Settings
from busymate.stack.api_process import ApiServer, settings_env
from tests.conftest import second_api_server
from tests.e2e.proxy_helpers import free_port_block, fresh_workspace, rpc, sql, until, worker_env
from tests.e2e.realtime_helpers import Inbox, joined, options, realtime_client, refused
from tests.world import World, add_user

OUTAGE = 30.0
CHROMIUM = "/usr/bin/chromium"
BMC = str(Path(sys.executable).parent / "bmc")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


class Site:
    """A local page that loads a few resources, then fetches `/tick` every 50 ms while `more` is set; the
    server remembers every query it answered."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.more = True
        self.served: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/":
                    body, kind = site.page().encode(), "text/html"
                elif parts.path in ("/r", "/tick"):
                    site.served.append(f"{parts.path}?{parts.query}")
                    body, kind = (
                        json.dumps({"more": site.more, **parse_qs(parts.query)}).encode(),
                        "application/json",
                    )
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("content-type", kind)
                self.send_header("cache-control", "no-store")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self) -> str:
        return (
            "<!doctype html><title>bmc test</title><script>"
            f"const run = {json.dumps(self.run)};"
            "for (let k = 0; k < 20; k++) fetch(`/r?run=${run}&k=${k}`).then(r => r.text());"
            "(async () => { for (let i = 0; ; i++) {"
            "  const answer = await (await fetch(`/tick?run=${run}&i=${i}`)).json();"
            "  if (!answer.more) break; await new Promise(r => setTimeout(r, 50)); } })();"
            "</script>"
        )

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def own_api(stack: Settings) -> Iterator[tuple[Settings, ApiServer]]:
    """A second API server on the session's database that this module may stop and start."""
    with second_api_server(stack, "bmc-test") as started:
        yield started


def bmc(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [BMC, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"bmc {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def activation(settings: Settings, world: World, device_uuid: str) -> str:
    issued = rpc(
        settings,
        world.tokens["admin"],
        "issue_device_activation",
        {"device_uuid": device_uuid, "valid_for": "15 minutes"},
    )
    return str(issued["code"])


def stored(settings: Settings, device_uuid: str, run: str) -> tuple[int, list[str]]:
    """(rows, their distinct path?query) stored for this run by the device with source bmc."""
    rows = sql(
        settings,
        "select path || '?' || query from public.entries where device_uuid = %s and source = 'bmc' "
        "and query like %s",
        (device_uuid, f"run={run}&%"),
    )
    return len(rows), sorted({r[0] for r in rows})


async def channel_checks(
    settings: Settings, owner: str, other: str, device_uuid: str, workspace_id: str, run: str
) -> None:
    """The firehose carries the capture; the owner's cdp-command is answered; another member is refused."""
    async with realtime_client(settings, owner) as client, realtime_client(settings, other) as stranger:
        firehose: Inbox[dict[str, Any]] = Inbox("ws firehose")
        feed: AsyncRealtimeChannel = client.channel(f"ws:{workspace_id}", options(private=True))
        feed.on_broadcast("INSERT", lambda m: firehose.put(dict(m)))
        await joined(feed)
        await firehose.first(
            lambda m: run in json.dumps(m), "a captured entry of this run on the firehose", 15
        )

        results: Inbox[dict[str, Any]] = Inbox("cdp results")
        device: AsyncRealtimeChannel = client.channel(f"device:{device_uuid}", options(private=True))
        device.on_broadcast("cdp-result", lambda m: results.put(dict(m)))
        await joined(device)
        command = {"id": "c-1", "method": "Runtime.evaluate", "params": {"expression": "1+1"}}
        await device.send_broadcast("cdp-command", command)
        answer = (await results.first(lambda m: m["payload"].get("id") == "c-1", "the cdp-result", 10))[
            "payload"
        ]
        assert answer["ok"] is True, answer
        assert answer["result"]["result"]["value"] == 2, answer

        response = await refused(stranger.channel(f"device:{device_uuid}", options(private=True)))
        assert response, response


def bodies_follow_the_settings(
    settings: Settings, world: World, device_uuid: str, run: str, log_file: Path
) -> None:
    """`capture_bodies: false` in the global settings reaches the running bmc (settings:global): entries
    captured after it have no response body; setting it back brings bodies back."""
    [(before,)] = sql(settings, "select settings from public.settings_global")
    admin = world.tokens["admin"]

    def latest_tick_body() -> tuple[str | None, bytes | None]:
        rows = sql(
            settings,
            "select response_body_state, response_body from public.entries where device_uuid = %s "
            "and path = '/tick' and query like %s order by captured_at desc limit 1",
            (device_uuid, f"run={run}&%"),
        )
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    try:
        rpc(settings, admin, "set_global_settings", {"settings": {**before, "capture_bodies": False}})
        until(lambda: "bodies off" in log_file.read_text(), "bmc applying capture_bodies off", 15)
        until(lambda: latest_tick_body()[1] is None, "an entry captured without its body", 15)
    finally:
        rpc(settings, admin, "set_global_settings", {"settings": before})
    until(lambda: "bodies on" in log_file.read_text(), "bmc applying capture_bodies on again", 15)
    until(lambda: latest_tick_body()[1] is not None, "an entry captured with its body again", 15)


def test_bmc_pairs_captures_answers_cdp_survives_an_outage_and_unpairs(
    own_api: tuple[Settings, ApiServer], world: World, tmp_path: Path
) -> None:
    settings, server = own_api
    env = {**os.environ, **settings_env(settings), **worker_env(settings), "BMC_HOME": str(tmp_path / "bmc")}
    # Not paired yet, no such Chromium: each says what to do.
    unpaired = bmc(env, "status", check=False)
    assert unpaired.returncode != 0
    assert "bmc pair CODE" in unpaired.stderr
    workspace_id = fresh_workspace(settings, "bmc")
    owner_id, owner = add_user(settings, workspace_id, "member", "bmc-owner")
    _, other = add_user(settings, workspace_id, "member", "bmc-other")
    device = rpc(
        settings,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": workspace_id,
            "name": f"bmc-{uuid.uuid4().hex[:6]}",
            "source": "bmc",
            "owner_user_id": owner_id,
        },
    )
    device_uuid = device["uuid"]
    wrong = bmc(env, "pair", "ABCDE-FGHJK", check=False)
    assert wrong.returncode != 0
    assert "busymate devices pair NAME" in wrong.stderr
    paired = bmc(env, "pair", activation(settings, world, device_uuid))
    assert device_uuid in paired.stdout
    credential = tmp_path / "bmc" / "credential.json"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    status = bmc(env, "status").stdout
    assert device["name"] in status
    assert workspace_id in status
    missing = bmc(env, "launch", "--headless", "--chromium", str(tmp_path / "no-chromium"), check=False)
    assert missing.returncode != 0
    assert "--chromium" in missing.stderr
    nobody = bmc(env, "attach", "--cdp", f"http://127.0.0.1:{free_port_block(1).start}", check=False)
    assert nobody.returncode != 0
    assert "--remote-debugging-port" in nobody.stderr

    run = uuid.uuid4().hex[:12]
    site = Site(run)
    log_file = tmp_path / "bmc.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "bmc"),
                "launch",
                "--headless",
                "--chromium",
                CHROMIUM,
                site.url,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        until(
            lambda: stored(settings, device_uuid, run)[0] >= 25,
            "the page's first requests in the database",
            45,
        )
        # The page's own document too: bmc opens the URL only once the tab is captured.
        documents = sql(
            settings,
            "select status from public.entries where device_uuid = %s and path = '/'",
            (device_uuid,),
        )
        assert documents == [(200,)], documents
        asyncio.run(
            asyncio.wait_for(channel_checks(settings, owner, other, device_uuid, workspace_id, run), 60)
        )
        bodies_follow_the_settings(settings, world, device_uuid, run, log_file)

        # The API goes away for 30 s; the page goes on fetching and bmc on capturing.
        assert server.stop()
        before = len(site.served)
        until(lambda: "unreachable" in log_file.read_text(), "bmc saying the API is unreachable", 15)

        def outage_shown() -> str | None:
            shown = bmc(env, "status").stdout
            return shown if "API unreachable" in shown else None

        during = until(outage_shown, "bmc status showing the outage", 15)
        assert "capturing" in during
        assert proc.poll() is None, log_file.read_text()
        threading.Event().wait(OUTAGE)
        assert len(site.served) > before + 100, (before, len(site.served))  # the capture went on
        server.start()
        site.more = False  # the page stops fetching after its next tick
        until(lambda: len(site.served) == len(set(site.served)) and not site.more, "the page to stop", 5)
        threading.Event().wait(0.5)
        served = sorted(set(site.served))

        def all_stored() -> bool:
            count, distinct = stored(settings, device_uuid, run)
            return count >= len(served) and distinct == served

        try:
            until(all_stored, "every request the page made, stored", 60)
        except AssertionError:
            _, got = stored(settings, device_uuid, run)
            lost, extra = sorted(set(served) - set(got)), sorted(set(got) - set(served))
            spool = sorted(p.name for p in (tmp_path / "bmc" / "spool").rglob("*"))
            raise AssertionError(
                f"missing {len(lost)} {lost[:5]}, extra {extra[:5]}, spool {spool[:5]}, "
                f"bmc {proc.poll()}:\n{log_file.read_text()[-3000:]}"
            ) from None
        count, distinct = stored(settings, device_uuid, run)
        assert count == len(distinct) == len(served)  # nothing lost, nothing doubled
        until(lambda: "answers again" in log_file.read_text(), "bmc saying the API answers again", 10)
        until(lambda: " 0 entries in 0 segment" in bmc(env, "status").stdout, "an empty spool", 15)

        # The admin unpairs the device: the running bmc forgets its credential and stops.
        rpc(settings, world.tokens["admin"], "unpair_device", {"device_uuid": device_uuid})
        proc.wait(30)
        assert not credential.exists(), log_file.read_text()
        assert "unpaired" in log_file.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
        site.close()

    # Paired again, `bmc unpair` forgets the credential; then bmc is not paired.
    bmc(env, "pair", activation(settings, world, device_uuid))
    assert credential.exists()
    # `bmc import` stores a HAR file's entries under bmc's own device, once however often it is imported.
    har = Path(__file__).resolve().parent.parent / "fixtures" / "playwright.har"
    count = len(json.loads(har.read_text())["log"]["entries"])
    first = json.loads(bmc(env, "import", str(har), "--json").stdout)
    assert (first["imported"], first["device"]) == (count, device_uuid)
    again = json.loads(bmc(env, "import", str(har), "--json").stdout)
    assert (again["imported"], again["duplicates"]) == (0, count)
    sql(settings, "update public.device_status set online = true where device_uuid = %s", (device_uuid,))
    bmc(env, "unpair")
    assert not credential.exists()
    assert sql(
        settings, "select online from public.device_status where device_uuid = %s", (device_uuid,)
    ) == [(False,)]
    assert "bmc pair CODE" in bmc(env, "status", check=False).stderr
