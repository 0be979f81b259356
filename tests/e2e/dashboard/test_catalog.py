"""The catalog pages of the dashboard in real Chromium: /services (service groups with their domains and their
BusyBro agents, one primary plus ordered extras) and /tags (name, color, match patterns).

- As the team's member (services:edit, tags:edit): a service group with two domains, a primary agent and two
  extras reordered with the up button is created in the UI and stored as typed (domains, primary, positions);
  a tag with a color and a pattern is created and stored; a group and a tag are deleted in the UI (a tag
  reached with the keyboard: down, Enter); another user's new group and tag appear live (the
  service_groups:all topic, postgres_changes on tags); a second tag with the same name shows the
  database's own refusal.
- As the admin (agents:edit): a BusyBro agent is created in the page's agents editor and stored.
- As the viewer: both pages open their deep links (`/services?id=`, `/tags?id=`) read-only with no edit
  control, the back button returns to the previous page, and inserts forced with the viewer's own token (the
  tables and the RPCs) are refused with nothing stored.

Names carry a random suffix: the database is shared with the other suites. Screenshots "services" and "tags"
are written at both sizes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from busymate.settings import Settings
from tests.e2e.dashboard.conftest import DESKTOP, PHONE, WAIT_MS, Team, Watched, shoot
from tests.e2e.proxy_helpers import sql

RETURN = {"prefer": "return=representation"}


@dataclass
class Catalog:
    """Rows the admin made through the API for this module: three agents, one group, one tag."""

    suffix: str
    agents: list[dict[str, str]]
    group: dict[str, object]
    tag: dict[str, object]


@pytest.fixture(scope="module")
def catalog(stack: Settings, team: Team) -> Iterator[Catalog]:
    suffix = uuid.uuid4().hex[:8]
    with team.rest("admin") as admin:
        made = admin.post(
            "/busybro_agents",
            json=[
                {"name": f"cat-{n}-{suffix}", "emoji": e, "instructions": f"The {n} lens."}
                for n, e in (("alpha", "🍔"), ("bravo", "🔐"), ("charlie", "⚡"))
            ],
            headers=RETURN,
        )
        assert made.status_code == 201, made.text
        agents = sorted(made.json(), key=lambda a: a["name"])
        group = admin.post(
            "/rpc/upsert_service_group",
            json={"name": f"cat-fixture-{suffix}", "domains": ["fixture.example.com"], "icon": "🧪"},
        )
        assert group.status_code == 200, group.text
        tag = admin.post(
            "/rpc/upsert_tag",
            json={
                "name": f"cat-fixture-{suffix}",
                "color": "#336699",
                "match_patterns": ["*.fixture.example"],
            },
        )
        assert tag.status_code == 200, tag.text
    try:
        yield Catalog(suffix, agents, group.json(), tag.json())
    finally:
        like = f"cat-%-{suffix}"
        for table in ("service_groups", "tags", "busybro_agents"):
            sql(stack, f"delete from public.{table} where name like %s", (like,))


def _only_refusals(watched: Watched, *statuses: int) -> list[str]:
    """Console errors other than the browser's own log line for a response the test provoked on purpose."""
    expected = [f"the server responded with a status of {s}" for s in statuses]
    return [e for e in watched.errors if not any(x in e for x in expected)]


