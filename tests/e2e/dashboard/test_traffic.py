"""The traffic view in real Chromium, as the team's member: a request sent with curl through the capture
device's proxy port appears in the table without a reload (the time from curl's end to the row is printed,
never asserted), with its content type filled in although the firehose does not carry it; a filter (host and
status class) narrows the table to the matching rows; the filter and its tab (renamed) survive a reload, saved
as the member's workspace_tabs row; a second tab has its own filter and the first keeps its own across
switches; a tag whose pattern matches a host shows as a chip of its color, and the tag filter uses the same
matching; at phone width the filter fields fold behind a "Filters" toggle and the page does not scroll
sideways. Screenshots at both sizes (`shoot`), and no console errors.

The page is driven through the data-testid hooks of docs/dashboard.md."""

from __future__ import annotations

import time
import uuid
from typing import Any

from playwright.sync_api import Page, expect

from busymate.settings import Settings
from tests.e2e.dashboard.conftest import PHONE, WAIT_MS, Capture, Team, curl, ingest, shoot
from tests.e2e.proxy_helpers import device_token, rpc, sql
from tests.world import World


def _rows(page: Page) -> Any:
    return page.get_by_test_id("traffic-row")


def _row(page: Page, entry_id: str) -> Any:
    return page.locator(f'[data-testid="traffic-row"][data-entry-id="{entry_id}"]')


def _saved(page: Page) -> None:
    expect(page.get_by_test_id("tabs-save-state")).to_have_text("saved", timeout=WAIT_MS)


