"""Where a running proxy says who it is, and how to find and stop it: what the CLI needs without importing
mitmproxy (a `busymate` command stays quick to start)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path


def confdir(state_dir: Path) -> Path:
    """Where the proxy keeps its CA (mitmproxy's confdir) and its state file."""
    return state_dir / "proxy"


def state_file(state_dir: Path) -> Path:
    """Where a running proxy says who it is and which ports it has open."""
    return confdir(state_dir) / "proxy.json"


def running_pid(state_dir: Path) -> int | None:
    """The pid of the proxy running for this state folder, if one does."""
    try:
        pid = int(json.loads(state_file(state_dir).read_text())["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError):
        return None
    return pid


def stop_running(state_dir: Path, timeout: float = 20.0) -> bool:
    """Stop the proxy of this state folder (SIGTERM: it writes what it can, the rest stays spooled)."""
    pid = running_pid(state_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True
