"""`busymate up`: the whole main job in one command.

Start Postgres and the API server, make on first run the local admin, the `local` workspace's proxy device for
this machine (allowed from 127.0.0.1) and the proxy's CA, start the proxy, print where everything is, and
follow the live feed until Ctrl-C, which stops what this command started (and nothing that was already
running).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Annotated, Any

import typer

from busymate import tokens
from busymate.cli.common import err, friendly, out, settings_from
from busymate.cli.devices import find_device, free_port, pool_text
from busymate.cli.session import ADMIN_FILE, acting_token, local_admin
from busymate.cli.tail import follow
from busymate.client import Api
from busymate.errors import BusymateError
from busymate.project import remember
from busymate.proxy.state import running_pid, state_file
from busymate.settings import Settings, parse_port_range
from busymate.stack import migrate
from busymate.stack.api_process import ApiServer, settings_env
from busymate.stack.postgres import Cluster

DEVICE_NAME = "this machine"
PROXY_LOG = "proxy.log"


def _machine_device(api: Api, pool: range) -> dict[str, Any]:
    """The `local` workspace's proxy device for this machine, made on first run."""
    with contextlib.suppress(BusymateError):
        return find_device(api, DEVICE_NAME)
    workspaces = api.select("workspaces", {"select": "id,slug", "slug": "eq.local"})
    if not workspaces:
        raise BusymateError("there is no `local` workspace: run `busymate db reset` (the seed makes it)")
    port = free_port(api, pool)
    device: dict[str, Any] = api.rpc(
        "create_device",
        {
            "workspace_id": workspaces[0]["id"],
            "name": DEVICE_NAME,
            "source": "proxy",
            "allowed_sources": ["127.0.0.1/32", "::1/128"],
            "proxy_port": port,
        },
    )
    err.print(f"Made the proxy device {DEVICE_NAME!r} on port {port}, allowed from 127.0.0.1")
    return device