def test_live_rows_filters_tabs_and_tags(
    stack: Settings, world: World, team: Team, capture: Capture, screens: Any
) -> None:
    mark = uuid.uuid4().hex[:10]
    tag_name = f"tagged-{mark}"
    rpc(
        stack,
        team.people["member"].token,
        "upsert_tag",
        {"name": tag_name, "color": "#e11d48", "match_patterns": [f"*.tagged-{mark}.example"]},
    )
    token = device_token(stack, capture.device)
    context = team.context("member")
    try:
        watched = team.open(context, "/")
        page = watched.page
        expect(page.get_by_test_id("connection-state")).to_have_text("live", timeout=WAIT_MS)
        expect(page.get_by_test_id("tabs-save-state")).to_have_text("saved", timeout=WAIT_MS)

        # curl through the device's port: the row arrives live; the page notes when (Date.now()) it appears
        page.evaluate(
            """mark => {
                window.__seenAt = null;
                const seen = () => [...document.querySelectorAll('[data-testid="traffic-row"]')]
                    .some(r => r.textContent.includes(mark));
                const observer = new MutationObserver(() => {
                    if (window.__seenAt != null || !seen()) return;
                    window.__seenAt = Date.now();
                    observer.disconnect();
                });
                observer.observe(document.body, {subtree: true, childList: true, characterData: true});
            }""",
            mark,
        )
        done = curl(capture, capture.port, f"/json?live={mark}")
        curl_end = time.time()
        assert done.returncode == 0, done.stderr
        live_row = _rows(page).filter(has_text=f"live={mark}")
        expect(live_row).to_have_count(1, timeout=WAIT_MS)
        seen_at = page.evaluate("() => window.__seenAt")
        assert seen_at is not None
        print(f"curl end -> row in the table: {seen_at - curl_end * 1000:.0f} ms")
        # the firehose carries no content type: the Type cell is filled from REST
        expect(live_row.get_by_test_id("cell-type")).to_have_text("json", timeout=WAIT_MS)

        # a few entries of the device: the filter keeps host a.<mark> with a 4xx status only
        host_a, host_b, host_t = f"a.{mark}.example", f"b.{mark}.example", f"api.tagged-{mark}.example"
        ok_a = ingest(stack, world, token, host=host_a, status=200, method="GET")
        missing_a = ingest(stack, world, token, host=host_a, status=404, method="GET")
        missing_b = ingest(stack, world, token, host=host_b, status=404, method="GET")
        tagged = ingest(stack, world, token, host=host_t, status=200, method="GET")
        for entry in (ok_a, missing_a, missing_b, tagged):
            expect(_row(page, entry)).to_have_count(1, timeout=WAIT_MS)

        first_tab = page.get_by_test_id("tab").and_(page.locator('[data-active="true"]'))
        page.get_by_test_id("filter-host").fill(host_a)
        page.get_by_test_id("filter-status-4xx").click()
        expect(_rows(page)).to_have_count(1, timeout=WAIT_MS)
        expect(_row(page, missing_a)).to_have_count(1)
        expect(page.get_by_test_id("shown-count")).to_have_text("1")
        page.get_by_test_id("tab-rename").click()
        page.get_by_test_id("tab-name-input").fill(f"Errors {mark}")
        page.get_by_test_id("tab-name-input").press("Enter")
        expect(first_tab).to_have_attribute("data-tab-name", f"Errors {mark}")
        _saved(page)
        [(saved_filter,)] = sql(
            stack,
            "select filter from public.workspace_tabs where user_id = %s and name = %s",
            (team.people["member"].id, f"Errors {mark}"),
        )
        assert saved_filter["host"] == host_a, saved_filter
        assert saved_filter["status"] == ["4xx"], saved_filter

        # a reload: the same tab, the same filter, the same rows
        page.reload()
        expect(page.get_by_test_id("connection-state")).to_have_text("live", timeout=WAIT_MS)
        active = page.locator('[data-testid="tab"][data-active="true"]')
        expect(active).to_have_attribute("data-tab-name", f"Errors {mark}", timeout=WAIT_MS)
        expect(page.get_by_test_id("filter-host")).to_have_value(host_a)
        expect(page.get_by_test_id("filter-status-4xx")).to_have_attribute("aria-pressed", "true")
        expect(_row(page, missing_a)).to_have_count(1, timeout=WAIT_MS)
        expect(_rows(page)).to_have_count(1)

        # the row deleted behind the page's back (as another browser closing the tab would): the next change
        # writes the tab again
        sql(stack, "delete from public.workspace_tabs where user_id = %s", (team.people["member"].id,))
        sql(stack, "delete from public.tags where name = %s", (tag_name,))
        page.get_by_test_id("filter-status-5xx").click()
        _saved(page)
        page.get_by_test_id("filter-status-5xx").click()
        _saved(page)
        mine = "select name, filter from public.workspace_tabs where user_id = %s"
        [(name, again)] = sql(stack, mine, (team.people["member"].id,))
        assert name == f"Errors {mark}"
        assert again["status"] == ["4xx"], again

        # a second tab: its own (empty) filter, then the tag filter; the first keeps its filter
        page.get_by_test_id("tab-add").click()
        expect(active).not_to_have_attribute("data-tab-name", f"Errors {mark}", timeout=WAIT_MS)
        expect(page.get_by_test_id("filter-host")).to_have_value("")
        expect(_row(page, tagged)).to_have_count(1, timeout=WAIT_MS)
        chip = _row(page, tagged).get_by_test_id("tag-chip")
        expect(chip).to_have_text(tag_name)
        expect(chip).to_have_css("background-color", "rgb(225, 29, 72)")
        expect(_row(page, ok_a).get_by_test_id("tag-chip")).to_have_count(0)
        page.get_by_test_id("filter-tag").select_option(tag_name)
        expect(_rows(page)).to_have_count(1, timeout=WAIT_MS)
        expect(_row(page, tagged)).to_have_count(1)
        _saved(page)

        first = page.locator(f'[data-testid="tab"][data-tab-name="Errors {mark}"]')
        first.get_by_test_id("tab-select").click()
        expect(page.get_by_test_id("filter-host")).to_have_value(host_a)
        expect(page.get_by_test_id("filter-tag")).to_have_value("")
        expect(_rows(page)).to_have_count(1, timeout=WAIT_MS)
        expect(_row(page, missing_a)).to_have_count(1)
        second = page.locator('[data-testid="tab"]').last
        second.get_by_test_id("tab-select").click()
        expect(page.get_by_test_id("filter-tag")).to_have_value(tag_name)
        expect(_row(page, tagged)).to_have_count(1, timeout=WAIT_MS)
        _saved(page)
        shoot(page, screens, "traffic")
        page.emulate_media(color_scheme="dark")
        shoot(page, screens, "traffic-dark")
        page.emulate_media(color_scheme="light")

        # the phone: the fields fold behind "Filters", nothing scrolls sideways
        page.set_viewport_size(PHONE)
        toggle = page.get_by_test_id("filters-toggle")
        expect(toggle).to_be_visible()
        expect(page.get_by_test_id("filter-host")).to_be_hidden()
        toggle.click()
        expect(page.get_by_test_id("filter-host")).to_be_visible()
        overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, overflow
        shoot(page, screens, "traffic-filters-open")

        # closing the second tab leaves the first, with its filter
        page.get_by_test_id("tab-close").last.click()
        expect(active).to_have_attribute("data-tab-name", f"Errors {mark}", timeout=WAIT_MS)
        expect(page.get_by_test_id("filter-host")).to_have_value(host_a)
        _saved(page)
        # and closing the last one deletes its row: the member is back to an unfiltered "All traffic"
        page.get_by_test_id("tab-close").click()
        expect(active).to_have_attribute("data-tab-name", "All traffic", timeout=WAIT_MS)
        expect(page.get_by_test_id("filter-host")).to_have_value("")
        _saved(page)
        left = sql(
            stack, "select name from public.workspace_tabs where user_id = %s", (team.people["member"].id,)
        )
        assert left == []
        assert watched.errors == []
    finally:
        context.close()
        # the member's tabs are theirs for the whole session: leave none behind for the other suites
        sql(stack, "delete from public.workspace_tabs where user_id = %s", (team.people["member"].id,))
        sql(stack, "delete from public.tags where name = %s", (tag_name,))
