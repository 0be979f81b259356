"""The dashboard in real Chromium (Debian's package, driven by Playwright; nothing is downloaded), served by
the session's API server from dashboard/dist: sign in with email and password (and a wrong password refused),
the live traffic table receiving a device's entry without a reload while another workspace's entry never
shows, the app answering a deep link while /rest/v1 stays the API, and no console errors. Screenshots of the
traffic view at 1280x800 and 390x844 go to a temporary folder (printed), never into the repository.

The page is driven through the data-testid hooks of docs/dashboard.md."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from busymate.settings import Settings
from tests.e2e.proxy_helpers import sql
from tests.world import World

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "dashboard-horse-7"
WAIT_MS = 10_000  # an upper bound for the page to settle, never a timing assertion


@pytest.fixture(scope="module")
def browser(stack: Settings) -> Iterator[Browser]:
    if not CHROMIUM.exists():  # make test installs it (make testdeps): missing means the setup broke
        pytest.fail(f"{CHROMIUM} is missing: run make testdeps (it installs Debian's chromium)")
    if not (stack.dashboard_dir / "index.html").is_file():
        pytest.fail(f"{stack.dashboard_dir} is not built: run `make dashboard` (make test does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def member(stack: Settings, world: World) -> dict[str, str]:
    """A member of w1 with a password, made through the auth server's admin API (as an admin would)."""
    email = f"dash-{uuid.uuid4().hex[:8]}@test.busymate.local"
    made = httpx.post(
        f"{stack.api_url}/auth/v1/admin/users",
        json={"email": email, "password": PASSWORD, "email_confirm": True},
        headers={"apikey": world.service_key, "authorization": f"Bearer {world.service_key}"},
        timeout=10,
    )
    assert made.status_code == 200, made.text
    user_id = made.json()["id"]
    sql(
        stack,
        "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)",
        (world.ids["w1"], user_id),
    )
    sql(stack, "update public.profiles set role = 'member' where id = %s", (user_id,))
    return {"id": user_id, "email": email}


