"""The entry detail (`/?entry=<id>`) in real Chromium against the session's proxy: a POST with a JSON body,
an `Authorization: Bearer secret-...` and a `Cookie` sent through the device's port shows its method, URL,
status, device, headers and both bodies (read on demand; JSON as a collapsible tree); the copied cURL, run
through the same proxy, reaches the origin with the same method, path and body; copies and HAR exports carry
no secret header value unless "include secrets" is ticked (then they do); the HAR is HAR 1.2 in structure;
resend as the member shows its outcome and the origin sees the request again; Escape closes. An image body is
shown as an image and as hex; a viewer sees no resend button; an id that does not exist says so. Screenshots
at both sizes."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from busymate.settings import Settings
from tests.e2e.dashboard.conftest import DESKTOP, PHONE, WAIT_MS, Capture, Team, shoot
from tests.e2e.proxy_helpers import sql, until

# A valid 1x1 PNG (the origin's /echo answers it back as image/png).
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000200e221bc330000000049454e44ae426082"
)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def _curl(capture: Capture, path: str, *args: str) -> bytes:
    """curl through the device's port, trusting only the proxy's CA; the response body."""
    command = ["curl", "-sS", "--max-time", "30", "--proxy", f"http://127.0.0.1:{capture.port}"]
    command += ["--cacert", str(capture.proxy.ca_file), *args, f"{capture.origin.url}{path}"]
    done = subprocess.run(command, capture_output=True, env=_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _via_proxy(capture: Capture) -> str:
    """What the test adds to a copied cURL command to send it through the device's port."""
    return f"-sS --max-time 30 --proxy http://127.0.0.1:{capture.port} --cacert {capture.proxy.ca_file}"


def _entries(stack: Settings, mark: str, count: int) -> list[dict[str, Any]]:
    """The stored entries whose query carries `mark`, oldest first, once there are `count`."""

    def rows() -> list[dict[str, Any]] | None:
        found = sql(
            stack,
            "select id::text, method, path, request_body from public.entries where query like %s "
            "order by captured_at",
            (f"%{mark}%",),
        )
        listed = [{"id": r[0], "method": r[1], "path": r[2], "request_body": r[3]} for r in found]
        return listed if len(listed) >= count else None

    return until(rows, f"{count} entries with {mark}")


def _export_har(page: Page, tmp: Path, name: str) -> tuple[str, dict[str, Any]]:
    with page.expect_download(timeout=WAIT_MS) as caught:
        page.get_by_test_id("detail-export-har").click()
    download = caught.value
    assert download.suggested_filename.endswith(".har")
    path = tmp / name
    download.save_as(path)
    text = path.read_text()
    return text, json.loads(text)


def _name_values(items: Any, where: str) -> None:
    assert isinstance(items, list), where
    for item in items:
        assert isinstance(item, dict), where
        assert isinstance(item.get("name"), str), where
        assert isinstance(item.get("value"), str), where


def validate_har(doc: dict[str, Any]) -> None:
    """The structure HAR 1.2 requires (http://www.softwareishard.com/blog/har-12-spec/), field by field."""
    log = doc["log"]
    assert log["version"] == "1.2"
    assert isinstance(log["creator"]["name"], str)
    assert isinstance(log["creator"]["version"], str)
    assert isinstance(log["entries"], list)
    assert log["entries"]
    for entry in log["entries"]:
        assert isinstance(entry["startedDateTime"], str)
        assert "T" in entry["startedDateTime"]
        assert isinstance(entry["time"], int | float)
        assert entry["time"] >= 0
        request, response = entry["request"], entry["response"]
        for key in ("method", "url", "httpVersion"):
            assert isinstance(request[key], str), key
        for key in ("cookies", "headers", "queryString"):
            _name_values(request[key], f"request.{key}")
        assert isinstance(request["headersSize"], int)
        assert isinstance(request["bodySize"], int)
        if "postData" in request:
            assert isinstance(request["postData"]["mimeType"], str)
            assert isinstance(request["postData"]["text"], str)
        assert isinstance(response["status"], int)
        assert isinstance(response["statusText"], str)
        assert isinstance(response["httpVersion"], str)
        assert isinstance(response["redirectURL"], str)
        for key in ("cookies", "headers"):
            _name_values(response[key], f"response.{key}")
        content = response["content"]
        assert isinstance(content["size"], int)
        assert isinstance(content["mimeType"], str)
        assert isinstance(response["headersSize"], int)
        assert isinstance(response["bodySize"], int)
        assert isinstance(entry["cache"], dict)
        timings = entry["timings"]
        for key in ("send", "wait", "receive"):
            assert isinstance(timings[key], int | float), key
            assert timings[key] >= 0, key
        for key in ("blocked", "dns", "connect", "ssl"):
            assert key not in timings or timings[key] == -1 or timings[key] >= 0, key
        # time is the sum of the timings that apply (-1: does not apply)
        total = sum(v for v in timings.values() if isinstance(v, int | float) and v >= 0)
        assert abs(total - entry["time"]) < 0.01


