"""Run the API server in the background: start it, wait until it answers, stop it (`busymate start|stop`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from busymate import tokens
from busymate.errors import BusymateError
from busymate.project import IDENTITY_HEADER, project_id, remember
from busymate.settings import FUNCTION_ENV, Settings
from busymate.stack.postgres import port_is_free


def settings_env(settings: Settings) -> dict[str, str]:
    """The BUSYMATE_* variables that rebuild `settings` in a child process."""
    return {
        "BUSYMATE_PROJECT_DIR": str(settings.project_dir),
        "BUSYMATE_STATE_DIR": str(settings.state_dir),
        "BUSYMATE_DB_PORT": str(settings.db_port),
        "BUSYMATE_API_PORT": str(settings.api_port),
        "BUSYMATE_DB_PASSWORD": settings.db_password,
        "BUSYMATE_JWT_SECRET": settings.jwt_secret,
        "BUSYMATE_PUBLISHABLE_KEY": settings.publishable_key,
        "BUSYMATE_SECRET_KEY": settings.secret_key,
        "BUSYMATE_MAX_BODY_BYTES": str(settings.max_body_bytes),
        "BUSYMATE_JWT_ALG": settings.jwt_alg,
        "BUSYMATE_JWT_EXPIRY": str(settings.jwt_expiry),
        "BUSYMATE_AUTH_SIGNUP": "true" if settings.auth_signup else "false",
        "BUSYMATE_AUTH_RATE_LIMIT": str(settings.auth_rate_limit),
        "BUSYMATE_PAIR_RATE_LIMIT": str(settings.pair_rate_limit),
        "BUSYMATE_DEVICE_TOKEN_DAYS": str(settings.device_token_days),
        "BUSYMATE_REALTIME_DB_CONNECTIONS": str(settings.realtime_db_connections),
        "BUSYMATE_REALTIME_MAX_CHANNELS": str(settings.realtime_max_channels_per_client),
        "BUSYMATE_REALTIME_MAX_JOINS_PER_SECOND": str(settings.realtime_max_joins_per_second),
        "BUSYMATE_REALTIME_PRESENCE_MAX_KB": str(settings.realtime_presence_max_kb),
        "BUSYMATE_REALTIME_PRESENCE_TOTAL_MB": str(settings.realtime_presence_total_mb),
        "BUSYMATE_MAX_HEADER_BYTES": str(settings.max_header_bytes),
        "BUSYMATE_API_LOG_MAX_BYTES": str(settings.api_log_max_bytes),
        "BUSYMATE_TRUSTED_PROXIES": ",".join(settings.trusted_proxies),
        "BUSYMATE_PROXY_PORTS": f"{settings.proxy_ports.start}-{settings.proxy_ports.stop - 1}",
        "BUSYMATE_DASHBOARD_DIR": str(settings.dashboard_dir),
        # Only what the settings hold: an unset secret is blank here, not inherited from the caller's shell.
        **dict.fromkeys(FUNCTION_ENV, ""),
        **dict(settings.function_env),
    }


class ApiServer:
    """The background API server of one project: a pid file and a log under the state folder.

    The server writes api.log itself, rotating it by size; what escapes logging (a crash before it is set up)
    lands in api.out, rewritten at each start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid_file = settings.state_dir / "api.pid"
        self.log_file = settings.state_dir / "api.log"
        self.out_file = settings.state_dir / "api.out"

    def pid(self) -> int | None:
        """The server's pid when it is running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def answers(self) -> bool:
        """Whether GET /rest/v1/ answers with the anon key, as this project's server."""
        request = urllib.request.Request(  # noqa: S310 (our own loopback URL)
            f"{self.settings.api_url}/rest/v1/", headers={"apikey": tokens.anon_key(self.settings.jwt_secret)}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                ours = response.headers.get(IDENTITY_HEADER) == project_id(self.settings.state_dir)
                return bool(response.status == 200 and ours)
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 30.0) -> int:
        """Start the server unless it runs; returns its pid once it answers."""
        running = self.pid()
        if running is not None and self.answers():
            return running
        if not port_is_free(self.settings.api_host, self.settings.api_port):
            raise BusymateError(
                f"port {self.settings.api_port} on {self.settings.api_host} is already in use by another "
                "program; "
                "stop it or set BUSYMATE_API_PORT"
            )
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        project_id(self.settings.state_dir)  # made before the server reads it, so both see the same
        env = {**os.environ, **settings_env(self.settings)}
        with self.out_file.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "busymate.gateway.server", "--log-file", str(self.log_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                cwd=str(self.settings.project_dir),
            )
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BusymateError(
                    f"the API server exited with status {process.returncode}:\n{self._tail()}"
                )
            if self.answers():
                remember(self.settings, "api_port", "db_port")  # for the project's later commands
                return process.pid
            time.sleep(0.1)
        process.terminate()
        raise BusymateError(f"the API server did not answer within {timeout:.0f} s:\n{self._tail()}")

    def _tail(self) -> str:
        return "\n".join(t for t in (_tail(self.out_file, missing=""), _tail(self.log_file)) if t)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the server; returns whether one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _exited(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            _exited(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def _exited(pid: int) -> bool:
    """Whether `pid` is gone; reaps it when it is our child (an exited child stays a zombie until then)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    except ChildProcessError:
        pass  # not our child: ask the kernel whether it still exists
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    return False


def _tail(path: Path, lines: int = 20, missing: str = "(no log)") -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return missing
