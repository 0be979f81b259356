"""HAR in and out through the real command line: `busymate import FILE.har --device NAME` and
`busymate export --har FILE`, against the test stack, the CLI acting as the local admin on its session alone
(a wrong JWT secret).

Proves: a HAR recorded by Playwright on Chromium (tests/fixtures/playwright.har) imports with its original
times, methods, statuses, bodies (binary too) and timings, and a second import stores nothing twice; our
export validates against the HAR 1.2 JSON Schema (npm `har-schema` 2.0.0, vendored in
tests/fixtures/har-schema), every entry's `time` the sum of its non-negative timings; export -> import into
another device -> export gives the same entries (WebSocket messages as `_webSocketMessages`, base64 bodies, a
failed flow, a truncated body); `tail`'s filters and --since/--until choose what is exported; secrets
(Authorization, cookies, API keys, token-like query parameters) are redacted by default and kept with
--include-secrets; bad input (not a HAR, an unknown device, an entry with a bad method or time, a bad filter)
is a clear message and a non-zero exit, the good entries of a file imported and each refused one named by
its index.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT6

from busymate.cli.har import (
    ExportScope,
    HarError,
    export_har,
    from_har_entry,
    import_har,
    is_secret_param,
    parse_when,
    read_har,
    to_har_entry,
)
from busymate.cli.tail_filters import Filters
from busymate.client import Api
from busymate.settings import Settings
from busymate.stack.api_process import settings_env
from tests.e2e.proxy_helpers import rpc, sql, worker_env
from tests.world import World

FIXTURES = Path(__file__).parents[1] / "fixtures"
PLAYWRIGHT_HAR = FIXTURES / "playwright.har"
SCHEMA_DIR = FIXTURES / "har-schema"
T0 = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)  # our seeded entries' times (microseconds kept)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), **worker_env(settings), "COLUMNS": "200"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "busymate"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ok(settings: Settings, *args: str) -> str:
    done = cli(settings, *args)
    assert done.returncode == 0, f"busymate {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def expect(done: subprocess.CompletedProcess[str], code: int, said: str) -> None:
    """A refusal: this exit status, this message on stderr, no traceback."""
    assert done.returncode == code, done.stderr
    assert said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def har_validator() -> jsonschema.protocols.Validator:
    """The HAR 1.2 schema (har.json and the files it refers to), with `uri` and `date-time` checked too."""
    resources = [
        (p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT6))
        for p in SCHEMA_DIR.glob("*.json")
    ]
    formats = jsonschema.FormatChecker()

    def uri(value: object) -> bool:
        parts = urlsplit(str(value))
        return bool(parts.scheme and parts.netloc) and not any(c in str(value) for c in ' <>"')

    def date_time(value: object) -> bool:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).tzinfo is not None

    formats.checks("uri")(uri)
    formats.checks("date-time", raises=ValueError)(date_time)

    schema = json.loads((SCHEMA_DIR / "har.json").read_text())
    validator: jsonschema.protocols.Validator = jsonschema.Draft6Validator(
        schema, registry=Registry().with_resources(resources), format_checker=formats
    )
    return validator


def check_har(path: Path) -> list[dict[str, Any]]:
    """The entries of a HAR we wrote, after checking it against the schema and the timing rule."""
    doc = json.loads(path.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in har_validator().iter_errors(doc)]
    assert not errors, errors[:5]
    log = doc["log"]
    assert log["version"] == "1.2"
    assert log["creator"]["name"] == "Busymate CLI"
    assert log["pages"] == []
    for entry in log["entries"]:
        timings = entry["timings"]
        assert entry["time"] == pytest.approx(sum(v for k, v in timings.items() if k != "ssl" and v >= 0))
    return list(log["entries"])


def header(entry: dict[str, Any], side: str, name: str) -> str | None:
    return next((h["value"] for h in entry[side]["headers"] if h["name"].lower() == name), None)


@pytest.fixture(scope="module")
def devices(stack: Settings, world: World) -> dict[str, str]:
    """Two bmc devices (no proxy port taken from the pool) in a workspace of their own, made by the world's
    admin: names, uuids, device tokens and the workspace slug."""
    tag = uuid.uuid4().hex[:8]
    slug = f"har-{tag}"
    [(workspace_id,)] = sql(
        stack, "insert into public.workspaces (slug, name) values (%s, %s) returning id::text", (slug, slug)
    )
    made = {"slug": slug}
    with Api(stack.api_url, world.anon_key, world.tokens["admin"]) as api:
        for key in ("a", "b"):
            device = api.rpc(
                "create_device",
                {
                    "workspace_id": workspace_id,
                    "name": f"har-{key}-{tag}",
                    "source": "bmc",
                    "proxy_port": None,
                },
            )
            issued = api.request("POST", "/functions/v1/device-token", json={"device": device["uuid"]})
            made[key] = device["name"]
            made[f"{key}_uuid"] = device["uuid"]
            made[f"{key}_token"] = issued["access_token"]
    return made


def exported_in_process(
    stack: Settings, world: World, path: Path, *filters: Sequence[str], window: tuple[str, str], secrets: bool
) -> list[dict[str, Any]]:
    """export_har itself (what the CLI runs) under the world admin's token: hosts, devices and statuses as
    `tail` parses them, the window as --since/--until; the entries, checked against the schema."""
    hosts, device_refs, statuses = (list(f) for f in filters)
    scope = ExportScope(
        Filters.parse(hosts, device_refs, statuses), parse_when(window[0]), parse_when(window[1])
    )
    with Api(stack.api_url, world.anon_key, world.tokens["admin"]) as api, path.open("w") as out:
        export_har(api, out, scope, include_secrets=secrets)
    return check_har(path)


def stored(settings: Settings, device_uuid: str) -> list[dict[str, Any]]:
    rows = sql(
        settings,
        "select to_jsonb(e) - 'request_body' - 'response_body', request_body, response_body "
        "from public.entries as e where device_uuid = %s order by captured_at, id",
        (device_uuid,),
    )
    return [{**r[0], "request_body": r[1], "response_body": r[2]} for r in rows]


def test_a_playwright_har_imports_and_our_export_is_valid_har(
    stack: Settings, world: World, devices: dict[str, str], tmp_path: Path
) -> None:
    har = json.loads(PLAYWRIGHT_HAR.read_text())["log"]
    assert har["creator"]["name"] == "Playwright"  # recorded by another tool, which the schema accepts too
    assert not list(har_validator().iter_errors({"log": har}))
    original = har["entries"]
    summary = json.loads(ok(stack, "import", str(PLAYWRIGHT_HAR), "--device", devices["a"], "--json"))
    assert summary["imported"] == len(original) == 6
    assert summary["rejected"] == 0
    rows = stored(stack, devices["a_uuid"])
    assert len(rows) == len(original)
    for row, entry in zip(rows, sorted(original, key=lambda e: e["startedDateTime"]), strict=True):
        started = datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00"))
        assert datetime.fromisoformat(row["captured_at"]) == started
        assert row["method"] == entry["request"]["method"]
        assert row["status"] == entry["response"]["status"]
        url = urlsplit(entry["request"]["url"])
        assert (row["scheme"], row["host"], row["port"], row["path"]) == (
            "http",
            url.hostname,
            url.port,
            url.path,
        )
        assert row["query"] == (url.query or None)
        assert row["duration_ms"] == pytest.approx(entry["time"], rel=1e-5)
        assert row["ttfb_ms"] == pytest.approx(
            entry["time"] - entry["timings"]["receive"], rel=1e-4, abs=1e-3
        )
        content = entry["response"]["content"]
        body = content.get("text", "").encode()
        if content.get("encoding") == "base64":
            body = base64.b64decode(body)
        assert bytes(row["response_body"] or b"") == body
    png = next(r for r in rows if r["path"] == "/pixel.png")
    assert bytes(png["response_body"]).startswith(b"\x89PNG")
    post = next(r for r in rows if r["method"] == "POST")
    assert bytes(post["request_body"]) == b'{"name":"widget","count":3}'
    assert [r["status"] for r in rows if r["path"] in ("/old-place", "/new-place")] == [302, 200]
    # The same file again: nothing stored twice.
    # (import_har itself, as `bmc import` calls it: a URL, the anon key and a device token)
    again = import_har(
        PLAYWRIGHT_HAR, url=stack.api_url, anon_key=world.anon_key, device_token=devices["a_token"]
    )
    assert (again.imported, again.duplicates, again.rejected) == (0, 6, {})
    assert len(stored(stack, devices["a_uuid"])) == 6
    # Our export of them is HAR 1.2, secrets redacted by default, kept when asked.
    since = "2026-12-01T00:00:00Z"
    redacted, kept = tmp_path / "redacted.har", tmp_path / "kept.har"
    ok(stack, "export", "--har", str(redacted), "--device", devices["a"], "--since", since)
    ok(stack, "export", "--har", str(kept), "--device", devices["a"], "--since", since, "--include-secrets")
    out = check_har(redacted)
    full = check_har(kept)
    assert [e["request"]["url"] for e in out] == [e["request"]["url"] for e in original]
    assert [e["response"]["status"] for e in out] == [e["response"]["status"] for e in original]
    image = next(e for e in out if e["request"]["url"].endswith("/pixel.png"))
    assert image["response"]["content"]["encoding"] == "base64"
    assert base64.b64decode(image["response"]["content"]["text"]).startswith(b"\x89PNG")
    saved = next(e for e in out if e["request"]["method"] == "POST")
    assert saved["request"]["postData"]["text"] == '{"name":"widget","count":3}'
    assert header(saved, "request", "x-api-key") == "<redacted>"
    assert header(next(e for e in full if e["request"]["method"] == "POST"), "request", "x-api-key") == (
        "fixture-key-123"
    )
    assert header(out[0], "response", "set-cookie") == "<redacted>"
    assert out[0]["response"]["cookies"] == [{"name": "sid", "value": "<redacted>"}]
    assert full[0]["response"]["cookies"] == [{"name": "sid", "value": "fixture-session"}]
    assert all(e["_busymate"]["device_uuid"] == devices["a_uuid"] for e in out)


def seeded(settings: Settings, token: str) -> None:
    """Five entries of our own under device a: secrets, a binary upload, a WebSocket (its transcript as the
    proxy writes it: compact JSON, times with microseconds), a failure, a cut body."""
    transcript = [
        {
            "from": "client",
            "type": "text",
            "at": (T0 + timedelta(seconds=2.5)).isoformat(),
            "content": "hello",
        },
        {
            "from": "server",
            "type": "binary",
            "at": (T0 + timedelta(seconds=2.75)).isoformat(),
            "content": base64.b64encode(b"\x00\x01\xff").decode(),
        },
    ]
    rows: list[dict[str, Any]] = [
        {
            "captured_at": T0.isoformat(),
            "method": "GET",
            "host": "api.example.test",
            "port": 443,
            "path": "/v1/me",
            "query": "access_token=sekrit&x=1&sig=abc",
            "status": 200,
            "http_version": "HTTP/2.0",
            "duration_ms": 12.5,
            "ttfb_ms": 8,
            "request_headers": [
                ["Authorization", "Bearer abc.def"],
                ["Cookie", "a=1; b=2"],
                ["Accept", "application/json"],
            ],
            "response_headers": [["Content-Type", "application/json"], ["Set-Cookie", "sid=xyz; HttpOnly"]],
            "response_content_type": "application/json",
            "response_body_b64": base64.b64encode(b'{"me": "ada"}').decode(),
        },
        {
            "captured_at": (T0 + timedelta(seconds=1)).isoformat(),
            "method": "PUT",
            "host": "files.example.test",
            "port": 8443,
            "path": "/upload",
            "status": 404,
            "http_version": "HTTP/1.1",
            "duration_ms": 30,
            "ttfb_ms": 20,
            "request_headers": [["Content-Type", "application/octet-stream"]],
            "request_content_type": "application/octet-stream",
            "request_body_b64": base64.b64encode(bytes(range(256))).decode(),
            "response_body_b64": base64.b64encode(b"not here").decode(),
            "response_headers": [["Content-Type", "text/plain"]],
            "response_content_type": "text/plain",
        },
        {
            "captured_at": (T0 + timedelta(seconds=2)).isoformat(),
            "method": "GET",
            "scheme": "wss",
            "host": "ws.example.test",
            "port": 443,
            "path": "/socket",
            "status": 101,
            "http_version": "HTTP/1.1",
            "duration_ms": 1000,
            "ttfb_ms": 5,
            "request_headers": [["Upgrade", "websocket"]],
            "response_headers": [["Upgrade", "websocket"]],
            "response_body_b64": base64.b64encode(
                json.dumps(transcript, separators=(",", ":")).encode()
            ).decode(),
        },
        {
            "captured_at": (T0 + timedelta(seconds=3)).isoformat(),
            "method": "POST",
            "host": "down.example.test",
            "port": 443,
            "path": "/",
            "duration_ms": 3,
            "error": "connection refused",
            "request_body_b64": base64.b64encode(b"a=1").decode(),
            "request_content_type": "application/x-www-form-urlencoded",
        },
        {
            "captured_at": (T0 + timedelta(seconds=4)).isoformat(),
            "method": "GET",
            "host": "big.example.test",
            "port": 443,
            "path": "/file.txt",
            "status": 200,
            "duration_ms": 40,
            "ttfb_ms": 10,
            "response_body_b64": base64.b64encode(b"x" * 100).decode(),
            "response_body_size": 5000,
            "response_body_truncated": True,
            "response_size": 5000,
        },
    ]
    answer = rpc(settings, token, "ingest_entries", {"batch": rows})
    assert answer["inserted"] == 5, answer


def test_export_import_export_round_trips_with_filters_and_redaction(
    stack: Settings, world: World, devices: dict[str, str], tmp_path: Path
) -> None:
    seeded(stack, devices["a_token"])
    span = (T0.isoformat(), (T0 + timedelta(minutes=1)).isoformat())
    window = ("--since", span[0], "--until", span[1])
    first, second = tmp_path / "a.har", tmp_path / "b.har"
    ok(stack, "export", "--har", str(first), "--device", devices["a"], *window, "--include-secrets")
    exported = check_har(first)
    assert len(exported) == 5
    assert exported[0]["startedDateTime"] == "2026-11-20T10:00:00.123456Z"
    upload = exported[1]
    assert upload["request"]["postData"]["encoding"] == "base64"
    assert base64.b64decode(upload["request"]["postData"]["text"]) == bytes(range(256))
    assert upload["request"]["url"] == "https://files.example.test:8443/upload"
    ws = exported[2]
    assert ws["request"]["url"] == "wss://ws.example.test/socket"
    assert [(m["type"], m["opcode"], m["data"]) for m in ws["_webSocketMessages"]] == [
        ("send", 1, "hello"),
        ("receive", 2, base64.b64encode(b"\x00\x01\xff").decode()),
    ]
    assert ws["_webSocketMessages"][0]["time"] == pytest.approx((T0 + timedelta(seconds=2.5)).timestamp())
    failed = exported[3]
    assert (failed["response"]["status"], failed["response"]["_error"]) == (0, "connection refused")
    assert exported[4]["response"]["content"]["comment"] == "truncated: 100 of 5000 bytes stored"
    assert (exported[0]["timings"]["wait"], exported[0]["time"]) == (8, 12.5)
    # Into device b, then out again: the same entries (ids and device aside).
    summary = json.loads(ok(stack, "import", str(first), "--device", devices["b"], "--json"))
    assert (summary["imported"], summary["rejected"]) == (5, 0)
    again = exported_in_process(stack, world, second, [], [devices["b"]], [], window=span, secrets=True)

    def bare(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "_busymate"} for e in entries]

    for before, after in zip(bare(exported), bare(again), strict=True):
        for key in ("request", "response", "timings"):
            assert after[key] == before[key], (key, before["request"]["url"])
    assert bare(again) == bare(exported)
    assert {e["_busymate"]["device_uuid"] for e in again} == {devices["b_uuid"]}
    assert not {e["_busymate"]["id"] for e in again} & {e["_busymate"]["id"] for e in exported}
    # Our own export back into the device it came from is recognised entry by entry.
    home = import_har(first, url=stack.api_url, anon_key=world.anon_key, device_token=devices["a_token"])
    assert (home.imported, home.duplicates, home.rejected) == (0, 5, {})
    # Redacted by default: headers, cookies and token-like query parameters; the rest kept.
    plain = tmp_path / "plain.har"
    me = exported_in_process(stack, world, plain, [], [devices["a"]], [], window=span, secrets=False)[0]
    assert header(me, "request", "authorization") == "<redacted>"
    assert header(me, "request", "cookie") == "<redacted>"
    assert header(me, "request", "accept") == "application/json"
    assert me["request"]["cookies"] == [
        {"name": "a", "value": "<redacted>"},
        {"name": "b", "value": "<redacted>"},
    ]
    assert (
        me["request"]["url"]
        == "https://api.example.test/v1/me?access_token=%3Credacted%3E&x=1&sig=%3Credacted%3E"
    )
    assert {q["name"]: q["value"] for q in me["request"]["queryString"]} == {
        "access_token": "<redacted>",
        "x": "1",
        "sig": "<redacted>",
    }
    assert not {"sekrit", "abc.def", "xyz"} & set(re.findall(r"[\w.]+", plain.read_text()))
    assert header(exported[0], "request", "authorization") == "Bearer abc.def"
    assert exported[0]["request"]["queryString"][0] == {"name": "access_token", "value": "sekrit"}

    # tail's filters choose what goes out: on the command line (to stdout with `-`) and in export_har.
    out = json.loads(
        ok(stack, "export", "--har", "-", *window, "--host", "*.example.test", "--status", "4xx")
    )
    assert [e["request"]["url"] for e in out["log"]["entries"]] == [
        "https://files.example.test:8443/upload"
    ] * 2

    def count(hosts: list[str], refs: list[str], statuses: list[str], since: str = span[0]) -> int:
        found = exported_in_process(
            stack,
            world,
            tmp_path / "count.har",
            hosts,
            refs,
            statuses,
            window=(since, span[1]),
            secrets=False,
        )
        return len(found)

    assert count([], [devices["a"]], ["error"]) == 1
    assert count(["*.example.test"], [devices["a"]], ["101,200"]) == 3
    assert count(["ws.example"], [], []) == 2  # a's and b's
    assert count([], [devices["a"], devices["b"]], []) == 10
    assert count([], [devices["b"]], [], since=(T0 + timedelta(seconds=3)).isoformat()) == 2
    # The dashboard's export cuts times to milliseconds: its entries never reuse an id for another time, and
    # importing its file twice still stores it once.
    doc = json.loads(first.read_text())
    doc["log"]["creator"]["name"] = "Busymate dashboard"
    for entry in doc["log"]["entries"]:
        entry["startedDateTime"] = entry["startedDateTime"][:23] + "Z"
    dashboard = tmp_path / "dashboard.har"
    dashboard.write_text(json.dumps(doc))
    for imported, duplicates in ((5, 0), (0, 5)):
        done = import_har(
            dashboard, url=stack.api_url, anon_key=world.anon_key, device_token=devices["a_token"]
        )
        assert (done.imported, done.duplicates) == (imported, duplicates)
    [(rows, ids)] = sql(
        stack,
        "select count(*), count(distinct id) from public.entries where device_uuid = %s",
        (devices["a_uuid"],),
    )
    assert rows == ids == 6 + 5 + 5


def test_bad_input_is_explained(stack: Settings, devices: dict[str, str], tmp_path: Path) -> None:
    not_json = tmp_path / "page.html"
    not_json.write_text("<html>nope</html>")
    done = cli(stack, "import", str(not_json), "--device", devices["a"])
    expect(done, 2, "is not a HAR file: it is not JSON")
    no_log = tmp_path / "other.json"
    no_log.write_text('{"entries": []}')
    with pytest.raises(HarError, match=r"no log\.entries list"):
        read_har(no_log)
    done = cli(stack, "import", str(PLAYWRIGHT_HAR), "--device", "no-such-device-here")
    expect(done, 1, "no device 'no-such-device-here'")
    # A good entry, a bad method, a bad time (refused here) and a host too long for the table (refused by the
    # server): the good one lands, each other is named by its index with the reason.
    good = json.loads(PLAYWRIGHT_HAR.read_text())["log"]["entries"][2]
    marker = uuid.uuid4().hex
    good["request"]["url"] = f"http://127.0.0.1:1/bad-input?{marker}=1"
    bad_method = {**good, "request": {**good["request"], "method": "GET /x"}}
    bad_time = {**good, "request": {**good["request"], "url": f"http://127.0.0.1:1/far?{marker}=2"}}
    bad_time["startedDateTime"] = "2026-13-40T10:00:00Z"
    long_host = {**good, "request": {**good["request"], "url": f"http://{'h' * 300}.test/?{marker}=3"}}
    mixed = tmp_path / "mixed.har"
    mixed.write_text(
        json.dumps(
            {
                "log": {
                    "version": "1.2",
                    "creator": {"name": "t", "version": "1"},
                    "entries": [good, bad_method, bad_time, long_host],
                }
            }
        )
    )
    done = cli(stack, "import", str(mixed), "--device", devices["b"])
    assert done.returncode == 1, done.stderr
    assert "imported 1, 0 already there, 3 refused" in done.stderr
    assert "entry 1: request.method 'GET /x' is not an HTTP method" in done.stderr
    assert "entry 2: startedDateTime '2026-13-40T10:00:00Z' is not an ISO 8601 time" in done.stderr
    assert "entry 3: host is required: a string of 1 to 253 characters" in done.stderr
    assert "Traceback" not in done.stderr
    [(landed,)] = sql(stack, "select count(*) from public.entries where query like %s", (f"%{marker}%",))
    assert landed == 1
    # Bad filters and times are refused before anything is read or written.
    target = tmp_path / "never.har"
    done = cli(stack, "export", "--har", str(target), "--since", "last tuesday")
    expect(done, 2, "is not a time")
    done = cli(stack, "export", "--har", str(target), "--device", "no-such-device-here")
    expect(done, 1, "no device 'no-such-device-here'")
    assert not target.exists()
    done = cli(stack, "export", "--har", str(tmp_path / "missing" / "x.har"), "--device", devices["a"])
    expect(done, 1, f"cannot write {tmp_path / 'missing' / 'x.har'}: No such file or directory")


def test_one_entry_each_way_without_a_server() -> None:
    """to_har_entry and from_har_entry alone: the WebSocket transcript survives both ways byte for byte, text
    and binary bodies choose their encoding, and odd shapes are refused in words."""
    transcript = json.dumps(
        [
            {"from": "client", "type": "text", "at": "2026-11-20T10:00:02.623457+00:00", "content": "hi"},
            {"from": "server", "type": "binary", "at": "2026-11-20T10:00:02.999999+00:00", "content": "AAH/"},
        ],
        separators=(",", ":"),
    ).encode()
    row = {
        "id": str(uuid.uuid4()),
        "captured_at": "2026-11-20T10:00:02.5+00:00",
        "method": "GET",
        "scheme": "wss",
        "host": "::1",
        "port": 8443,
        "path": "/s",
        "query": "apikey=k&page=2",
        "status": 101,
        "duration_ms": 9.5,
        "ttfb_ms": None,
        "request_headers": [["X-Session-Id", "s1"], ["X-Trace", "t"]],
        "response_headers": [],
        "request_body": b"\xff\x00",
        "response_body": "\\x" + transcript.hex(),
        "response_body_size": len(transcript),
    }
    har = to_har_entry(row)
    assert har["request"]["url"] == "wss://[::1]:8443/s?apikey=%3Credacted%3E&page=2"
    assert har["request"]["headers"] == [
        {"name": "X-Session-Id", "value": "<redacted>"},
        {"name": "X-Trace", "value": "t"},
    ]
    assert har["request"]["postData"]["encoding"] == "base64"
    assert (har["timings"]["wait"], har["timings"]["receive"], har["time"]) == (9.5, 0, 9.5)
    assert har["startedDateTime"] == "2026-11-20T10:00:02.500Z"
    back = from_har_entry(har)
    assert base64.b64decode(back["response_body_b64"]) == transcript
    assert base64.b64decode(back["request_body_b64"]) == b"\xff\x00"
    assert (back["scheme"], back["host"], back["port"], back["status"]) == ("wss", "::1", 8443, 101)
    assert (
        to_har_entry({**row, "response_body": b"plain text"}, include_secrets=True)["response"]["content"][
            "text"
        ]
        == "plain text"
    )
    assert is_secret_param("X-Amz-Signature")
    assert not is_secret_param("page")
    base = {"startedDateTime": "2026-01-01T00:00:00Z", "request": {"method": "GET", "url": "http://x/"}}
    for odd, said in (
        ({}, "request is missing"),
        ({**base, "request": {"method": "GET", "url": "ftp://x/"}}, "is not an http(s) or ws(s) URL"),
        ({**base, "request": {"method": "GET", "url": "http://x:99999/"}}, "is not a URL"),
        ({**base, "response": {"status": "ok"}}, "response.status 'ok' is not an HTTP status"),
        ({**base, "_webSocketMessages": [{"type": "shout"}]}, "a WebSocket message is not"),
    ):
        with pytest.raises(HarError, match=re.escape(said)):
            from_har_entry(odd)
