"""`busymate devices`, `token`, `login` and `logout` through the real command line, against the test stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from busymate.cli.devices import ago
from busymate.settings import Settings
from busymate.stack.api_process import settings_env
from tests.conftest import second_api_server
from tests.e2e.proxy_helpers import free_port_block
from tests.world import World


def cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), "COLUMNS": "200"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "busymate"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"busymate {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def rest_devices(settings: Settings, world: World, token: str) -> httpx.Response:
    return httpx.get(
        f"{settings.api_url}/rest/v1/devices?select=uuid,name",
        headers={"apikey": world.anon_key, "authorization": f"Bearer {token}"},
    )


@pytest.fixture(scope="module")
def workspace(stack: Settings, world: World) -> str:
    slug = "w1-e2e"
    assert world.ids["w1"]
    return slug


def test_add_pair_list_rename_unpair_remove_a_device(stack: Settings, world: World, workspace: str) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    added = json.loads(
        cli(stack, "devices", "add", name, "--source", "proxy", "--workspace", workspace, "--json").stdout
    )
    device = added["device"]
    assert device["name"] == name
    assert device["proxy_port"] in range(9100, 9200)
    code = added["activation"]["code"]
    paired = httpx.post(f"{stack.api_url}/functions/v1/pair", json={"code": code})
    assert paired.status_code == 200, paired.text
    token = paired.json()["access_token"]
    assert [d["name"] for d in rest_devices(stack, world, token).json()] == [name]
    listed = json.loads(cli(stack, "devices", "list", "--json").stdout)
    mine = [d for d in listed if d["uuid"] == device["uuid"]]
    assert mine
    assert mine[0]["paired"]
    assert all("credential_id" not in d for d in listed)  # never printed
    # A device token minted by the CLI works like the paired one.
    minted = cli(stack, "token", "--device", name).stdout.strip()
    assert rest_devices(stack, world, minted).status_code == 200
    cli(stack, "devices", "rename", name, f"{name}-renamed")
    cli(stack, "devices", "unpair", f"{name}-renamed")
    assert rest_devices(stack, world, token).status_code == 401
    assert rest_devices(stack, world, minted).status_code == 401
    refused = cli(stack, "token", "--device", f"{name}-renamed", check=False)
    assert refused.returncode != 0
    assert "unpaired" in refused.stderr
    cli(stack, "devices", "remove", f"{name}-renamed")
    missing = cli(stack, "devices", "unpair", f"{name}-renamed", check=False)
    assert missing.returncode != 0
    assert "no device" in missing.stderr


def test_tokens_and_login(stack: Settings, world: World, tmp_path: Path) -> None:
    assert cli(stack, "token", "--anon").stdout.strip() == world.anon_key
    assert cli(stack, "token", "--service").stdout.strip() == world.service_key
    admin = cli(stack, "token", "--admin").stdout.strip()
    me = httpx.get(
        f"{stack.auth_url}/user", headers={"apikey": world.anon_key, "authorization": f"Bearer {admin}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == "admin@busymate.local"
    state = Path(stack.state_dir)
    assert (state / "local-admin.json").stat().st_mode & 0o777 == 0o600
    # A user of our own: login stores the session (0600), and the CLI then acts as that user.
    email = f"cli-{uuid.uuid4().hex[:6]}@example.com"
    created = httpx.post(
        f"{stack.auth_url}/admin/users",
        json={"email": email, "password": "cli-password-1", "email_confirm": True},
        headers={"apikey": world.service_key, "authorization": f"Bearer {world.service_key}"},
    ).json()
    try:
        wrong = cli(stack, "login", "--email", email, "--password", "nope-nope", check=False)
        assert wrong.returncode != 0
        assert "Invalid login credentials" in wrong.stderr
        cli(stack, "login", "--email", email, "--password", "cli-password-1")
        assert (state / "session.json").stat().st_mode & 0o777 == 0o600
        mine = cli(stack, "token").stdout.strip()
        claims = httpx.get(
            f"{stack.auth_url}/user", headers={"apikey": world.anon_key, "authorization": f"Bearer {mine}"}
        ).json()
        assert claims["email"] == email
        # A new viewer sees no workspace and no device: the CLI says so and changes nothing.
        denied = cli(stack, "devices", "add", "nope", "--workspace", "w1-e2e", check=False)
        assert denied.returncode != 0
        assert "no workspace" in denied.stderr
        assert json.loads(cli(stack, "devices", "list", "--json").stdout) == []
        cli(stack, "logout")
        assert not (state / "session.json").exists()
    finally:
        httpx.delete(
            f"{stack.auth_url}/admin/users/{created['id']}",
            headers={"apikey": world.service_key, "authorization": f"Bearer {world.service_key}"},
        )


def refused(settings: Settings, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail as a user sees it: exit 1, one message on stderr, no traceback; the
    message."""
    done = cli_env(settings, env or {}, *args)
    assert done.returncode == 1, f"busymate {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.startswith("error: "), done.stderr
    return " ".join(done.stderr.split())  # rich wraps nothing (soft_wrap), but be sure


