"""Running `busymate proxy run` for end-to-end tests: free port blocks, devices, the process and its log."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from busymate import tokens
from busymate.cli.session import local_admin
from busymate.settings import Settings
from busymate.stack.api_process import settings_env

WAIT = 15.0


def free_port_block(size: int) -> range:
    """`size` consecutive ports nobody listens on (tests never use fixed ports)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)  # noqa: S311 - not a secret
        block = range(base, base + size)
        if all(_free(p) for p in block):
            return block
    raise RuntimeError(f"no block of {size} free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))  # noqa: S104 - the proxy listens on every address by default
        except OSError:
            return False
    return True


def until[T](check: Callable[[], T | None], what: str, timeout: float = WAIT, every: float = 0.1) -> T:
    """Poll until `check` returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def rpc(settings: Settings, token: str, name: str, args: dict[str, Any]) -> Any:
    """POST /rest/v1/rpc/<name> under `token`; the JSON answer (asserting 2xx)."""
    response = httpx.post(
        f"{settings.api_url}/rest/v1/rpc/{name}",
        json=args,
        headers={"apikey": tokens.anon_key(settings.jwt_secret), "authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def sql(settings: Settings, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query as the database owner (what the tests read back)."""
    with psycopg.connect(settings.db_url(), autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def entries_with(settings: Settings, marker: str) -> list[dict[str, Any]]:
    """Stored entries whose query carries `marker` (each test request has its own)."""
    rows = sql(
        settings,
        "select to_jsonb(e) - 'request_body' - 'response_body', request_body, response_body "
        "from public.entries as e where e.query like %s order by e.captured_at",
        (f"%{marker}%",),
    )
    return [{**r[0], "request_body": r[1], "response_body": r[2]} for r in rows]


def spki_hash(ca_file: Path) -> str:
    """Chromium's --ignore-certificate-errors-spki-list value for a certificate (mitmproxy's leaf certificates
    share the CA's key)."""
    cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@dataclass
class ProxyProcess:
    """A running `busymate proxy run`."""

    settings: Settings
    proc: subprocess.Popen[bytes]
    log_file: Path
    pool: range

    @property
    def state(self) -> dict[str, Any]:
        """proxy.json: pid and open ports."""
        path = self.settings.state_dir / "proxy" / "proxy.json"
        try:
            loaded: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return loaded

    @property
    def ca_file(self) -> Path:
        """The proxy's CA certificate (PEM)."""
        return self.settings.state_dir / "proxy" / "mitmproxy-ca-cert.pem"

    def open_ports(self) -> set[int]:
        """The ports the proxy says it has open."""
        return {int(p) for p in self.state.get("ports", {})}

    def wait_ports(self, check: Callable[[set[int]], bool], what: str, timeout: float = WAIT) -> set[int]:
        """Wait until the open ports satisfy `check`."""
        return until(
            lambda: (lambda ports: ports if check(ports) else None)(self.open_ports()), what, timeout
        )

    def log(self) -> str:
        """Everything the proxy printed so far."""
        return self.log_file.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = WAIT) -> None:
        """Wait until the log shows `text`."""
        until(lambda: text in self.log(), f"{text!r} in the proxy log", timeout)

    def alive(self) -> None:
        """Fail with the log when the process ended."""
        assert self.proc.poll() is None, f"the proxy exited ({self.proc.returncode}):\n{self.log()}"


def worker_env(settings: Settings) -> dict[str, str]:
    """What a worker (the proxy, `busymate tail`) gets on top of `settings_env`: the API's URL and anon key,
    and a random wrong JWT secret, so it works on issued credentials alone or not at all. The local admin it
    acts as is made first, here, with the stack's right secret (as the stack's operator does)."""
    local_admin(settings)
    return {
        "BUSYMATE_URL": settings.api_url,
        "BUSYMATE_ANON_KEY": tokens.anon_key(settings.jwt_secret),
        "BUSYMATE_JWT_SECRET": secrets.token_urlsafe(32),
    }


@contextlib.contextmanager
def running_proxy(settings: Settings, pool: range, upstream_ca: Path, **env: str) -> Iterator[ProxyProcess]:
    """`busymate proxy run` on `pool`, trusting `upstream_ca` for servers, until the block ends."""
    log_file = settings.state_dir / f"proxy-{uuid.uuid4().hex[:8]}.log"
    full_env = {
        **os.environ,
        **settings_env(settings),
        **worker_env(settings),
        "BUSYMATE_PROXY_PORTS": f"{pool.start}-{pool.stop - 1}",
        "BUSYMATE_PROXY_HOST": "127.0.0.1",
        "BUSYMATE_PROXY_UPSTREAM_CA": str(upstream_ca),
        **env,
    }
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "busymate"), "proxy", "run"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    running = ProxyProcess(settings, proc, log_file, pool)
    try:
        until(
            lambda: "busymate proxy ready" in running.log() or proc.poll() is not None,
            "the proxy to start",
            60,
        )
        running.alive()
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fresh_workspace(settings: Settings, name: str) -> str:
    """A workspace of its own (other suites count the devices of the shared world's workspaces)."""
    slug = f"{name}-{uuid.uuid4().hex[:8]}"
    [(workspace_id,)] = sql(
        settings,
        "insert into public.workspaces (slug, name) values (%s, %s) returning id::text",
        (slug, slug),
    )
    return str(workspace_id)


def device_token(stack: Settings, device: dict[str, Any]) -> str:
    """A device token for the device's current credential (read as the database owner), signed as the
    stack would sign it."""
    [(credential,)] = sql(
        stack,
        "select credential_id::text from private.device_credentials where device_uuid = %s",
        (device["uuid"],),
    )
    now = int(time.time())
    claims = {
        "sub": device["uuid"],
        "role": "device",
        "workspace_id": device["workspace_id"],
        "cred": credential,
        "iat": now,
        "exp": now + 3600,
        "iss": "busymate",
    }
    return tokens.sign_hs256(claims, stack.jwt_secret)