def test_the_member_reads_copies_replays_exports_and_resends_an_entry(
    stack: Settings, team: Team, capture: Capture, screens: Path, tmp_path: Path
) -> None:
    mark = f"m={uuid.uuid4().hex}"
    secret = f"secret-{uuid.uuid4().hex}"
    cookie = f"cookie-{uuid.uuid4().hex}"
    body = json.dumps({"mark": mark, "nested": {"list": [1, 2, {"deep": True}], "name": "busymate"}}).encode()
    answer = _curl(
        capture,
        f"/echo?{mark}",
        "-X",
        "POST",
        "-H",
        f"Authorization: Bearer {secret}",
        "-H",
        f"Cookie: sid={cookie}; theme=dark",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body.decode(),
    )
    assert answer == body
    [first] = _entries(stack, mark, 1)

    context = team.context("member")
    try:
        watched = team.open(context, f"/?entry={first['id']}")
        page = watched.page
        detail = page.get_by_test_id("entry-detail")
        expect(page.get_by_test_id("detail-method")).to_have_text("POST", timeout=WAIT_MS)
        expect(page.get_by_test_id("detail-status")).to_have_text("200")
        expect(page.get_by_test_id("detail-url")).to_have_text(f"{capture.origin.url}/echo?{mark}")
        expect(page.get_by_test_id("detail-device")).to_have_text(capture.device["name"])
        expect(page.get_by_test_id("detail-size")).to_contain_text("response")
        # the headers as captured (the user may read them); both tables
        expect(page.get_by_test_id("request-headers")).to_contain_text(f"Bearer {secret}")
        expect(page.get_by_test_id("response-headers")).to_contain_text("application/json")
        # bodies are read only when their tab opens; JSON as a collapsible tree of <details>
        page.get_by_test_id("detail-tab-request-body").click()
        tree = page.get_by_test_id("request-body-json")
        expect(tree).to_contain_text('"deep"', timeout=WAIT_MS)
        assert tree.locator("details").count() >= 3
        tree.locator("details > summary").first.click()  # collapses the root
        expect(tree.locator("details").first).not_to_have_attribute("open", "")
        page.get_by_test_id("request-body-mode-text").click()
        expect(page.get_by_test_id("request-body-text")).to_have_text(body.decode())
        page.get_by_test_id("detail-tab-response-body").click()
        expect(page.get_by_test_id("response-body-json")).to_contain_text(mark, timeout=WAIT_MS)
        expect(page.get_by_test_id("response-body-size")).to_contain_text(f"{len(body)} B")
        page.get_by_test_id("detail-tab-timings").click()
        expect(page.get_by_test_id("timing-total")).not_to_have_text("—")

        # copies: secrets redacted unless ticked
        page.get_by_test_id("copy-fetch").click()
        fetch_copy = page.locator("[data-testid=copied-text][data-kind=fetch]")
        expect(fetch_copy).to_be_visible(timeout=WAIT_MS)
        fetch_text = fetch_copy.input_value()
        assert '"method": "POST"' in fetch_text
        assert json.dumps(body.decode()) in fetch_text
        assert secret not in fetch_text
        assert cookie not in fetch_text
        assert "<redacted>" in fetch_text
        page.get_by_test_id("copy-curl").click()
        curl_copy = page.locator("[data-testid=copied-text][data-kind=curl]")
        expect(curl_copy).to_be_visible(timeout=WAIT_MS)
        assert secret not in curl_copy.input_value()
        assert cookie not in curl_copy.input_value()
        page.get_by_test_id("include-secrets").check()
        page.get_by_test_id("copy-curl").click()
        page.wait_for_function(
            "s => document.querySelector('[data-testid=copied-text]').value.includes(s)",
            arg=secret,
            timeout=WAIT_MS,
        )
        curl_text = curl_copy.input_value()
        assert cookie in curl_text

        # the copied cURL, run through the same proxy, reaches the origin with the same method, path and body
        run = subprocess.run(
            [
                "bash",
                "-c",
                f"{curl_text} {_via_proxy(capture)}",
            ],
            capture_output=True,
            env=_env(),
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout == body  # the origin echoes what it received
        _, replayed = _entries(stack, mark, 2)
        assert (replayed["method"], replayed["path"], bytes(replayed["request_body"])) == (
            "POST",
            "/echo",
            body,
        )

        # HAR 1.2: no secret value unless "include secrets" is ticked
        page.get_by_test_id("include-secrets").uncheck()
        har_text, har = _export_har(page, tmp_path, "redacted.har")
        validate_har(har)
        [entry] = har["log"]["entries"]
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["url"] == f"{capture.origin.url}/echo?{mark}"
        assert entry["request"]["postData"]["text"] == body.decode()
        assert entry["response"]["status"] == 200
        assert entry["response"]["content"]["text"] == body.decode()
        assert {"name": "sid", "value": "<redacted>"} in entry["request"]["cookies"]
        assert secret not in har_text
        assert cookie not in har_text
        page.get_by_test_id("include-secrets").check()
        har_text, har = _export_har(page, tmp_path, "secrets.har")
        validate_har(har)
        assert f"Bearer {secret}" in har_text
        assert {"name": "sid", "value": cookie} in har["log"]["entries"][0]["request"]["cookies"]

        # resend: the outcome shows, and the origin sees the request a third time
        page.get_by_test_id("resend").click()
        outcome = page.get_by_test_id("resend-outcome")
        expect(outcome).to_have_attribute("data-phase", "replayed", timeout=3 * WAIT_MS)
        expect(outcome).to_contain_text("status 200")
        third = _entries(stack, mark, 3)[2]
        assert (third["method"], third["path"], bytes(third["request_body"])) == ("POST", "/echo", body)

        # a phone: the pane takes the width, nothing scrolls sideways
        page.set_viewport_size(PHONE)
        box = detail.bounding_box()
        assert box is not None
        assert box["width"] >= PHONE["width"] - 2
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.set_viewport_size(DESKTOP)
        page.get_by_test_id("detail-tab-request-body").click()
        shoot(page, screens, "detail")

        page.keyboard.press("Escape")
        expect(detail).to_have_count(0, timeout=WAIT_MS)
        assert "entry=" not in page.url

        # the traffic toolbar's "Export HAR" of the current filter: the three entries, oldest first, redacted
        page.get_by_test_id("filter").fill(mark)
        try:
            expect(page.get_by_test_id("traffic-row")).to_have_count(3, timeout=WAIT_MS)
            with page.expect_download(timeout=WAIT_MS) as caught:
                page.get_by_test_id("export-har-filter").click()
            listed_text = Path(caught.value.path()).read_text()
            listed = json.loads(listed_text)
            validate_har(listed)
            assert [e["_busymate"]["id"] for e in listed["log"]["entries"]] == [
                e["id"] for e in _entries(stack, mark, 3)
            ]
            assert {e["request"]["postData"]["text"] for e in listed["log"]["entries"]} == {body.decode()}
            assert secret not in listed_text
            assert cookie not in listed_text

            # the keyboard: down selects the newest row, Enter opens it; Enter on a control of the detail
            # pane is that control's (it copies), not the table's
            page.evaluate("document.activeElement.blur()")  # (Escape would also empty a search field)
            page.keyboard.press("ArrowDown")
            newest = page.locator('[data-testid="traffic-row"][aria-selected="true"]')
            expect(newest).to_have_count(1, timeout=WAIT_MS)
            newest_id = newest.get_attribute("data-entry-id")
            page.keyboard.press("Enter")
            expect(page.locator(f'[data-testid="entry-detail"][data-entry-id="{newest_id}"]')).to_be_visible(
                timeout=WAIT_MS
            )
            page.get_by_test_id("copy-curl").focus()
            page.keyboard.press("Enter")
            expect(page.get_by_test_id("copied-text")).to_be_visible(timeout=WAIT_MS)
            assert page.url.endswith(f"entry={newest_id}")
            page.keyboard.press("Escape")
        finally:
            # the filter is saved per user (workspace_tabs, debounced): once stored, clear it for later suites
            def saved() -> bool:
                query = "select 1 from public.workspace_tabs where filter->>'text' = %s"
                return bool(sql(stack, query, (mark,)))

            until(saved, "the member's tab filter saved")
            page.get_by_test_id("filter").fill("")
            until(lambda: not saved(), "the member's tab filter cleared")
        assert watched.errors == []
    finally:
        context.close()


def test_an_image_body_a_viewer_without_resend_and_an_unknown_id(
    stack: Settings, team: Team, capture: Capture, screens: Path, tmp_path: Path
) -> None:
    mark = f"m={uuid.uuid4().hex}"
    png = tmp_path / "pixel.png"
    png.write_bytes(PNG_1X1)
    assert (
        _curl(capture, f"/echo?{mark}", "-H", "Content-Type: image/png", "--data-binary", f"@{png}")
        == PNG_1X1
    )
    [entry] = _entries(stack, mark, 1)

    context = team.context("viewer")
    try:
        watched = team.open(context, f"/?entry={entry['id']}")
        page = watched.page
        expect(page.get_by_test_id("detail-method")).to_have_text("POST", timeout=WAIT_MS)
        expect(page.get_by_test_id("copy-curl")).to_be_visible()
        expect(page.get_by_test_id("resend")).to_have_count(0)  # a viewer lacks breakpoints:edit
        page.get_by_test_id("detail-tab-response-body").click()
        image = page.get_by_test_id("response-body-image")
        expect(image).to_be_visible(timeout=WAIT_MS)
        page.wait_for_function(
            "() => document.querySelector('[data-testid=response-body-image]').naturalWidth === 1",
            timeout=WAIT_MS,
        )
        page.get_by_test_id("response-body-mode-hex").click()
        expect(page.get_by_test_id("response-body-hex")).to_contain_text("89 50 4e 47 0d 0a 1a 0a")
        # a binary body's cURL pipes the exact bytes (NUL included) into curl; the origin gets them all
        page.get_by_test_id("copy-curl").click()
        curl_text = page.get_by_test_id("copied-text").input_value()
        assert curl_text.startswith("printf '")
        run = subprocess.run(
            ["bash", "-c", f"{curl_text} {_via_proxy(capture)}"],
            capture_output=True,
            env=_env(),
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout == PNG_1X1
        shoot(page, screens, "detail-image")
        page.get_by_test_id("copied-hide").click()
        expect(page.get_by_test_id("copied-text")).to_have_count(0)
        page.get_by_test_id("detail-close").click()
        expect(page.get_by_test_id("entry-detail")).to_have_count(0, timeout=WAIT_MS)

        for missing in (str(uuid.uuid4()), "not-an-id"):
            page.goto(f"{team.url}/?entry={missing}")
            expect(page.get_by_test_id("detail-not-found")).to_contain_text("not found", timeout=WAIT_MS)
        shoot(page, screens, "detail-not-found")
        assert watched.errors == []
    finally:
        context.close()
