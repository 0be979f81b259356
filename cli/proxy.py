"""`busymate proxy`: run the capturing proxy, and hand out its CA."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from busymate.cli.common import err, friendly, out, settings_from
from busymate.cli.session import acting_token
from busymate.errors import BusymateError
from busymate.project import remember
from busymate.proxy.state import running_pid
from busymate.settings import parse_port_range

app = typer.Typer(help="The capturing proxy: a port per proxy device, its CA.", no_args_is_help=True)


def _ports(text: str) -> range:
    try:
        return parse_port_range(text)
    except ValueError as exc:
        raise BusymateError(f"--ports: {exc}") from exc


@app.command()
@friendly
def run(
    ctx: typer.Context,
    ports: Annotated[
        str | None,
        typer.Option(
            "--ports", help="The port pool devices draw from (default: BUSYMATE_PROXY_PORTS, else 9100-9199)."
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", envvar="BUSYMATE_PROXY_HOST", help="Address the ports listen on.")
    ] = "0.0.0.0",  # noqa: S104 - the source gate refuses every address a device does not allow
    breakpoint_timeout: Annotated[
        float,
        typer.Option(
            "--breakpoint-timeout",
            envvar="BUSYMATE_BREAKPOINT_TIMEOUT",
            help="Seconds a paused flow waits before it goes on (recorded as timed_out).",
        ),
    ] = 60.0,
    upstream_ca: Annotated[
        Path | None,
        typer.Option(
            "--upstream-ca", envvar="BUSYMATE_PROXY_UPSTREAM_CA", help="Extra CA (PEM) for servers."
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Do not verify servers' certificates (never in production).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every connection.")] = False,
    block: Annotated[
        list[str] | None,
        typer.Option(
            "--block-upstream",
            help="Never forward to this host, host:port, CIDR or CIDR:port; repeat "
            "(default: BUSYMATE_PROXY_BLOCK).",
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-upstream",
            help="Forward to this one even if refused by default (the stack's ports, link-local); repeat "
            "(default: BUSYMATE_PROXY_ALLOW).",
        ),
    ] = None,
) -> None:
    """Run the proxy in the foreground until Ctrl-C: ports open and close as proxy devices come and go."""
    # mitmproxy is imported here, not at the top: every other `busymate` command starts without it.
    from busymate.proxy import ca
    from busymate.proxy.addon import ProxyConfig
    from busymate.proxy.run import serve
    from busymate.proxy.upstream import Upstreams

    settings = settings_from(ctx)
    if ports is not None:  # the same pool for the proxy and for `busymate devices add`
        settings = settings.with_overrides(proxy_ports=_ports(ports))
    if block is not None:
        settings = settings.with_overrides(proxy_block=tuple(block))
    if allow is not None:
        settings = settings.with_overrides(proxy_allow=tuple(allow))
    config = ProxyConfig(
        settings=settings, ports=settings.proxy_ports, listen_host=host, breakpoint_timeout=breakpoint_timeout
    )
    try:
        Upstreams.for_proxy(settings, config.ports)  # a bad --block-upstream or --allow-upstream fails here
    except ValueError as exc:
        raise BusymateError(str(exc)) from None
    running = running_pid(settings.state_dir)
    if running is not None:
        raise BusymateError(
            f"a proxy already runs for this project (pid {running}): stop it with `busymate stop` or Ctrl-C"
        )
    acting_token(settings)  # fail early, with the CLI's message, when the API is not there
    remember(settings, "proxy_ports")  # `busymate devices add` in a later shell draws from this pool
    err.print(
        f"Busymate proxy: pool {config.ports.start}-{config.ports.stop - 1} on {host}, "
        f"API {settings.api_url}, CA {ca.ensure_ca(settings.state_dir)}",
        soft_wrap=True,
    )
    code = asyncio.run(
        serve(
            config,
            lambda: acting_token(settings)[0],
            upstream_ca=upstream_ca,
            insecure=insecure,
            verbose=verbose,
        )
    )
    raise typer.Exit(code)


@app.command("ca")
@friendly
def ca_command(
    ctx: typer.Context,
    form: Annotated[str, typer.Option("--format", help="path, pem, der or mobileconfig.")] = "path",
) -> None:
    """The proxy's CA: its path (default), or the certificate itself to stdout."""
    from busymate.proxy import ca  # mitmproxy's certificates: only for this command

    settings = settings_from(ctx)
    path = ca.ensure_ca(settings.state_dir)
    if form == "path":
        out.print(str(path))
        return
    makers = {"pem": ca.ca_pem, "der": ca.ca_der, "mobileconfig": ca.ios_profile}
    if form not in makers:
        raise BusymateError(f"--format is one of path, pem, der, mobileconfig (not {form!r})")
    os.write(1, makers[form](settings.state_dir))