def _start_proxy(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    log = (settings.state_dir / PROXY_LOG).open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from busymate.cli.main import app; app()", "proxy", "run"],
        env={**os.environ, **settings_env(settings)},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us; we stop it in order
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BusymateError(f"the proxy stopped at start (exit {proc.returncode}): see {log.name}")
        with contextlib.suppress(OSError, ValueError):
            if str(port) in json.loads(state_file(settings.state_dir).read_text()).get("ports", {}):
                return proc
        time.sleep(0.1)
    proc.terminate()
    raise BusymateError(f"the proxy did not open port {port} within 60 s: see {log.name}")


def _print_summary(
    settings: Settings, device: dict[str, Any], admin: dict[str, Any], proxy_port: int
) -> None:
    from busymate.proxy import ca  # mitmproxy's certificates, only when `up` runs

    ca_file = ca.cert_path(settings.state_dir)
    proxy = f"http://127.0.0.1:{proxy_port}"
    lines = [
        ("Dashboard", f"{settings.api_url}/"),
        ("API URL", settings.api_url),
        ("Studio-less REST", f"{settings.api_url}/rest/v1"),
        ("Realtime", f"{settings.api_url.replace('http', 'ws', 1)}/realtime/v1"),
        ("DB URL", settings.db_url()),
        ("anon key", tokens.anon_key(settings.jwt_secret)),
        ("service_role key", tokens.service_role_key(settings.jwt_secret)),
        (
            "admin sign-in",
            f"{admin['email']} / {admin['password']}  (saved in {settings.state_dir / ADMIN_FILE})",
        ),
        (
            "proxy",
            f"{proxy}  (device {device['name']!r}, allowed from {', '.join(device['allowed_sources'])})",
        ),
        ("CA certificate", f"{ca_file}  (or http://{ca.CA_HOST}/ through the proxy)"),
        ("proxy log", str(settings.state_dir / PROXY_LOG)),
    ]
    width = max(len(k) for k, _ in lines)
    out.print("[bold]Busymate is up[/]")
    for key, value in lines:
        out.print(f"  {key.ljust(width)}  {value}", soft_wrap=True)
    out.print("\n[bold]Try it[/] (in another terminal):")
    out.print(f"  curl --proxy {proxy} --cacert {ca_file} https://example.com/", soft_wrap=True)
    out.print(f"  curl --proxy {proxy} http://example.com/", soft_wrap=True)
    out.print("\nFollowing the live feed of workspace `local`; Ctrl-C stops what `busymate up` started.\n")


@friendly
def up(
    ctx: typer.Context,
    ports: Annotated[
        str | None,
        typer.Option(
            "--ports", help="The proxy's port pool (default: BUSYMATE_PROXY_PORTS, else 9100-9199)."
        ),
    ] = None,
    no_follow: Annotated[
        bool, typer.Option("--no-follow", help="Print where everything is and return (leave it running).")
    ] = False,
) -> None:
    """Start everything (Postgres, API, proxy), set up a first capture, follow the live feed until Ctrl-C."""
    settings = settings_from(ctx)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # `kill`, or the terminal closing, stop it as Ctrl-C does
        signal.signal(sig, _interrupt)
    if ports is not None:
        try:
            settings = settings.with_overrides(proxy_ports=parse_port_range(ports))
        except ValueError as exc:
            raise BusymateError(f"--ports: {exc}") from exc
    pool = settings.proxy_ports
    cluster, server = Cluster(settings), ApiServer(settings)
    started: list[str] = []
    proxy: subprocess.Popen[bytes] | None = None
    try:
        if cluster.start():
            started.append("postgres")
        state = migrate.ensure_ready(settings, progress=lambda line: err.print(f"  {line}"))
        err.print(f"Postgres on {settings.db_host}:{settings.db_port} (database {state})")
        if server.pid() is None or not server.answers():
            server.start()
            started.append("api")
        err.print(f"API server on {settings.api_url}")
        email, password = local_admin(settings)  # made on first run
        admin = {"email": email, "password": password}
        token, who = acting_token(settings)  # a `busymate login` session, else the local admin
        from busymate.proxy import ca  # mitmproxy's certificates, only when `up` runs

        ca.ensure_ca(settings.state_dir)
        with Api.for_project(settings, token) as api:
            device = _machine_device(api, pool)
            workspace_id = str(device["workspace_id"])
        if not device.get("paired"):
            raise BusymateError(
                f"the device {DEVICE_NAME!r} is unpaired, so the proxy keeps its port closed: remove it with "
                f"`busymate devices remove '{DEVICE_NAME}'` and run `busymate up` again"
            )
        port = int(device["proxy_port"])
        if port not in pool:
            raise BusymateError(
                f"the device {DEVICE_NAME!r} has port {port}, outside the proxy's pool {pool_text(pool)}: "
                f"remove it (`busymate devices remove '{DEVICE_NAME}'`) and run `busymate up` again, or "
                "widen the pool"
            )
        if running_pid(settings.state_dir) is None:
            proxy = _start_proxy(settings, port)
            started.append("proxy")
            remember(settings, "proxy_ports")
        _print_summary(settings, device, admin, port)
        if no_follow:
            proxy = None
            started.clear()
            return
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            asyncio.run(follow(settings, workspace_id, label="local", identity=(token, who)))
    finally:
        _stop(settings, started, proxy, cluster, server)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(
    settings: Settings,
    started: list[str],
    proxy: subprocess.Popen[bytes] | None,
    cluster: Cluster,
    server: ApiServer,
) -> None:
    """Stop what `up` started, then say so: the terminal may be gone (a closed `| tee`, a hung-up shell),
    and nothing here depends on it. A second Ctrl-C meanwhile does not cut the stopping short."""
    if not started:
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    if proxy is not None and proxy.poll() is None:
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(20)
        except subprocess.TimeoutExpired:
            proxy.kill()
    if "api" in started:
        server.stop()
    if "postgres" in started:
        cluster.stop()
    err.print(f"\nStopped what `busymate up` started: {', '.join(reversed(started))}")
