"""/rest/v1 driven by the unchanged npm client @supabase/supabase-js on Node, on the project's real schema.

The checks live in tests/e2e/js/rest.mjs. Node runs once per module and prints one JSON object with a result
per check; each check is one test here, so a failure is reported by name with the HTTP exchanges behind it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from busymate.settings import Settings
from tests.world import World

JS_DIR = Path(__file__).resolve().parent / "js"

# Every check rest.mjs runs, in its order; test_the_script_ran_every_check keeps the two lists equal.
CHECKS = (
    "member_sees_only_own_workspace_devices",
    "select_rename_embed_eq_in_order_limit_count",
    "limit_with_exact_count_is_partial",
    "single_returns_an_object",
    "single_on_a_row_rls_hides_is_PGRST116",
    "maybe_single_on_a_row_rls_hides_is_null",
    "or_filter",
    "not_filter",
    "range_0_0",
    "csv_returns_text_with_a_header",
    "head_with_exact_count",
    "insert_without_select_is_minimal",
    "insert_with_select_returns_the_rows",
    "insert_single_with_select_single",
    "update_with_select",
    "delete_with_select",
    "upsert_on_conflict_name",
    "device_ingests_entries_through_rpc",
    "device_reading_entries_is_42501",
    "anon_reading_devices_is_42501_401",
    "expired_user_token_is_PGRST303_401",
    "whoami_as_member",
    "bad_select_is_PGRST100_400",
    "in_quotes_values_with_reserved_chars",
    "more_filter_operators",
    "insert_with_count_and_select",
    "embedded_order_and_limit",
    "strip_nulls",
    "maybe_single_on_many_rows_is_PGRST116",
    "range_past_the_end_is_PGRST103_416",
    "update_single_on_many_rows_rolls_back",
    "rpc_get_whoami",
    "device_whoami",
    "unknown_function_is_PGRST202_404",
    "unknown_table_is_PGRST205_404",
    "rollback_preference",
    "max_affected_is_PGRST124",
    "explain_is_PGRST107_406",
)


def ensure_node_modules(npm: str | None) -> None:
    """`npm ci` when node_modules is missing or older than package-lock.json."""
    lock = JS_DIR / "package-lock.json"
    marker = JS_DIR / "node_modules" / ".package-lock.json"  # npm rewrites it on every install
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    if npm is None:
        pytest.fail("node is installed but npm is not: cannot install tests/e2e/js/node_modules")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def run_node(
    script: str, stack: Settings, world: World, extra: dict[str, str], timeout: int
) -> dict[str, Any]:
    """Run one of the js/ scripts against the started stack; its last stdout line, parsed."""
    node = shutil.which("node")
    # Node 20 and npm are part of what the project needs (DEVELOPERS.md): a machine without them fails here,
    # it does not skip the only check of supabase-js.
    assert node is not None, "node is not installed: install Node 20 and npm to run the supabase-js checks"
    ensure_node_modules(shutil.which("npm"))
    env = {
        **os.environ,
        "API_URL": stack.api_url,
        "ANON_KEY": world.anon_key,
        "SERVICE_KEY": world.service_key,
        "JWT_SECRET": stack.jwt_secret,
        "WORLD": json.dumps({"ids": world.ids, "tokens": world.tokens}),
        **extra,
    }
    env.pop("ONLY", None)
    done = subprocess.run(
        [node, script], cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        pytest.fail(
            f"node {script} failed ({done.returncode}):\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    output: dict[str, Any] = json.loads(lines[-1])
    return output


@pytest.fixture(scope="module")
def js_results(stack: Settings, world: World) -> dict[str, Any]:
    """Run rest.mjs once against the started stack and return its parsed output."""
    return run_node("rest.mjs", stack, world, {}, 180)


def test_the_script_ran_every_check(js_results: dict[str, Any]) -> None:
    assert tuple(js_results["checks"]) == CHECKS


@pytest.mark.parametrize("name", CHECKS)
def test_supabase_js(js_results: dict[str, Any], name: str) -> None:
    result = js_results["checks"].get(name)
    if result is None:
        pytest.fail(f"rest.mjs reported no result for {name}")
    if not result["ok"]:
        report = json.dumps(
            {"failure": result["details"], "exchanges": result.get("exchanges", [])}, indent=2
        )
        pytest.fail(
            f"supabase-js {js_results['supabase_js']} on node {js_results['node']}: {name} failed\n{report}",
            pytrace=False,
        )