def test_the_member_creates_a_group_with_ordered_agents_and_a_tag(
    team: Team, catalog: Catalog, screens: Path
) -> None:
    alpha, bravo, charlie = (a["id"] for a in catalog.agents)
    name = f"cat-group-{catalog.suffix}"
    context = team.context("member")
    try:
        watched = team.open(context, "/services")
        page = watched.page
        expect(page.get_by_test_id("page-services")).to_be_visible(timeout=WAIT_MS)
        page.get_by_test_id("service-new").click()
        page.get_by_test_id("service-name").fill(name)
        page.get_by_test_id("service-icon").fill("🍕")
        page.get_by_test_id("service-domain-input").fill("api.pizza.example")
        page.get_by_test_id("service-domain-input").press("Enter")
        page.get_by_test_id("service-domain-input").fill("*.cdn.pizza.example")
        page.get_by_test_id("service-domain-add").click()
        expect(page.get_by_test_id("service-domain-item")).to_have_count(2)
        page.get_by_test_id("service-primary").select_option(alpha)
        page.get_by_test_id("service-extra-add").select_option(bravo)
        page.get_by_test_id("service-extra-add").select_option(charlie)
        expect(page.get_by_test_id("service-extra")).to_have_count(2)
        page.get_by_test_id("service-extra-up").nth(1).click()  # charlie before bravo
        expect(page.get_by_test_id("service-extra").first).to_have_attribute("data-id", charlie)
        page.get_by_test_id("service-save").click()
        expect(page).to_have_url(re.compile(r"/services\?id=[0-9a-f-]{36}$"), timeout=WAIT_MS)
        group_id = page.url.rsplit("=", 1)[1]
        expect(page.get_by_test_id("service-saved")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("service-detail")).to_have_attribute("data-id", group_id, timeout=WAIT_MS)
        expect(page.locator(f'[data-testid="service-row"][data-id="{group_id}"]')).to_have_attribute(
            "aria-current", "true"
        )

        with team.rest("member") as member:
            stored = member.get("/service_groups", params={"id": f"eq.{group_id}"}).json()
            assert [(g["name"], g["icon"], g["domains"]) for g in stored] == [
                (name, "🍕", ["api.pizza.example", "*.cdn.pizza.example"])
            ]
            links = member.get(
                "/service_group_agents",
                params={"service_group_id": f"eq.{group_id}", "order": "position"},
            ).json()
            assert [(x["agent_id"], x["is_primary"], x["position"]) for x in links] == [
                (alpha, True, 0),
                (charlie, False, 1),
                (bravo, False, 2),
            ]
        # the reopened form shows what is stored: primary alpha, extras charlie then bravo
        expect(page.get_by_test_id("service-primary")).to_have_value(alpha)
        expect(page.get_by_test_id("service-extra")).to_have_count(2)
        expect(page.get_by_test_id("service-extra").last).to_have_attribute("data-id", bravo)
        expect(page.get_by_test_id("agent-new")).to_have_count(0)  # the member has no agents:edit
        expect(page.get_by_test_id("agent-row")).not_to_have_count(0)
        shoot(page, screens, "services")
        page.set_viewport_size(PHONE)  # the form fits a phone: no sideways scrolling
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.set_viewport_size(DESKTOP)
        # another user's new group arrives live (service_groups:all), without a reload
        with team.rest("admin") as admin:
            live = admin.post("/rpc/upsert_service_group", json={"name": f"cat-live-{catalog.suffix}"})
            assert live.status_code == 200, live.text
        expect(
            page.get_by_test_id("service-row-name").filter(has_text=f"cat-live-{catalog.suffix}")
        ).to_have_count(1, timeout=WAIT_MS)
        page.get_by_test_id("service-row").filter(has_text=f"cat-live-{catalog.suffix}").click()
        page.get_by_test_id("service-delete").click()
        page.get_by_test_id("service-delete-confirm").click()
        expect(page).to_have_url(re.compile(r"/services$"), timeout=WAIT_MS)
        expect(
            page.get_by_test_id("service-row").filter(has_text=f"cat-live-{catalog.suffix}")
        ).to_have_count(0)
        with team.rest("member") as member:
            gone = member.get("/service_groups", params={"name": f"eq.cat-live-{catalog.suffix}"}).json()
            assert gone == []

        page.get_by_test_id("nav-tags").click()
        expect(page.get_by_test_id("page-tags")).to_be_visible(timeout=WAIT_MS)
        tag_name = f"cat-tag-{catalog.suffix}"
        page.get_by_test_id("tag-new").click()
        page.get_by_test_id("tag-name").fill(tag_name)
        page.get_by_test_id("tag-color").fill("#ff8800")
        page.get_by_test_id("tag-pattern-input").fill("*.pizza.example")
        page.get_by_test_id("tag-pattern-input").press("Enter")
        page.get_by_test_id("tag-save").click()
        expect(page).to_have_url(re.compile(r"/tags\?id=[0-9a-f-]{36}$"), timeout=WAIT_MS)
        tag_id = page.url.rsplit("=", 1)[1]
        row = page.locator(f'[data-testid="tag-row"][data-id="{tag_id}"]')
        expect(row.get_by_test_id("tag-swatch")).to_have_attribute("data-color", "#ff8800", timeout=WAIT_MS)
        with team.rest("member") as member:
            stored = member.get("/tags", params={"id": f"eq.{tag_id}"}).json()
            assert [(t["name"], t["color"], t["match_patterns"]) for t in stored] == [
                (tag_name, "#ff8800", ["*.pizza.example"])
            ]
        shoot(page, screens, "tags")
        with team.rest("admin") as admin:  # tags follow postgres_changes: another user's tag arrives live
            live = admin.post("/rpc/upsert_tag", json={"name": f"cat-live-{catalog.suffix}"})
            assert live.status_code == 200, live.text
        expect(
            page.get_by_test_id("tag-row-name").filter(has_text=f"cat-live-{catalog.suffix}")
        ).to_have_count(1, timeout=WAIT_MS)

        # the same name again: the database refuses, and the page says what it said
        page.get_by_test_id("tag-new").click()
        page.get_by_test_id("tag-name").fill(tag_name)
        page.get_by_test_id("tag-save").click()
        expect(page.get_by_test_id("tag-error")).to_contain_text("unique", timeout=WAIT_MS)
        expect(page).to_have_url(re.compile(r"/tags\?id=new$"))
        page.get_by_test_id("tag-close").click()
        expect(page).to_have_url(re.compile(r"/tags$"), timeout=WAIT_MS)

        # the keyboard: down from the first row, Enter opens the second; then delete it
        rows = page.get_by_test_id("tag-row")
        second = rows.nth(1).get_attribute("data-id")
        rows.first.focus()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("tag-detail")).to_have_attribute("data-id", str(second), timeout=WAIT_MS)
        page.get_by_test_id("tag-delete").click()
        page.get_by_test_id("tag-delete-confirm").click()
        expect(page).to_have_url(re.compile(r"/tags$"), timeout=WAIT_MS)
        with team.rest("member") as member:
            assert member.get("/tags", params={"id": f"eq.{second}"}).json() == []
        assert _only_refusals(watched, 409) == []
    finally:
        context.close()


