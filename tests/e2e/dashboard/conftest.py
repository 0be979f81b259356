"""What the dashboard suites share, started once for this folder: Debian's Chromium (driven by Playwright;
nothing is downloaded), a team of its own (a workspace and an admin, a member and a viewer with passwords,
made through the auth server's admin API as an admin would), a signed-in browser context per role (signed
in through the page once, then reused from its storage state), a proxy with one device of the team's
workspace in front of a local TLS origin, and a folder for screenshots (printed, never committed).

Package scope, not session: Playwright's sync API keeps an event loop running in this thread while the
browser is open, so it must be closed before the other suites call asyncio.run.

Pages are driven through the data-testid hooks of docs/dashboard.md."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from busymate.settings import Settings
from tests.e2e.origin import Origin
from tests.e2e.proxy_helpers import ProxyProcess, free_port_block, fresh_workspace, rpc, running_proxy, sql
from tests.world import World

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "dashboard-horse-7"
WAIT_MS = 10_000  # an upper bound for the page to settle, never a timing assertion
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the suites write screenshots (each view at 1280x800 and 390x844)."""
    folder = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"dashboard screenshots in {folder}")
    return folder


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


@dataclass
class Person:
    id: str
    email: str
    role: str
    token: str = ""  # an access token from the auth server (password grant)


@dataclass
class Team:
    """A workspace of the dashboard suites' own, its people, and signed-in browser contexts for them."""

    stack: Settings
    world: World
    browser: Browser
    workspace_id: str
    people: dict[str, Person]
    state_dir: Path
    _states: dict[str, Path] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.stack.api_url

    def sign_in(self, page: Page, person: str) -> None:
        """Signs `person` in through the page and waits for the header to name them."""
        who = self.people[person]
        page.goto(f"{self.url}/")
        page.get_by_test_id("email").fill(who.email)
        page.get_by_test_id("password").fill(PASSWORD)
        page.get_by_test_id("sign-in").click()
        expect(page.get_by_test_id("user-email")).to_have_text(who.email, timeout=WAIT_MS)

    def context(self, person: str, viewport: ViewportSize | None = None) -> BrowserContext:
        """A browser context where `person` is signed in (and the team's workspace selected). Close it."""
        if person not in self._states:
            context = self.browser.new_context(viewport=DESKTOP)
            try:
                page = context.new_page()
                self.sign_in(page, person)
                page.evaluate(
                    "([user, ws]) => localStorage.setItem('busymate.workspace.' + user, ws)",
                    [self.people[person].id, self.workspace_id],
                )
                path = self.state_dir / f"{person}.json"
                context.storage_state(path=str(path))
                self._states[person] = path
            finally:
                context.close()
        return self.browser.new_context(viewport=viewport or DESKTOP, storage_state=str(self._states[person]))

    def open(self, context: BrowserContext, path: str = "/") -> Watched:
        """A new page of `context` at `path` (relative to the app), console errors kept."""
        watched = Watched(context.new_page())
        watched.page.goto(f"{self.url}{path}")
        expect(watched.page.get_by_test_id("user-role")).not_to_have_text("…", timeout=WAIT_MS)
        return watched

    def rest(self, person: str) -> httpx.Client:
        """An httpx client on /rest/v1 under `person`'s token (as the page's own client sends it)."""
        return httpx.Client(
            base_url=f"{self.url}/rest/v1",
            headers={"apikey": self.world.anon_key, "authorization": f"Bearer {self.people[person].token}"},
            timeout=10,
        )


