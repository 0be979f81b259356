"""The Settings and Users pages in real Chromium against the session's stack.

Proves: the team's admin changes the global settings in the form and in the raw JSON and the database stores
exactly that (the original global settings are put back afterwards: other suites share the database); a change
made elsewhere shows on the open page without a reload (settings:global); a per-device override saved in the
UI changes effective_settings() and the effective table marks the key as coming from the override, and an
override changed elsewhere shows live (settings_device:<workspace_id>); a member reads the settings with no
save control and a forced set_global_settings under the member's token is refused and changes nothing; the
admin changes a user's role and workspace membership in the UI and the database has it, and a refused change
shows the database's message; `/users?id=<id>` opens that user and the back button returns to them; a member
sees the users read-only; a viewer (no users:view) has no Users link and a direct visit says it is not
allowed. Neither page scrolls sideways on a phone. Screenshots: settings and users, at both sizes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from busymate.settings import Settings
from tests.e2e.dashboard.conftest import DESKTOP, PHONE, WAIT_MS, Team, shoot
from tests.e2e.proxy_helpers import rpc, sql
from tests.world import World, add_user

KNOWN = ("connection_type", "body_cap_bytes", "capture_bodies")


def _fits_a_phone(page: Page) -> bool:
    """At 390x844 neither the document nor the page's own scroller scrolls sideways."""
    page.set_viewport_size(PHONE)
    try:
        return bool(
            page.evaluate(
                "() => document.documentElement.scrollWidth <= window.innerWidth"
                " && [...document.querySelectorAll('.page')].every((e) => e.scrollWidth <= e.clientWidth)"
            )
        )
    finally:
        page.set_viewport_size(DESKTOP)


def _global(stack: Settings) -> dict[str, Any]:
    settings: dict[str, Any] = sql(stack, "select settings from public.settings_global")[0][0]
    return settings


def test_admin_edits_global_and_device_settings_and_sees_changes_live(
    stack: Settings, world: World, team: Team, screens: Path
) -> None:
    original = _global(stack)
    nonce = uuid.uuid4().hex[:8]
    device = rpc(
        stack,
        world.tokens["admin"],
        "create_device",
        {"workspace_id": team.workspace_id, "name": f"settings-{nonce}", "source": "ios"},
    )
    context = team.context("admin")
    try:
        watched = team.open(context, f"/settings?device={device['uuid']}")
        page = watched.page
        expect(page.get_by_test_id("global-settings")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("settings-readonly")).to_have_count(0)

        # the form shows what is stored; a known key through the form, a new key through the raw JSON
        raw = page.get_by_test_id("global-settings-json")
        expect(raw).not_to_have_value("", timeout=WAIT_MS)
        others = json.loads(raw.input_value())
        assert others == {k: v for k, v in original.items() if k not in KNOWN}
        flip = original.get("capture_bodies") is not True
        page.get_by_test_id("setting-capture_bodies").select_option("true" if flip else "false")
        raw.fill(json.dumps({**others, f"dash_{nonce}": "on"}))
        page.get_by_test_id("save-global-settings").click()
        expect(page.get_by_test_id("global-settings-saved")).to_be_visible(timeout=WAIT_MS)
        stored = _global(stack)
        assert stored == {**original, "capture_bodies": flip, f"dash_{nonce}": "on"}

        # a change made elsewhere arrives live, in the form and in the device's effective settings
        kind = "pac" if original.get("connection_type") != "pac" else "vpn"
        sql(
            stack,
            "update public.settings_global set settings = settings || %s::jsonb",
            (json.dumps({"connection_type": kind}),),
        )
        expect(page.get_by_test_id("setting-connection_type")).to_have_value(kind, timeout=WAIT_MS)
        row = page.get_by_test_id("effective-row-connection_type")
        expect(row.get_by_test_id("effective-value")).to_have_text(f'"{kind}"', timeout=WAIT_MS)
        expect(row.get_by_test_id("effective-source")).to_have_text("global")

        # a per-device override saved in the UI: stored, effective, marked as the override's
        overrides = {"connection_type": "cdp", "body_cap_bytes": 4096}
        page.get_by_test_id("device-overrides").fill(json.dumps(overrides))
        page.get_by_test_id("save-device-overrides").click()
        expect(page.get_by_test_id("device-settings-saved")).to_be_visible(timeout=WAIT_MS)
        expect(row.get_by_test_id("effective-value")).to_contain_text('"cdp"', timeout=WAIT_MS)
        expect(row.get_by_test_id("effective-source")).to_have_text("override")
        cap = page.get_by_test_id("effective-row-body_cap_bytes")
        expect(cap.get_by_test_id("effective-value")).to_contain_text("4096")
        expect(cap.get_by_test_id("effective-source")).to_have_text("override")
        capture = page.get_by_test_id("effective-row-capture_bodies")
        expect(capture.get_by_test_id("effective-source")).to_have_text("global")
        effective = sql(stack, "select public.effective_settings(%s)", (device["uuid"],))[0][0]
        assert effective == {**stored, "connection_type": "cdp", "body_cap_bytes": 4096}
        saved = "select overrides from public.settings_device where device_uuid = %s"
        assert sql(stack, saved, (device["uuid"],)) == [(overrides,)]

        # the override changed elsewhere arrives live: the key falls back to the global value
        sql(
            stack,
            "update public.settings_device set overrides = %s::jsonb where device_uuid = %s",
            (json.dumps({"connection_type": "vpn"}), device["uuid"]),
        )
        expect(row.get_by_test_id("effective-value")).to_contain_text('"vpn"', timeout=WAIT_MS)
        expect(cap.get_by_test_id("effective-source")).not_to_have_text("override", timeout=WAIT_MS)
        expect(page.get_by_test_id("device-overrides")).to_have_value('{\n  "connection_type": "vpn"\n}')
        shoot(page, screens, "settings")
        assert _fits_a_phone(page)
        assert watched.errors == []
    finally:
        context.close()
        sql(stack, "update public.settings_global set settings = %s::jsonb", (json.dumps(original),))
        sql(stack, "delete from public.devices where uuid = %s", (device["uuid"],))
    assert _global(stack) == original


