"""The dashboard in real Chromium (Debian's package, driven by Playwright; nothing is downloaded), served by
the session's API server from dashboard/dist: sign in with email and password (and a wrong password refused),
the live traffic table receiving a device's entry without a reload while another workspace's entry never
shows, the app answering a deep link while /rest/v1 stays the API, and no console errors. Screenshots of the
traffic view at 1280x800 and 390x844 go to a temporary folder (printed), never into the repository.

The page is driven through the data-testid hooks of docs/dashboard.md."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from busymate.settings import Settings
from tests.e2e.dashboard.conftest import Team, Watched, ingest
from tests.e2e.proxy_helpers import sql
from tests.world import World

PASSWORD = "dashboard-horse-7"
WAIT_MS = 10_000  # an upper bound for the page to settle, never a timing assertion


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
        foreign = ingest(stack, world, world.tokens["d2"], host="outsider.dashboard.example")
        own = ingest(stack, world, world.tokens["d1"], host="member.dashboard.example")
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


def test_the_navigation_follows_the_role_and_the_back_button(team: Team) -> None:
    context = team.context("viewer")
    try:
        watched = team.open(context, "/")
        page = watched.page
        expect(page.get_by_test_id("user-role")).to_have_text("viewer")
        expect(page.get_by_test_id("nav-devices")).to_be_visible()
        expect(page.get_by_test_id("nav-users")).to_have_count(0)  # users:view is not the viewer's
        page.get_by_test_id("nav-devices").click()
        expect(page.get_by_test_id("page-devices")).to_be_visible(timeout=WAIT_MS)
        assert page.url.endswith("/devices")
        page.go_back()
        expect(page.get_by_test_id("traffic-table")).to_be_visible(timeout=WAIT_MS)
        page.goto(f"{team.url}/no-such-page")
        expect(page.get_by_test_id("not-found")).to_be_visible(timeout=WAIT_MS)
        assert watched.errors == []
    finally:
        context.close()
