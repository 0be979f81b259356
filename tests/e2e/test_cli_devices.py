"""`busymate devices`, `token`, `login` and `logout` through the real command line, against the test stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from busymate.settings import Settings
from busymate.stack.api import settings_env
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