def test_the_admin_creates_an_agent_in_the_page(team: Team, catalog: Catalog) -> None:
    name = f"cat-delta-{catalog.suffix}"
    context = team.context("admin")
    try:
        watched = team.open(context, "/services")
        page = watched.page
        page.get_by_test_id("agent-new").click()
        page.get_by_test_id("agent-emoji").fill("🧭")
        page.get_by_test_id("agent-name").fill(name)
        page.get_by_test_id("agent-instructions").fill("Find the way through the delta API.")
        page.get_by_test_id("agent-save").click()
        expect(page.get_by_test_id("agent-row").filter(has_text=name)).to_have_count(1, timeout=WAIT_MS)
        with team.rest("admin") as admin:
            stored = admin.get("/busybro_agents", params={"name": f"eq.{name}"}).json()
        assert [(a["emoji"], a["instructions"]) for a in stored] == [
            ("🧭", "Find the way through the delta API.")
        ]
        assert watched.errors == []
    finally:
        context.close()


def test_the_viewer_reads_deep_links_edits_nothing_and_is_refused(team: Team, catalog: Catalog) -> None:
    group_id, tag_id = str(catalog.group["id"]), str(catalog.tag["id"])
    context = team.context("viewer")
    try:
        watched = team.open(context, f"/services?id={group_id}")
        page = watched.page
        detail = page.get_by_test_id("service-detail")
        expect(detail).to_have_attribute("data-id", group_id, timeout=WAIT_MS)
        expect(page.get_by_test_id("service-detail-name")).to_have_text(str(catalog.group["name"]))
        expect(detail.get_by_test_id("service-domains")).to_contain_text("fixture.example.com")
        hooks = ("service-new", "service-name", "service-save", "service-delete", "agent-new", "agent-edit")
        for hook in hooks:
            expect(page.get_by_test_id(hook)).to_have_count(0)

        page.get_by_test_id("nav-tags").click()
        expect(page.get_by_test_id("page-tags")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("tag-row").first).to_be_visible(timeout=WAIT_MS)
        page.go_back()  # back to the group it came from, still open
        expect(page).to_have_url(re.compile(rf"/services\?id={group_id}$"), timeout=WAIT_MS)
        expect(page.get_by_test_id("service-detail")).to_have_attribute("data-id", group_id, timeout=WAIT_MS)

        page.goto(f"{team.url}/tags?id={tag_id}")
        expect(page.get_by_test_id("tag-detail")).to_have_attribute("data-id", tag_id, timeout=WAIT_MS)
        expect(page.get_by_test_id("tag-detail-name")).to_have_text(str(catalog.tag["name"]))
        expect(page.get_by_test_id("tag-patterns")).to_contain_text("*.fixture.example")
        for hook in ("tag-new", "tag-name", "tag-color", "tag-save", "tag-delete"):
            expect(page.get_by_test_id(hook)).to_have_count(0)
        page.get_by_test_id("tag-close").click()  # a new history entry: back reopens the tag
        expect(page.get_by_test_id("tag-detail")).to_have_count(0, timeout=WAIT_MS)
        page.go_back()
        expect(page).to_have_url(re.compile(rf"/tags\?id={tag_id}$"), timeout=WAIT_MS)
        expect(page.get_by_test_id("tag-detail")).to_have_attribute("data-id", tag_id, timeout=WAIT_MS)
        assert watched.errors == []
    finally:
        context.close()

    forced = f"cat-forced-{catalog.suffix}"
    with team.rest("viewer") as viewer:
        refused = [
            viewer.post("/tags", json={"name": forced, "color": "#000000"}),
            viewer.post("/service_groups", json={"name": forced}),
            viewer.post("/rpc/upsert_tag", json={"name": forced}),
            viewer.post("/rpc/upsert_service_group", json={"name": forced}),
            viewer.post(
                "/rpc/set_service_group_agents",
                json={"service_group_id": group_id, "agent_ids": [catalog.agents[0]["id"]]},
            ),
            viewer.post("/busybro_agents", json={"name": forced}),
        ]
    assert all(r.status_code in (401, 403) for r in refused), [(r.status_code, r.text) for r in refused]
    assert sql(team.stack, "select count(*) from public.tags where name = %s", (forced,)) == [(0,)]
    assert sql(team.stack, "select count(*) from public.service_groups where name = %s", (forced,)) == [(0,)]
    assert sql(team.stack, "select count(*) from public.busybro_agents where name = %s", (forced,)) == [(0,)]
    linked = "select count(*) from public.service_group_agents where service_group_id = %s"
    assert sql(team.stack, linked, (group_id,)) == [(0,)]