class Watched:
    """A page whose console errors and uncaught exceptions are kept."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location})")


def _ingest(stack: Settings, world: World, device: str, host: str) -> str:
    """One captured entry from `device`, through ingest_entries under its token; its id."""
    entry_id = str(uuid.uuid4())
    flow: dict[str, Any] = {
        "id": entry_id,
        "captured_at": datetime.now(UTC).isoformat(),
        "method": "POST",
        "scheme": "https",
        "host": host,
        "port": 443,
        "path": "/v1/dashboard-check",
        "status": 201,
        "duration_ms": 12.5,
        "request_headers": [["Content-Type", "application/json"]],
        "response_headers": [["Content-Type", "application/json"]],
        "response_content_type": "application/json",
    }
    answer = httpx.post(
        f"{stack.api_url}/rest/v1/rpc/ingest_entries",
        json={"batch": [flow]},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {world.tokens[device]}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["inserted"] == 1, answer.text
    return entry_id


def _sign_in(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/")
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("password").fill(password)
    page.get_by_test_id("sign-in").click()


def test_a_wrong_password_is_refused_on_the_page(
    stack: Settings, browser: Browser, member: dict[str, str]
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        watched = Watched(context.new_page())
        _sign_in(watched.page, stack.api_url, member["email"], "not-the-password")
        expect(watched.page.get_by_test_id("sign-in-error")).to_be_visible(timeout=WAIT_MS)
        expect(watched.page.get_by_test_id("user-email")).to_have_count(0)
        # the browser itself logs the auth server's 400 for the refused password; nothing else may show
        refused = "the server responded with a status of 400"
        assert [e for e in watched.errors if refused not in e] == []
    finally:
        context.close()


def test_traffic_arrives_live_and_only_the_workspaces_own(
    stack: Settings,
    world: World,
    browser: Browser,
    member: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    screens = tmp_path_factory.mktemp("dashboard-screenshots")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        watched = Watched(context.new_page())
        page = watched.page
        _sign_in(page, stack.api_url, member["email"], PASSWORD)
        expect(page.get_by_test_id("user-email")).to_have_text(member["email"], timeout=WAIT_MS)
        expect(page.get_by_test_id("user-role")).to_contain_text("member", ignore_case=True)
        switcher = page.get_by_test_id("workspace-switcher")
        values = switcher.locator("option").evaluate_all("options => options.map(o => o.value)")
        assert world.ids["w1"] in values, values
        assert world.ids["w2"] not in values, values
        expect(page.get_by_test_id("traffic-table")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("connection-state")).to_have_text("live", timeout=WAIT_MS)

        # w2's device first, then w1's: when w1's row is in, w2's had its chance to leak
        foreign = _ingest(stack, world, "d2", "outsider.dashboard.example")
        own = _ingest(stack, world, "d1", "member.dashboard.example")
        row = page.locator(f'[data-testid="traffic-row"][data-entry-id="{own}"]')
        expect(row).to_have_count(1, timeout=WAIT_MS)
        for text in ("POST", "201", "member.dashboard.example", "/v1/dashboard-check"):
            expect(row).to_contain_text(text)
        expect(page.locator(f'[data-entry-id="{foreign}"]')).to_have_count(0)
        expect(page.get_by_text("outsider.dashboard.example")).to_have_count(0)
        assert int(page.get_by_test_id("row-count").inner_text()) >= 1
        toggle = page.get_by_test_id("follow-toggle")
        expect(toggle).to_have_text("Pause")
        toggle.click()
        expect(toggle).to_have_text("Follow")
        toggle.click()
        expect(toggle).to_have_text("Pause")

        page.screenshot(path=str(screens / "traffic-1280x800.png"))
        page.set_viewport_size({"width": 390, "height": 844})
        expect(page.get_by_test_id("traffic-table")).to_be_visible()
        page.screenshot(path=str(screens / "traffic-390x844.png"))
        print(f"screenshots in {screens}")

        # a reload reads the table again: still w1's entry, still never w2's
        page.reload()
        expect(page.locator(f'[data-testid="traffic-row"][data-entry-id="{own}"]')).to_have_count(
            1, timeout=WAIT_MS
        )
        expect(page.locator(f'[data-entry-id="{foreign}"]')).to_have_count(0)
        assert watched.errors == []
    finally:
        context.close()


def test_a_deep_link_is_the_app_and_the_api_stays_the_api(
    stack: Settings, world: World, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        watched = Watched(context.new_page())
        answer = watched.page.goto(f"{stack.api_url}/devices?uuid={world.ids['d1']}")
        assert answer is not None
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("text/html")
        expect(watched.page.get_by_test_id("email")).to_be_visible(timeout=WAIT_MS)  # the app, signed out
        assert watched.errors == []
    finally:
        context.close()
    index = (stack.dashboard_dir / "index.html").read_bytes()
    assert httpx.get(f"{stack.api_url}/devices?uuid=x", headers={"accept": "text/html"}).content == index
    head = httpx.head(f"{stack.api_url}/")
    assert head.status_code == 200
    assert head.headers["content-type"] == "text/html; charset=utf-8"
    assert head.headers["content-length"] == str(len(index))
    assert head.content == b""
    api = httpx.get(f"{stack.api_url}/rest/v1/", headers={"apikey": world.anon_key})
    assert api.status_code == 200, api.text
    assert "paths" in api.json(), api.text  # the OpenAPI description, as before
    # a browser's Accept gets the API's own answers, never the app
    html = httpx.get(f"{stack.api_url}/rest/v1/", headers={"accept": "text/html", "apikey": world.anon_key})
    assert (html.status_code, html.json()["code"]) == (406, "PGRST107"), html.text
    refused = httpx.get(f"{stack.api_url}/rest/v1/entries", headers={"accept": "text/html"})
    assert refused.status_code in (401, 406), refused.text
    assert refused.content != index
    config = httpx.get(f"{stack.api_url}/config.json").json()
    assert config == {"url": stack.api_url, "anonKey": stack.publishable_key}
