"""The README's snippets, run as written against the session's stack, so they stay true.

Every ```sh and ```python block runs, in the README's order, as a reader would: the shell blocks in one shell
(what one exports, the next sees, and so do the Python blocks), each Python block on its own with the venv's
Python, from the project folder. Only the BUSYMATE_* settings the README documents point the CLI at the test
stack; the text is used literally. ```console blocks are commands that run until Ctrl-C (`make up`), and plain
``` blocks show output: neither runs. While a Python block runs, a device of the `local` workspace captures a
request every half second, which is what the realtime snippet waits for.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from busymate import tokens
from busymate.settings import Settings
from busymate.stack.api_process import settings_env
from tests.conftest import PROJECT_DIR

README = PROJECT_DIR / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
VENV_BIN = Path(sys.executable).parent


def snippets() -> list[tuple[str, str]]:
    """(language, text) of every fenced block the test runs."""
    return [(lang, text) for lang, text in BLOCK.findall(README.read_text()) if lang in ("sh", "python")]


def reader_env(stack: Settings) -> dict[str, str]:
    """A fresh shell with the venv on PATH, whose BUSYMATE_* settings name the test stack."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BUSYMATE_", "API_", "ANON_", "TOKEN"))}
    return {**clean, **settings_env(stack), "PATH": f"{VENV_BIN}:{clean.get('PATH', '/usr/bin:/bin')}"}


class Traffic:
    """A device of the `local` workspace that captures a request every half second until stopped."""

    def __init__(self, stack: Settings) -> None:
        self.stack = stack
        self.host = f"readme-{uuid.uuid4().hex[:8]}.test"
        anon = tokens.anon_key(stack.jwt_secret)
        added = subprocess.run(
            [str(VENV_BIN / "busymate"), "devices", "add", self.host, "--source", "ios", "--json"],
            env=reader_env(stack),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        code = json.loads(added.stdout)["activation"]["code"]
        paired = httpx.post(f"{stack.api_url}/functions/v1/pair", json={"code": code})
        assert paired.status_code == 200, paired.text
        self.headers = {"apikey": anon, "authorization": f"Bearer {paired.json()['access_token']}"}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            flow = {
                "id": str(uuid.uuid4()),
                "captured_at": datetime.now(UTC).isoformat(),
                "method": "GET",
                "scheme": "https",
                "host": self.host,
                "port": 443,
                "path": "/",
                "status": 200,
            }
            httpx.post(
                f"{self.stack.api_url}/rest/v1/rpc/ingest_entries",
                json={"batch": [flow]},
                headers=self.headers,
                timeout=10,
            )

    def __enter__(self) -> Traffic:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)


def run_shell(
    text: str, env: dict[str, str], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """A shell block in a shell that has `env`; the block's output and the environment it leaves."""
    dump = tmp_path / f"env-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{text}\nenv -0 > {dump}"],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    left = env
    if dump.exists():
        pairs = (item.partition("=") for item in dump.read_text().split("\0") if "=" in item)
        left = {name: value for name, _, value in pairs}
    return done, left


def test_every_readme_snippet_runs_as_written(stack: Settings, tmp_path: Path) -> None:
    blocks = snippets()
    languages = [lang for lang, _ in blocks]
    assert languages.count("python") >= 3, languages  # REST, Realtime, Auth
    assert languages.count("sh") >= 2, languages  # the keys and token, devices
    env = reader_env(stack)
    traffic = Traffic(stack)
    printed: list[str] = []
    for number, (lang, text) in enumerate(blocks, 1):
        if lang == "sh":
            done, env = run_shell(text, env, tmp_path)
        else:
            with traffic:
                done = subprocess.run(
                    [sys.executable, "-c", text],
                    env=env,
                    cwd=PROJECT_DIR,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
        where = f"README block {number} ({lang}):\n{text}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        assert done.returncode == 0, where
        assert "Traceback" not in done.stderr, where
        printed.append(done.stdout)
    output = "\n".join(printed)
    assert "'workspace': {'slug': 'local'}" in output  # the REST snippet listed devices with their workspace
    assert traffic.host in output  # the realtime snippet printed a captured row
    assert "[]" in output  # a new user's devices, under their RLS
    assert '"access_token"' in output  # the paired device's token
    assert env["API_URL"] == stack.api_url  # the shell took the stack's keys from `busymate status -o env`
