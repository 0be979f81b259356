"""The Devices page in real Chromium against the stack: a member (devices:edit, the device's owner) opens a
device by its deep link (/devices?uuid=...), renames it in the page and `busymate devices list` shows the new
name; the list follows another client's rename and a device_status change live, without a reload; VPN on and a
Live Activity message sent from the page reach the device's topic (device:<uuid>); closing the panel and the
browser's back button move through the history; an admin adds a device and gets its activation code and a QR
code of it (the code pairs at /functions/v1/pair), sees the API's refusal of a taken port, and removes the
device after a confirm step; a viewer sees no edit control, and a rename forced with the viewer's own token
(REST PATCH and the RPC) is refused and changes nothing. Screenshots of the page at 1280x800 and 390x844 go to
the session's screenshot folder.

The page is driven through the data-testid hooks of docs/dashboard.md (the devices section)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from busymate.settings import Settings
from busymate.stack.api_process import settings_env
from tests.e2e.dashboard.conftest import DESKTOP, PHONE, WAIT_MS, Team, shoot
from tests.e2e.proxy_helpers import rpc, sql
from tests.world import World


@pytest.fixture(scope="module")
def device(stack: Settings, world: World, team: Team) -> dict[str, Any]:
    """A device of the team's workspace for this module alone, owned by the member (so the member may command
    it), without a proxy port (nothing listens for it)."""
    made: dict[str, Any] = rpc(
        stack,
        world.tokens["admin"],
        "create_device",
        {
            "workspace_id": team.workspace_id,
            "name": f"dash-dev-{uuid.uuid4().hex[:6]}",
            "source": "ios",
            "owner_user_id": team.people["member"].id,
        },
    )
    return made


def busymate_devices_list(stack: Settings) -> list[dict[str, Any]]:
    """`busymate devices list --json` as a subprocess, as a person runs it (the local admin's session)."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "busymate"), "devices", "list", "--json"],
        env={**os.environ, **settings_env(stack), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, f"busymate devices list:\n{done.stdout}\n{done.stderr}"
    return list(json.loads(done.stdout))


def row(page: Page, device_uuid: str) -> Any:
    return page.locator(f'[data-testid="device-row"][data-uuid="{device_uuid}"]')


def test_a_member_opens_renames_and_commands_a_device_live(
    stack: Settings, team: Team, device: dict[str, Any], screens: Path
) -> None:
    context = team.context("member")
    try:
        watched = team.open(context, f"/devices?uuid={device['uuid']}")
        page = watched.page
        # The deep link opens that device's panel and marks its row.
        expect(page.get_by_test_id("device-detail-name")).to_have_text(device["name"], timeout=WAIT_MS)
        expect(page.get_by_test_id("detail-uuid")).to_have_text(device["uuid"])
        expect(row(page, device["uuid"])).to_have_attribute("aria-selected", "true")
        expect(page.get_by_test_id("detail-owner")).to_have_text("you")
        expect(page.get_by_test_id("devices-live")).to_have_text("live", timeout=WAIT_MS)
        # A member is no admin: no add, no unpair or remove; but the owner's commands are there.
        expect(page.get_by_test_id("device-controls")).to_be_visible()
        expect(page.get_by_test_id("device-add")).to_have_count(0)
        expect(page.get_by_test_id("device-remove")).to_have_count(0)

        # Rename in the page; the CLI sees the new name.
        renamed = f"{device['name']}-ui"
        page.get_by_test_id("rename-input").fill(renamed)
        page.get_by_test_id("rename-save").click()
        expect(page.get_by_test_id("device-result")).to_contain_text(renamed, timeout=WAIT_MS)
        expect(row(page, device["uuid"]).get_by_test_id("device-name")).to_have_text(renamed)
        listed = {d["uuid"]: d["name"] for d in busymate_devices_list(stack)}
        assert listed[device["uuid"]] == renamed

        # Another client renames it and the device reports a status: both show without a reload.
        with team.rest("admin") as admin:
            answer = admin.post(
                "/rpc/rename_device", json={"device_uuid": device["uuid"], "name": "from-admin"}
            )
            assert answer.status_code == 200, answer.text
        expect(row(page, device["uuid"]).get_by_test_id("device-name")).to_have_text(
            "from-admin", timeout=WAIT_MS
        )
        expect(page.get_by_test_id("device-detail-name")).to_have_text("from-admin")
        sql(
            stack,
            "update public.device_status set online = true, ip_country = 'NL', heartbeat_at = now() "
            "where device_uuid = %s",
            (device["uuid"],),
        )
        online = row(page, device["uuid"]).get_by_test_id("device-online")
        expect(online).to_have_text("online", timeout=WAIT_MS)
        expect(row(page, device["uuid"]).get_by_test_id("device-country")).to_have_text("NL")

        # VPN on and a Live Activity message: the result shows, and the device's topic carries both commands.
        page.get_by_test_id("vpn-on").click()
        expect(page.get_by_test_id("device-result")).to_contain_text("VPN on", timeout=WAIT_MS)
        expect(page.get_by_test_id("detail-vpn")).to_have_text("requested-on")
        page.get_by_test_id("live-message-input").fill("Capturing for QA")
        page.get_by_test_id("live-message-send").click()
        expect(page.get_by_test_id("device-result")).to_contain_text("Capturing for QA", timeout=WAIT_MS)
        expect(page.get_by_test_id("detail-live-message")).to_have_text("Capturing for QA")
        events = {
            r[0]: r[1]
            for r in sql(
                stack,
                "select event, payload from realtime.messages where topic = %s",
                ("device:" + device["uuid"],),
            )
        }
        assert events["vpn-on"]["vpn_state"] == "requested-on"
        assert events["live-activity-message"]["message"] == "Capturing for QA"
        # The name is trimmed as rename_device does it.
        page.get_by_test_id("rename-input").fill("   x   ")
        page.get_by_test_id("rename-save").click()
        expect(row(page, device["uuid"]).get_by_test_id("device-name")).to_have_text("x", timeout=WAIT_MS)
        shoot(page, screens, "devices")
        # On a phone the page does not scroll sideways (the table drops columns, the panel stacks).
        page.set_viewport_size(PHONE)
        expect(page.get_by_test_id("device-controls")).to_be_visible()
        wide = "el => el.scrollWidth - el.clientWidth"
        assert page.get_by_test_id("page-devices").evaluate(wide) <= 0
        page.set_viewport_size(DESKTOP)

        # Closing the panel is a navigation: back opens it again.
        page.get_by_test_id("device-close").click()
        expect(page.get_by_test_id("device-detail")).to_have_count(0)
        assert re.search(r"/devices$", page.url), page.url
        page.go_back()
        expect(page.get_by_test_id("device-detail-name")).to_have_text("x", timeout=WAIT_MS)
        assert watched.errors == []
    finally:
        context.close()


def test_an_admin_adds_a_device_with_its_code_and_qr_and_removes_it(
    stack: Settings, team: Team, screens: Path
) -> None:
    context = team.context("admin")
    try:
        watched = team.open(context, "/devices")
        page = watched.page
        expect(page.get_by_test_id("devices-live")).to_have_text("live", timeout=WAIT_MS)
        page.get_by_test_id("device-add").click()
        name = f"dash-added-{uuid.uuid4().hex[:6]}"
        page.get_by_test_id("add-name").fill(name)
        page.get_by_test_id("add-source").select_option("proxy")
        page.get_by_test_id("add-submit").click()
        code = page.get_by_test_id("activation-code")
        expect(code).to_have_text(re.compile(r"^[A-Z2-9]{5}-[A-Z2-9]{5}$"), timeout=WAIT_MS)
        qr = page.get_by_test_id("activation-qr")
        expect(qr).to_have_attribute("src", re.compile(r"^data:image/png;base64,"), timeout=WAIT_MS)
        expect(qr).to_have_attribute("data-payload", re.compile(re.escape(code.inner_text())))
        assert (
            page.evaluate("() => document.querySelector('[data-testid=activation-qr]').naturalWidth") > 0
        )  # a real image
        ios_profile = re.compile(r"busymate-ca\.mobileconfig$")
        expect(page.get_by_test_id("ca-ios")).to_have_attribute("href", ios_profile)
        shoot(page, screens, "devices-add")
        added = sql(
            stack,
            "select uuid::text, source, proxy_port, workspace_id::text from public.devices where name = %s",
            (name,),
        )
        assert len(added) == 1
        added_uuid, source, port, workspace_id = added[0]
        assert (source, workspace_id) == ("proxy", team.workspace_id)
        assert port is not None
        expect(page.get_by_test_id("proxy-address")).to_contain_text(f":{port}")
        # A refusal shows the API's own message: a second device on the same port.
        page.get_by_test_id("add-name").fill(f"{name}-twin")
        page.get_by_test_id("add-port").fill(str(port))
        page.get_by_test_id("add-submit").click()
        expect(page.get_by_test_id("add-error")).to_contain_text("proxy_port", timeout=WAIT_MS)
        assert sql(stack, "select 1 from public.devices where name = %s", (f"{name}-twin",)) == []
        # The new device shows in the list (the database's broadcast on devices:<workspace_id>) ...
        expect(row(page, added_uuid).get_by_test_id("device-name")).to_have_text(name, timeout=WAIT_MS)
        # ... and the code really pairs it, once.
        pair_url = f"{stack.api_url}/functions/v1/pair"
        paired = httpx.post(pair_url, json={"code": code.inner_text()}, timeout=10)
        assert paired.status_code == 200, paired.text
        assert paired.json()["device"]["uuid"] == added_uuid

        # Unpair it (confirmed): its token stops working and the list marks it.
        page.get_by_test_id("added-open").click()
        expect(page.get_by_test_id("device-detail-name")).to_have_text(name, timeout=WAIT_MS)
        page.get_by_test_id("device-unpair").click()
        page.get_by_test_id("confirm-yes").click()
        expect(page.get_by_test_id("device-result")).to_contain_text("Unpaired", timeout=WAIT_MS)
        expect(row(page, added_uuid).get_by_test_id("device-unpaired")).to_be_visible()
        device_token = paired.json()["access_token"]
        voided = httpx.get(
            f"{stack.api_url}/rest/v1/devices?select=uuid",
            headers={"apikey": team.world.anon_key, "authorization": f"Bearer {device_token}"},
            timeout=10,
        )
        assert voided.status_code == 401, voided.text

        # Remove it, with a confirm step (cancel first: nothing happens).
        page.get_by_test_id("device-remove").click()
        page.get_by_test_id("confirm-no").click()
        expect(page.get_by_test_id("device-confirm")).to_have_count(0)
        assert sql(stack, "select 1 from public.devices where uuid = %s", (added_uuid,))
        page.get_by_test_id("device-remove").click()
        expect(page.get_by_test_id("device-confirm")).to_contain_text(name)
        page.get_by_test_id("confirm-yes").click()
        expect(row(page, added_uuid)).to_have_count(0, timeout=WAIT_MS)
        expect(page.get_by_test_id("device-detail")).to_have_count(0)
        assert sql(stack, "select 1 from public.devices where uuid = %s", (added_uuid,)) == []
        # Chromium logs the refused request itself (the 409 above); nothing else may be on the console.
        refused = [e for e in watched.errors if "409 (Conflict)" in e and "/rpc/create_device" in e]
        assert len(refused) == 1
        assert [e for e in watched.errors if e not in refused] == []
    finally:
        context.close()


def test_a_viewer_sees_no_edit_control_and_a_forced_rename_is_refused(
    stack: Settings, team: Team, device: dict[str, Any]
) -> None:
    context = team.context("viewer")
    try:
        watched = team.open(context, f"/devices?uuid={device['uuid']}")
        page = watched.page
        expect(page.get_by_test_id("device-detail")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("detail-uuid")).to_have_text(device["uuid"])
        for control in ("device-add", "device-controls", "rename-input", "vpn-on", "device-remove"):
            expect(page.get_by_test_id(control)).to_have_count(0)
        before = sql(stack, "select name from public.devices where uuid = %s", (device["uuid"],))[0][0]
        with team.rest("viewer") as viewer:
            patched = viewer.patch(
                f"/devices?uuid=eq.{device['uuid']}",
                json={"name": "viewer-was-here"},
                headers={"prefer": "return=representation"},
            )
            assert patched.status_code in (401, 403), patched.text
            called = viewer.post(
                "/rpc/rename_device", json={"device_uuid": device["uuid"], "name": "viewer-rpc"}
            )
            assert called.status_code in (401, 403), called.text
        after = sql(stack, "select name from public.devices where uuid = %s", (device["uuid"],))[0][0]
        assert after == before
        expect(page.get_by_test_id("device-detail-name")).to_have_text(before)
        # Reading needs no mouse: a focused row opens with Enter.
        page.get_by_test_id("device-close").click()
        expect(page.get_by_test_id("device-detail")).to_have_count(0)
        row(page, device["uuid"]).focus()
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("detail-uuid")).to_have_text(device["uuid"], timeout=WAIT_MS)
        assert f"uuid={device['uuid']}" in page.url
        assert watched.errors == []
    finally:
        context.close()