def _person(stack: Settings, world: World, workspace_id: str, role: str) -> Person:
    email = f"dash-{role}-{uuid.uuid4().hex[:8]}@test.busymate.local"
    admin_headers = {"apikey": world.service_key, "authorization": f"Bearer {world.service_key}"}
    made = httpx.post(
        f"{stack.api_url}/auth/v1/admin/users",
        json={
            "email": email,
            "password": PASSWORD,
            "email_confirm": True,
            "user_metadata": {"name": role.title()},
        },
        headers=admin_headers,
        timeout=10,
    )
    assert made.status_code == 200, made.text
    user_id = made.json()["id"]
    sql(
        stack,
        "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)",
        (workspace_id, user_id),
    )
    sql(stack, "update public.profiles set role = %s where id = %s", (role, user_id))
    granted = httpx.post(
        f"{stack.api_url}/auth/v1/token?grant_type=password",
        json={"email": email, "password": PASSWORD},
        headers={"apikey": world.anon_key},
        timeout=10,
    )
    assert granted.status_code == 200, granted.text
    return Person(user_id, email, role, granted.json()["access_token"])


@pytest.fixture(scope="package")
def team(stack: Settings, world: World, browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Team:
    workspace_id = fresh_workspace(stack, "dash")
    people = {role: _person(stack, world, workspace_id, role) for role in ("admin", "member", "viewer")}
    return Team(stack, world, browser, workspace_id, people, tmp_path_factory.mktemp("dashboard-states"))


@dataclass
class Capture:
    """A proxy serving the team's device `phone` (owned by the member) in front of a local TLS origin."""

    proxy: ProxyProcess
    origin: Origin
    device: dict[str, Any]

    @property
    def port(self) -> int:
        return int(self.device["proxy_port"])


@pytest.fixture(scope="package")
def capture(
    stack: Settings, world: World, team: Team, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Capture]:
    block = free_port_block(2)
    device = rpc(
        stack,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": team.workspace_id,
            "name": f"dash-phone-{uuid.uuid4().hex[:6]}",
            "source": "proxy",
            "allowed_sources": ["127.0.0.1/32"],
            "proxy_port": block[0],
        },
    )
    sql(
        stack,
        "update public.devices set owner_user_id = %s where uuid = %s",
        (team.people["member"].id, device["uuid"]),
    )
    with (
        Origin(tmp_path_factory.mktemp("dash-origin")) as origin,
        running_proxy(
            stack, range(block[0], block[0] + 1), origin.ca_file, BUSYMATE_BREAKPOINT_TIMEOUT="60"
        ) as proxy,
    ):
        proxy.wait_ports(lambda ports: block[0] in ports, "the dashboard device's port")
        yield Capture(proxy, origin, device)


def curl(capture: Capture, port: int, path: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """curl through a proxy port to `path` of the capture's origin, trusting only the proxy's CA."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    command = ["curl", "-sS", "--max-time", "30", "--proxy", f"http://127.0.0.1:{port}"]
    command += ["--cacert", str(capture.proxy.ca_file), *args, f"{capture.origin.url}{path}"]
    return subprocess.run(command, capture_output=True, env=env, timeout=60, check=False)


def ingest(stack: Settings, world: World, device_token: str, **fields: Any) -> str:
    """One entry through ingest_entries under a device's token (fields override a POST 201); its id."""
    entry_id = str(uuid.uuid4())
    flow: dict[str, Any] = {
        "id": entry_id,
        "captured_at": datetime.now(UTC).isoformat(),
        "method": "POST",
        "scheme": "https",
        "host": "api.dashboard.example",
        "port": 443,
        "path": "/v1/dashboard-check",
        "status": 201,
        "duration_ms": 12.5,
        "request_headers": [["Content-Type", "application/json"]],
        "response_headers": [["Content-Type", "application/json"]],
        "response_content_type": "application/json",
        **fields,
    }
    answer = httpx.post(
        f"{stack.api_url}/rest/v1/rpc/ingest_entries",
        json={"batch": [flow]},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {device_token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["inserted"] == 1, json.dumps(answer.json())
    return entry_id


def shoot(page: Page, screens: Path, name: str) -> None:
    """Screenshots of the page as it is, at 1280x800 and at 390x844 (the viewport is put back)."""
    before = page.viewport_size or DESKTOP
    for label, size in (("1280x800", DESKTOP), ("390x844", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(100)  # one layout pass; screenshots are evidence, not assertions
        page.screenshot(path=str(screens / f"{name}-{label}.png"))
    page.set_viewport_size(before)
