"""The Breakpoints page in real Chromium against the stack and the session's proxy: a member creates a
request rule in the page for the capture device; a request sent through the device's port is paused and shows
up in the page live (ws:<workspace_id>, no reload) with a countdown, and a viewer's page shows it too without
the buttons; the header and body edited in the page's editor are what the origin receives (its /echo route
answers the body, the stored entry keeps the headers); the flow leaves the list with its outcome. The rule,
edited in the page to pause responses, lets the status and body set in the editor reach the client; toggled
off in the page it pauses nothing more; it is deleted in the page. A viewer sees the rules but no control; an
insert, update and delete forced through the REST endpoint and token the page uses change
nothing; `/breakpoints?id=<id>` opens that rule and the back button goes to the rule opened before. A write
the table refuses shows the API's message. Screenshots are taken while a flow is paused.

The rules match host 127.0.0.1 (the other suites reach the origin as localhost), so a rule of this module
never pauses another suite's request."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from busymate.settings import Settings
from tests.e2e.dashboard.conftest import DESKTOP, PHONE, WAIT_MS, Capture, Team, shoot
from tests.e2e.proxy_helpers import entries_with, sql, until

HOLD_WAIT = 20.0  # seconds to wait for the proxy to pick a rule change up (read every 2 s)


def send(capture: Capture, mark: str, body: str) -> subprocess.CompletedProcess[bytes]:
    """POST `body` to the origin's /echo (as 127.0.0.1) through the device's port (the proxy's CA only)."""
    command = ["curl", "-sS", "--max-time", "90", "--proxy", f"http://127.0.0.1:{capture.port}"]
    command += ["--cacert", str(capture.proxy.ca_file), "-H", "content-type: text/plain"]
    command += ["--data-binary", body]
    command.append(f"https://127.0.0.1:{capture.origin.port}/echo?{mark}")
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run(command, capture_output=True, env=env, timeout=100, check=False)


class Held:
    """A request sent in the background, which a breakpoint may hold."""

    def __init__(self, capture: Capture, mark: str, body: str) -> None:
        self.mark = mark
        self.result: subprocess.CompletedProcess[bytes] | None = None
        self.thread = threading.Thread(target=self._run, args=(capture, mark, body), daemon=True)
        self.thread.start()

    def _run(self, capture: Capture, mark: str, body: str) -> None:
        self.result = send(capture, mark, body)

    def done(self) -> subprocess.CompletedProcess[bytes]:
        self.thread.join(90)
        assert self.result is not None
        return self.result


def active_event(stack: Settings, mark: str) -> dict[str, Any] | None:
    """The paused (still active) breakpoint event of the request carrying `mark`, if any."""
    rows = sql(
        stack,
        "select to_jsonb(e) from public.breakpoint_events as e "
        "where e.active and e.snapshot -> 'request' ->> 'url' like %s order by e.paused_at desc limit 1",
        (f"%{mark}%",),
    )
    return rows[0][0] if rows else None


def one_request(
    team: Team, stack: Settings, capture: Capture, body: str, phase: str | None
) -> tuple[Held, dict[str, Any] | None]:
    """A request paused at `phase`, or with None one that went through without a pause. Until the proxy has
    read a rule change (every 2 s) a request may go through or pause elsewhere: such a pause is let go
    through REST, and another request is sent."""
    deadline = time.monotonic() + HOLD_WAIT
    while True:
        held = Held(capture, uuid.uuid4().hex, body)
        paused = False
        while True:
            event = active_event(stack, held.mark)
            if event is not None and event["phase"] == phase:
                return held, event
            if event is not None:
                paused = True
                with team.rest("member") as rest:
                    let_go = rest.post(
                        "/rpc/continue_breakpoint", json={"event_id": event["id"], "action": "continue"}
                    )
                    assert let_go.status_code == 200, let_go.text
            elif held.result is not None:
                break
            assert time.monotonic() < deadline, f"the proxy never applied the rule change (want {phase})"
            time.sleep(0.1)
        if phase is None and not paused:
            return held, None
        assert time.monotonic() < deadline, f"the proxy never applied the rule change (want {phase})"


def rule_row(page: Page, rule_id: str) -> Any:
    return page.locator(f'[data-testid="rule-row"][data-rule-id="{rule_id}"]')


def test_a_member_pauses_edits_and_continues_a_flow_then_toggles_edits_and_deletes_the_rule(
    stack: Settings, team: Team, capture: Capture, screens: Path
) -> None:
    member = team.context("member")
    viewer = team.context("viewer")
    rule_id: str | None = None
    try:
        watched = team.open(member, "/breakpoints")
        page = watched.page
        expect(page.get_by_test_id("paused-live")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
        expect(page.get_by_test_id("paused-empty")).to_be_visible()

        # Create the rule in the page.
        page.get_by_test_id("rule-new").click()
        form = page.locator('[data-testid="rule-form"][data-mode="new"]')
        form.get_by_test_id("rule-phase").select_option("request")
        form.get_by_test_id("rule-method").fill("post")
        form.get_by_test_id("rule-host").fill("127.0.0.1")
        form.get_by_test_id("rule-path").fill("/echo")
        form.get_by_test_id("rule-device").select_option(label=capture.device["name"])
        form.get_by_test_id("rule-save").click()
        opened = page.locator('[data-testid="rule-row"][data-open="true"]')
        expect(opened).to_have_count(1, timeout=WAIT_MS)
        rule_id = opened.get_attribute("data-rule-id")
        assert rule_id
        assert page.url.endswith(f"/breakpoints?id={rule_id}")
        expect(opened.get_by_test_id("rule-device-name")).to_have_text(capture.device["name"])
        [[row]] = sql(stack, "select to_jsonb(b) from public.breakpoints as b where id = %s", (rule_id,))
        assert (row["phase"], row["method"], row["host_pattern"], row["path_pattern"]) == (
            "request",
            "POST",
            "127.0.0.1",
            "/echo",
        )
        assert (row["device_uuid"], row["workspace_id"], row["enabled"]) == (
            capture.device["uuid"],
            team.workspace_id,
            True,
        )

        # A request is paused (once the proxy has read the rule) and shows up live, with a countdown.
        held, event = one_request(team, stack, capture, "original body", "request")
        assert event is not None
        assert (event["breakpoint_id"], event["device_uuid"]) == (rule_id, capture.device["uuid"])
        flow = page.locator(f'[data-testid="paused-flow"][data-event-id="{event["id"]}"]')
        expect(flow).to_be_visible(timeout=WAIT_MS)
        expect(flow.get_by_test_id("flow-countdown")).to_have_text(
            re.compile(r"^\d+ s left$"), timeout=WAIT_MS
        )
        left = int(flow.get_by_test_id("flow-countdown").get_attribute("data-seconds") or "0")
        assert 0 < left <= 60
        # the countdown is the proxy's own deadline (it runs with a 60 s timeout), not the page's guess
        [(held_for,)] = sql(
            stack,
            "select extract(epoch from expires_at - paused_at)::int from public.breakpoint_events "
            "where id = %s",
            (event["id"],),
        )
        assert held_for == 60
        assert held.result is None  # still held by the proxy

        # The viewer's page shows the paused flow too, read-only.
        seen = team.open(viewer, "/breakpoints")
        viewer_flow = seen.page.locator(f'[data-testid="paused-flow"][data-event-id="{event["id"]}"]')
        expect(viewer_flow).to_be_visible(timeout=WAIT_MS)
        expect(seen.page.get_by_test_id("flow-editor")).to_be_visible()
        expect(seen.page.get_by_test_id("flow-continue")).to_have_count(0)
        expect(seen.page.get_by_test_id("flow-abort")).to_have_count(0)
        expect(seen.page.get_by_test_id("edit-body")).not_to_be_editable()

        flow.click()
        editor = page.locator(f'[data-testid="flow-editor"][data-event-id="{event["id"]}"]')
        expect(editor).to_be_visible()
        expect(editor.get_by_test_id("edit-method")).to_have_value("POST")
        expect(editor.get_by_test_id("edit-url")).to_have_value(re.compile(rf"/echo\?{held.mark}$"))
        expect(editor.get_by_test_id("edit-body")).to_have_value("original body")
        shoot(page, screens, "breakpoints")
        page.set_viewport_size(PHONE)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.set_viewport_size(DESKTOP)

        # Edit a header and the body, continue: the origin receives the edited request.
        headers = editor.get_by_test_id("edit-headers")
        headers.fill(headers.input_value() + "\nX-Edited-In-Page: yes")
        editor.get_by_test_id("edit-body").fill(f"edited in the page {held.mark}")
        expect(editor.get_by_test_id("flow-continue")).to_have_text("Continue with edits")
        editor.get_by_test_id("flow-continue").click()
        done = held.done()
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"edited in the page {held.mark}".encode()
        outcome = page.locator(f'[data-testid="flow-outcome"][data-event-id="{event["id"]}"]')
        expect(outcome).to_have_attribute("data-outcome", "edited", timeout=WAIT_MS)
        expect(flow).to_have_count(0)
        expect(viewer_flow).to_have_count(0, timeout=WAIT_MS)  # the viewer's page heard the outcome live
        expect(
            seen.page.locator(f'[data-testid="flow-outcome"][data-event-id="{event["id"]}"]')
        ).to_be_visible()
        [[resolved]] = sql(
            stack, "select to_jsonb(e) from public.breakpoint_events as e where id = %s", (event["id"],)
        )
        assert resolved["outcome"] == "edited"
        assert resolved["resolved_by"] == team.people["member"].id
        [entry] = until(lambda: entries_with(stack, held.mark), "the edited request stored")
        assert ["X-Edited-In-Page", "yes"] in entry["request_headers"]
        assert bytes(entry["request_body"]) == f"edited in the page {held.mark}".encode()

        # Edit the rule in the page to pause responses: the status and body set in the page reach the client.
        row = rule_row(page, rule_id)
        row.get_by_test_id("rule-phase").select_option("response")
        row.get_by_test_id("rule-save").click()
        expect(row.get_by_test_id("rule-saved")).to_be_visible(timeout=WAIT_MS)
        assert sql(stack, "select phase from public.breakpoints where id = %s", (rule_id,)) == [("response",)]
        held, event = one_request(team, stack, capture, "answer me", "response")
        assert event is not None
        assert event["phase"] == "response"
        editor = page.locator(f'[data-testid="flow-editor"][data-event-id="{event["id"]}"]')
        expect(editor).to_be_visible(timeout=WAIT_MS)
        expect(editor.get_by_test_id("edit-status")).to_have_value("200")
        expect(editor.get_by_test_id("edit-body")).to_have_value("answer me")
        editor.get_by_test_id("edit-status").fill("418")
        editor.get_by_test_id("edit-body").fill("short and stout")
        editor.get_by_test_id("flow-continue").click()
        done = held.done()
        assert done.stdout == b"short and stout"
        [entry] = until(lambda: entries_with(stack, held.mark), "the edited response stored")
        assert entry["status"] == 418
        expect(
            page.locator(f'[data-testid="flow-outcome"][data-event-id="{event["id"]}"]')
        ).to_have_attribute("data-outcome", "edited", timeout=WAIT_MS)

        # Toggle the rule off in the page: requests go through (once the proxy has read the change).
        row.get_by_test_id("rule-enabled").click()
        expect(row.get_by_test_id("rule-enabled")).not_to_be_checked(timeout=WAIT_MS)
        assert sql(stack, "select enabled from public.breakpoints where id = %s", (rule_id,)) == [(False,)]
        held, _ = one_request(team, stack, capture, "not paused", None)
        assert held.done().stdout == b"not paused"
        expect(page.get_by_test_id("paused-empty")).to_be_visible(timeout=WAIT_MS)

        # Delete it in the page.
        row.get_by_test_id("rule-delete").click()
        row.get_by_test_id("rule-delete-confirm").click()
        expect(row).to_have_count(0, timeout=WAIT_MS)
        assert sql(stack, "select 1 from public.breakpoints where id = %s", (rule_id,)) == []
        assert page.url.endswith("/breakpoints")
        assert watched.errors == []
        assert seen.errors == []
    finally:
        if rule_id:
            sql(stack, "delete from public.breakpoints where id = %s", (rule_id,))
        member.close()
        viewer.close()


def test_a_viewer_sees_rules_without_controls_is_refused_and_deep_links_open_a_rule(
    stack: Settings, team: Team
) -> None:
    made = []
    with team.rest("admin") as rest:
        for path in ("/viewer-one", "/viewer-two"):
            answer = rest.post(
                "/breakpoints",
                json={
                    "workspace_id": team.workspace_id,
                    "phase": "response",
                    "host_pattern": "viewer.example",
                    "path_pattern": path,
                    "enabled": False,
                },
                headers={"prefer": "return=representation"},
            )
            assert answer.status_code == 201, answer.text
            made.append(answer.json()[0]["id"])
    first, second = made
    context = team.context("viewer")
    try:
        watched = team.open(context, f"/breakpoints?id={first}")
        page = watched.page
        opened = rule_row(page, first)
        expect(opened).to_have_attribute("data-open", "true", timeout=WAIT_MS)
        expect(opened.get_by_test_id("rule-detail")).to_be_visible()
        expect(opened.get_by_test_id("rule-pattern")).to_have_text("viewer.example/viewer-one")
        expect(opened.get_by_test_id("rule-state")).to_have_text("off")
        expect(opened).to_be_in_viewport()
        for control in ("rule-new", "rule-enabled", "rule-form", "rule-save", "rule-delete"):
            expect(page.get_by_test_id(control)).to_have_count(0)

        # Another rule, then back: the first is open again.
        rule_row(page, second).get_by_test_id("rule-open").click()
        expect(rule_row(page, second)).to_have_attribute("data-open", "true", timeout=WAIT_MS)
        expect(opened).to_have_attribute("data-open", "false")
        assert page.url.endswith(f"/breakpoints?id={second}")
        page.go_back()
        expect(opened).to_have_attribute("data-open", "true", timeout=WAIT_MS)
        assert page.url.endswith(f"/breakpoints?id={first}")

        # A rule another person adds shows up without a reload (breakpoints:<workspace_id>).
        with team.rest("admin") as rest:
            answer = rest.post(
                "/breakpoints",
                json={"workspace_id": team.workspace_id, "host_pattern": "live.example", "enabled": False},
                headers={"prefer": "return=representation"},
            )
            assert answer.status_code == 201, answer.text
            made.append(answer.json()[0]["id"])
        expect(rule_row(page, made[-1])).to_have_count(1, timeout=WAIT_MS)

        # Forced writes through the page's REST endpoint under the viewer's token: refused, nothing changes.
        with team.rest("viewer") as rest:
            inserted = rest.post(
                "/breakpoints",
                json={"workspace_id": team.workspace_id, "host_pattern": "forced.example"},
            )
            assert inserted.status_code == 403, inserted.text
            updated = rest.patch(
                "/breakpoints",
                params={"id": f"eq.{first}"},
                json={"enabled": True},
                headers={"prefer": "return=representation"},
            )
            assert updated.status_code in (200, 403), updated.text
            if updated.status_code == 200:
                assert updated.json() == []
            deleted = rest.delete("/breakpoints", params={"id": f"eq.{second}"})
            assert deleted.status_code in (204, 200, 403), deleted.text
        assert sql(stack, "select 1 from public.breakpoints where host_pattern = 'forced.example'") == []
        assert sql(stack, "select enabled from public.breakpoints where id = %s", (first,)) == [(False,)]
        assert sql(stack, "select 1 from public.breakpoints where id = %s", (second,)) == [(1,)]
        assert watched.errors == []
    finally:
        sql(stack, "delete from public.breakpoints where id = any(%s::uuid[])", (made,))
        context.close()


def test_a_write_the_database_refuses_shows_its_message(team: Team) -> None:
    context = team.context("member")
    try:
        watched = team.open(context, "/breakpoints")
        page = watched.page
        page.get_by_test_id("rule-new").click()
        form = page.locator('[data-testid="rule-form"][data-mode="new"]')
        form.get_by_test_id("rule-host").fill("never.example")
        method = form.get_by_test_id("rule-method")
        method.evaluate("(el) => el.removeAttribute('pattern')")  # past the form's own check, to the table's
        method.fill("GET2")
        form.get_by_test_id("rule-save").click()
        expect(form.get_by_test_id("rule-error")).to_contain_text("breakpoints_method_check", timeout=WAIT_MS)
        expect(form).to_be_visible()
        # The browser logs the refused request itself; nothing else went wrong.
        assert [e for e in watched.errors if "status of 400" not in e] == []
    finally:
        context.close()