def test_a_member_reads_the_settings_and_a_forced_write_is_refused(stack: Settings, team: Team) -> None:
    before = _global(stack)
    context = team.context("member")
    try:
        watched = team.open(context, "/settings")
        page = watched.page
        expect(page.get_by_test_id("global-settings")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("settings-readonly")).to_be_visible()
        expect(page.get_by_test_id("save-global-settings")).to_have_count(0)
        expect(page.get_by_test_id("save-device-overrides")).to_have_count(0)
        expect(page.get_by_test_id("setting-capture_bodies")).to_be_disabled()
        expect(page.get_by_test_id("global-settings-json")).not_to_be_editable()
        with team.rest("member") as rest:
            refused = rest.post("/rpc/set_global_settings", json={"settings": {"hijacked": True}})
        assert refused.status_code in (401, 403), refused.text
        assert "only an admin" in refused.json()["message"]
        assert _global(stack) == before
        assert watched.errors == []
    finally:
        context.close()


def test_users_roles_membership_and_deep_links(stack: Settings, team: Team, screens: Path) -> None:
    user_id, _ = add_user(stack, team.workspace_id, "viewer", prefix="dash-role")
    member = team.people["member"]
    gone = f"dash_gone_{uuid.uuid4().hex[:8]}"  # a role the page lists, removed before it is picked
    sql(stack, "insert into public.roles (name, description) values (%s, 'removed by the test')", (gone,))
    context = team.context("admin")
    try:
        watched = team.open(context, f"/users?id={user_id}")
        page = watched.page
        expect(page.get_by_test_id("user-detail-email")).to_contain_text("dash-role-", timeout=WAIT_MS)
        expect(page.get_by_test_id("user-detail-role")).to_have_text("viewer")

        # the role, changed in the UI, is the database's
        page.get_by_test_id("user-role-select").select_option("member")
        page.get_by_test_id("user-role-save").click()
        expect(page.get_by_test_id("user-detail-role")).to_have_text("member", timeout=WAIT_MS)
        assert sql(stack, "select role from public.profiles where id = %s", (user_id,)) == [("member",)]

        # the database's refusal is shown in its own words, and nothing changes
        sql(stack, "delete from public.roles where name = %s", (gone,))
        page.get_by_test_id("user-role-select").select_option(gone)
        page.get_by_test_id("user-role-save").click()
        expect(page.get_by_test_id("user-action-error")).to_have_text(f"no role {gone}", timeout=WAIT_MS)
        expect(page.get_by_test_id("user-detail-role")).to_have_text("member")
        page.get_by_test_id("user-role-select").select_option("member")

        # workspace membership: removed, then added back
        members = "select count(*) from public.workspace_members where workspace_id = %s and user_id = %s"
        remove = page.get_by_test_id(f"remove-membership-{team.workspace_id}")
        remove.click()
        expect(remove).to_have_count(0, timeout=WAIT_MS)
        assert sql(stack, members, (team.workspace_id, user_id)) == [(0,)]
        page.get_by_test_id("add-membership-select").select_option(team.workspace_id)
        page.get_by_test_id("add-membership").click()
        expect(remove).to_be_visible(timeout=WAIT_MS)
        assert sql(stack, members, (team.workspace_id, user_id)) == [(1,)]
        shoot(page, screens, "users")
        assert _fits_a_phone(page)

        # another user opened from the list; back returns to the first
        page.get_by_test_id("users-filter").fill(member.email)
        page.locator(f'[data-testid="user-row"][data-user-id="{member.id}"]').click()
        expect(page.get_by_test_id("user-detail-email")).to_have_text(member.email, timeout=WAIT_MS)
        assert f"id={member.id}" in page.url
        page.go_back()
        expect(page.get_by_test_id("user-detail-email")).to_contain_text("dash-role-", timeout=WAIT_MS)
        # the browser itself logs the refused RPC's 400; nothing else may show
        refused = "status of 400 (Bad Request) ({'url': '" + f"{team.url}/rest/v1/rpc/set_user_role'"
        assert [e for e in watched.errors if refused not in e] == []
        assert len(watched.errors) == 1
    finally:
        context.close()
        sql(stack, "delete from public.roles where name = %s", (gone,))

    # a member (users:view) sees the user, with no control that changes anything
    context = team.context("member")
    try:
        watched = team.open(context, f"/users?id={user_id}")
        page = watched.page
        expect(page.get_by_test_id("user-detail-role")).to_have_text("member", timeout=WAIT_MS)
        expect(page.get_by_test_id("users-readonly")).to_be_visible()
        expect(page.get_by_test_id("user-role-select")).to_have_count(0)
        expect(page.get_by_test_id(f"remove-membership-{team.workspace_id}")).to_have_count(0)
        assert watched.errors == []
    finally:
        context.close()

    # a viewer has no Users link, and a direct visit says it is not allowed
    context = team.context("viewer")
    try:
        watched = team.open(context, "/users")
        page = watched.page
        expect(page.get_by_test_id("users-forbidden")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("users-forbidden")).to_contain_text("Not allowed")
        expect(page.get_by_test_id("nav-users")).to_have_count(0)
        expect(page.get_by_test_id("users-list")).to_have_count(0)
        assert watched.errors == []
    finally:
        context.close()
