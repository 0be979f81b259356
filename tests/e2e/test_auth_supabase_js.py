"""/auth/v1 driven by the unchanged npm client @supabase/supabase-js 2.109 (Node 20, the `ws` transport).

The checks live in tests/e2e/js/auth.mjs. Node runs once per module and prints one JSON object with a
result per check; each check is one test here, so a failure is reported by name with the HTTP exchanges
(and WebSocket frames) behind it. The expectations are GoTrue's: what the clients send and parse, and what
GoTrue answers (/tmp/research/gotrue.md).

Before Node starts, this module creates one user through the admin API and makes it a member of workspace
w1 in SQL, for the check that uses one session on /auth/v1, /rest/v1 and /realtime/v1. Every user the run
creates is named js-<tag>-<name>@example.com: the script deletes its own through the admin API, this module
deletes the member it made, and test_no_user_is_left_behind fails if any was left (they are removed anyway,
since other suites count rows).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from busymate.settings import Settings
from tests.e2e.test_rest_supabase_js import run_node
from tests.world import World

# Every check auth.mjs runs, in its order; test_the_script_ran_every_check keeps the two lists equal.
CHECKS = (
    "sign_up_es256_session_and_get_claims_via_jwks",
    "get_user_with_a_forged_token_is_401_bad_jwt",
    "sign_in_with_password_and_invalid_credentials",
    "refresh_session_rotates_and_fires_token_refreshed",
    "get_user_update_user_metadata_and_password",
    "password_change_ends_the_other_sessions",
    "sign_out_local_keeps_other_session_global_ends_all",
    "admin_create_list_get_update_delete",
    "admin_calls_with_the_anon_key_or_a_user_token_are_not_admin",
    "one_token_everywhere",
    "deletes_every_created_user",
)


def admin_headers(world: World) -> dict[str, str]:
    """What supabase-js's admin client sends: the service key as apikey and as the bearer token."""
    return {"apikey": world.service_key, "authorization": f"Bearer {world.service_key}"}


def create_member(stack: Settings, world: World, tag: str) -> dict[str, str]:
    """A confirmed user made through the admin API, then a member of w1 with the 'member' role (in SQL)."""
    email = f"js-{tag}-member@example.com"
    password = f"pw-{uuid.uuid4()}"
    response = httpx.post(
        f"{stack.auth_url}/admin/users",
        headers=admin_headers(world),
        json={"email": email, "password": password, "email_confirm": True},
        timeout=30,
    )
    assert response.status_code == 200, f"POST /admin/users: {response.status_code} {response.text}"
    user_id = str(response.json()["id"])
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id) values (%s, %s)",
            (world.ids["w1"], user_id),
        )
        conn.execute("update public.profiles set role = 'member' where id = %s", (user_id,))
    return {"id": user_id, "email": email, "password": password}


def users_tagged(stack: Settings, tag: str) -> list[tuple[str, str]]:
    """(id, email) of the users whose email carries this run's tag."""
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        rows = conn.execute(
            "select id::text, email from auth.users where email like %s order by email", (f"js-{tag}-%",)
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def delete_users(stack: Settings, world: World, user_ids: list[str]) -> list[str]:
    """Delete users through the admin API; what was refused, as text."""
    refused = []
    for user_id in user_ids:
        response = httpx.request(
            "DELETE",
            f"{stack.auth_url}/admin/users/{user_id}",
            headers=admin_headers(world),
            json={"should_soft_delete": False},
            timeout=30,
        )
        if response.status_code != 200:
            refused.append(f"DELETE /admin/users/{user_id}: {response.status_code} {response.text}")
    return refused


@pytest.fixture(scope="module")
def js_results(stack: Settings, world: World) -> dict[str, Any]:
    """Run auth.mjs once against the started stack; its parsed output, plus what it left behind."""
    tag = uuid.uuid4().hex[:8]
    member = create_member(stack, world, tag)
    output: dict[str, Any] = {}
    try:
        extra = {"TAG": tag, "AUTH_URL": stack.auth_url, "MEMBER": json.dumps(member)}
        output = run_node("auth.mjs", stack, world, extra, 240)
    finally:
        refused = delete_users(stack, world, [member["id"]])
        left = users_tagged(stack, tag)
        output["left_behind"] = [email for _, email in left]
        output["member_delete_refused"] = refused
        # Whatever the script could not delete still goes, so the other suites' counts hold.
        if left:
            with psycopg.connect(stack.db_url(), autocommit=True) as conn:
                conn.execute("delete from auth.users where id = any(%s::uuid[])", ([i for i, _ in left],))
    return output


def test_the_script_ran_every_check(js_results: dict[str, Any]) -> None:
    assert tuple(js_results["checks"]) == CHECKS


@pytest.mark.parametrize("name", CHECKS)
def test_supabase_js_auth(js_results: dict[str, Any], name: str) -> None:
    result = js_results["checks"].get(name)
    if result is None:
        pytest.fail(f"auth.mjs reported no result for {name}")
    if not result["ok"]:
        report = json.dumps(
            {"failure": result["details"], "exchanges": result.get("exchanges", [])}, indent=2
        )
        pytest.fail(
            f"supabase-js {js_results['supabase_js']} on node {js_results['node']}: {name} failed\n{report}",
            pytrace=False,
        )


def test_no_user_is_left_behind(js_results: dict[str, Any]) -> None:
    assert js_results["member_delete_refused"] == []
    assert js_results["left_behind"] == []