def cli_env(settings: Settings, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "busymate"), *args],
        env={**os.environ, **settings_env(settings), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def pool_env(pool: range) -> dict[str, str]:
    return {"BUSYMATE_PROXY_PORTS": f"{pool.start}-{pool.stop - 1}"}


def test_devices_draw_from_the_configured_pool_and_list_marks_ports_outside_it(
    stack: Settings, workspace: str
) -> None:
    pool = free_port_block(3)
    name = f"pool-{uuid.uuid4().hex[:6]}"
    added = cli_env(stack, pool_env(pool), "devices", "add", name, "--workspace", workspace, "--json")
    assert added.returncode == 0, added.stderr
    port = json.loads(added.stdout)["device"]["proxy_port"]
    assert port in pool
    said = refused(stack, "devices", "add", f"{name}-80", "--port", "80", env=pool_env(pool))
    assert f"port 80 is outside the proxy's pool {pool.start}-{pool.stop - 1}" in said
    assert "BUSYMATE_PROXY_PORTS" in said
    taken = refused(stack, "devices", "add", f"{name}-2", "--port", str(port), env=pool_env(pool))
    assert f"port {port} is already the port of device {name!r}" in taken
    # Under the default pool the same device's port is one the proxy never opens: the list says so.
    listed = cli_env(stack, {}, "devices", "list")
    row = next(line for line in listed.stdout.splitlines() if name in line)
    assert f"{port} (outside the pool)" in row
    assert "outside the pool" in listed.stderr
    as_json = json.loads(cli_env(stack, {}, "devices", "list", "--json").stdout)
    assert next(d for d in as_json if d["name"] == name)["port_in_pool"] is False
    inside = json.loads(cli_env(stack, pool_env(pool), "devices", "list", "--json").stdout)
    assert next(d for d in inside if d["name"] == name)["port_in_pool"] is True
    cli(stack, "devices", "remove", name)


def test_bad_device_input_is_refused_with_what_to_do(stack: Settings, workspace: str) -> None:
    name = f"Pixel 8 {uuid.uuid4().hex[:6]}"
    banana = refused(stack, "devices", "add", name, "--allow", "banana", "--workspace", workspace)
    assert "--allow 'banana' is not an address or network" in banana
    assert "192.168.1.0/24" in banana
    assert "invalid input syntax" not in banana
    masked = refused(stack, "devices", "add", name, "--allow", "10.0.0.1/8", "--workspace", workspace)
    assert "did you mean 10.0.0.0/8" in masked
    assert "invalid cidr value" not in masked
    long = refused(stack, "devices", "add", "x" * 101, "--workspace", workspace)
    assert "1 to 100 characters" in long
    ios = refused(
        stack, "devices", "add", name, "--source", "ios", "--port", "9150", "--workspace", workspace
    )
    assert "only proxy devices have a port" in ios
    # Nothing of the above was made.
    assert not [d for d in json.loads(cli(stack, "devices", "list", "--json").stdout) if d["name"] == name]


def test_a_name_is_one_device_per_workspace_and_an_ambiguous_name_lists_the_uuids(
    stack: Settings, world: World, workspace: str
) -> None:
    name = f"Pixel 8 {uuid.uuid4().hex[:6]}"
    first = json.loads(cli(stack, "devices", "add", name, "--workspace", workspace, "--json").stdout)[
        "device"
    ]
    same = refused(stack, "devices", "add", f"  {name} ", "--workspace", workspace)
    assert f"workspace {workspace} already has a device named {name!r} ({first['uuid']})" in same
    assert "duplicate key" not in same
    other = json.loads(cli(stack, "devices", "add", f"{name}-b", "--workspace", workspace, "--json").stdout)
    renamed = refused(stack, "devices", "rename", other["device"]["uuid"], name)
    assert "already has a device named" in renamed
    # Another workspace may have its own "Pixel 8": then the name alone is ambiguous.
    second = json.loads(cli(stack, "devices", "add", name, "--workspace", "w2-e2e", "--json").stdout)[
        "device"
    ]
    ambiguous = refused(stack, "devices", "remove", name)
    assert f"2 devices are named {name!r}" in ambiguous
    assert first["uuid"] in ambiguous
    assert second["uuid"] in ambiguous
    assert "workspace w2-e2e" in ambiguous
    assert "uuid" in ambiguous
    cli(stack, "devices", "remove", second["uuid"])
    cli(stack, "devices", "remove", name)  # one left: the name is enough again
    cli(stack, "devices", "remove", other["device"]["uuid"])
    assert world.ids["w1"]


def test_more_commands_than_the_sign_in_limit_sign_in_once(stack: Settings) -> None:
    # Before: every command signed in, so 31 commands in 5 minutes hit GoTrue's default of 30. The same with a
    # limit of 5 and 12 commands, at a fifth of the time (each command is a new Python process).
    with second_api_server(stack, "signin-limit", auth_rate_limit=5) as (settings, _):
        for i in range(12):
            args = ("token", "--admin") if i % 2 else ("devices", "list", "--json")
            done = cli(settings, *args, check=False)
            assert done.returncode == 0, f"command {i + 1}: busymate {' '.join(args)}\n{done.stderr}"
        kept = json.loads((settings.state_dir / "local-admin-session.json").read_text())
        assert (settings.state_dir / "local-admin-session.json").stat().st_mode & 0o777 == 0o600
        assert kept["email"] == "admin@busymate.local"


def test_list_shows_when_a_device_was_last_seen(stack: Settings, world: World) -> None:
    before = next(
        d for d in json.loads(cli(stack, "devices", "list", "--json").stdout) if d["uuid"] == world.ids["d1"]
    )
    entry = {
        "id": str(uuid.uuid4()),
        "captured_at": datetime.now(UTC).isoformat(),
        "method": "GET",
        "scheme": "https",
        "host": "seen.test",
        "port": 443,
        "path": "/",
        "status": 200,
    }
    answer = httpx.post(
        f"{stack.api_url}/rest/v1/rpc/ingest_entries",
        json={"batch": [entry]},
        headers={"apikey": world.anon_key, "authorization": f"Bearer {world.tokens['d1']}"},
    )
    assert answer.status_code == 200, answer.text
    listed = cli(stack, "devices", "list").stdout
    row = next(line for line in listed.splitlines() if "d1-e2e" in line)
    assert "never" not in row, (before, row)
    assert re.search(r"\d+ (s|min) ago", row), row


def test_ago_reads_like_a_person() -> None:
    now = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    assert ago(None, now) == "never"
    assert ago("2026-12-03T11:59:48+00:00", now) == "12 s ago"
    assert ago("2026-12-03T11:55:00Z", now) == "5 min ago"
    assert ago("2026-12-03T09:00:00+00:00", now) == "3 h ago"
    assert ago("2026-12-01T12:00:00+00:00", now) == "2 days ago"
    assert ago("2026-12-02T11:00:00+00:00", now) == "1 day ago"


def test_the_kept_admin_session_is_refreshed_and_replaced_when_it_has_ended(stack: Settings) -> None:
    with second_api_server(stack, "refresh", auth_rate_limit=30) as (settings, _):
        path = settings.state_dir / "local-admin-session.json"
        first = cli(settings, "token", "--admin").stdout.strip()
        kept = json.loads(path.read_text())
        # About to expire: the next command refreshes it (a new token, a rotated refresh token).
        path.write_text(json.dumps({**kept, "expires_at": 0}))
        refreshed = cli(settings, "token", "--admin").stdout.strip()
        after = json.loads(path.read_text())
        assert refreshed != first
        assert after["refresh_token"] != kept["refresh_token"]
        assert after["expires_at"] > 0
        # Ended (signed out elsewhere, a reset database): the CLI signs in again rather than failing.
        path.write_text(json.dumps({**after, "expires_at": 0, "refresh_token": "ended"}))
        again = cli(settings, "devices", "list", "--json")
        assert again.returncode == 0
        assert json.loads(path.read_text())["refresh_token"] != "ended"
