"""Run mitmproxy (mitmdump's master) with the Busymate addon in this process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from mitmproxy import options
from mitmproxy.tools.dump import DumpMaster

from busymate.proxy import ca
from busymate.proxy.addon import Busymate, ProxyConfig
from busymate.proxy.state import state_file

log = logging.getLogger("busymate.proxy")


async def serve(
    config: ProxyConfig,
    operator_token: Callable[[], str],
    *,
    upstream_ca: Path | None = None,
    insecure: bool = False,
    verbose: bool = False,
) -> int:
    """Run until SIGINT or SIGTERM; returns the exit code."""
    logging.getLogger("busymate").setLevel(logging.DEBUG if verbose else logging.INFO)
    ca.ensure_ca(config.settings.state_dir)
    opts = options.Options(listen_host=config.listen_host, confdir=str(ca.confdir(config.settings.state_dir)))
    master = DumpMaster(opts, with_termlog=True, with_dumper=False)
    opts.update(
        mode=[],
        termlog_verbosity="debug" if verbose else "info",
        ssl_insecure=insecure,
        ssl_verify_upstream_trusted_ca=str(upstream_ca) if upstream_ca else None,
    )
    addon = Busymate(config, operator_token, on_ports=lambda ports: _write_state(config, ports))
    master.addons.add(addon)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    try:
        await master.run()
    finally:
        state_file(config.settings.state_dir).unlink(missing_ok=True)
    return 0


def _write_state(config: ProxyConfig, ports: dict[int, dict[str, str]]) -> None:
    path = state_file(config.settings.state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "listen_host": config.listen_host,
                "pool": [config.ports.start, config.ports.stop - 1],
                "ports": {str(p): d for p, d in sorted(ports.items())},
                "ca": str(ca.cert_path(config.settings.state_dir)),
            },
            indent=2,
        )
    )
    tmp.replace(path)
