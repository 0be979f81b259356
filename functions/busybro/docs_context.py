"""The docs BusyBro is grounded in: this repository's README and a fixed, curated list of docs/*.md.

Read from the checkout the package runs from, or, when `BUSYBRO_DOCS_REPO` (owner/name) is set, from the
GitHub contents API (`GITHUB_API_URL`, `GITHUB_TOKEN` for a private repository), falling back to the local
files on any failure. Each file is truncated, the files are joined in list order, and the text is cached
for 10 minutes so the cached prompt prefix stays byte-identical from call to call.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

# The order is the prompt's order: what a teammate reads first.
DOC_FILES: tuple[str, ...] = (
    "README.md",
    "docs/busybro.md",
    "docs/architecture.md",
    "docs/security-model.md",
    "docs/traffic.md",
    "docs/proxy.md",
    "docs/dashboard.md",
    "docs/devices.md",
    "docs/bmc.md",
    "docs/functions.md",
    "docs/database.md",
)
MAX_FILE_CHARS = 6_000
TTL_SECONDS = 600.0
GITHUB_API_URL = "https://api.github.com"

_cache: dict[str, tuple[float, str]] = {}


def repo_root() -> Path | None:
    """The checkout this package runs from: the nearest parent holding README.md and docs/."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "README.md").is_file() and (parent / "docs").is_dir():
            return parent
    return None


def _truncate(name: str, text: str) -> str:
    text = text.strip()
    if len(text) > MAX_FILE_CHARS:
        text = text[:MAX_FILE_CHARS].rstrip() + f"\n… [{name} truncated]"
    return f'<doc path="{name}">\n{text}\n</doc>'


def _join(files: Mapping[str, str]) -> str:
    parts = [_truncate(name, files[name]) for name in DOC_FILES if files.get(name)]
    if not parts:
        return (
            "(The project docs could not be loaded; answer how-it-works questions from the tools or say so.)"
        )
    return "\n\n".join(parts)


def local_files(root: Path | None = None) -> dict[str, str]:
    """The curated files that exist under `root` (default: this checkout)."""
    root = root or repo_root()
    found: dict[str, str] = {}
    if root is None:
        return found
    for name in DOC_FILES:
        path = root / name
        if path.is_file():
            found[name] = path.read_text(encoding="utf-8", errors="replace")
    return found


async def github_files(repo: str, env: Mapping[str, str]) -> dict[str, str]:
    """The curated files of `repo` through the GitHub contents API; raises on any failure (the caller falls
    back). A file the repository lacks is skipped."""
    base = (env.get("GITHUB_API_URL") or GITHUB_API_URL).rstrip("/")
    headers = {"accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28"}
    if env.get("GITHUB_TOKEN"):
        headers["authorization"] = f"Bearer {env['GITHUB_TOKEN']}"
    found: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10.0, headers=headers) as http:
        for name in DOC_FILES:
            response = await http.get(f"{base}/repos/{repo}/contents/{name}")
            if response.status_code == 404:
                continue
            response.raise_for_status()
            body = response.json()
            if not isinstance(body, dict) or body.get("encoding") != "base64":
                raise ValueError(f"{name}: not a base64 file")
            found[name] = base64.b64decode(str(body.get("content", ""))).decode("utf-8", errors="replace")
    if not found:
        raise ValueError(f"{repo}: none of the curated docs found")
    return found


async def docs_text(env: Mapping[str, str] | None = None, *, now: float | None = None) -> str:
    """The joined, truncated docs (cached for TTL_SECONDS per source)."""
    env = env or {}
    repo = env.get("BUSYBRO_DOCS_REPO", "").strip()
    key = f"github:{repo}" if repo else "local"
    moment = time.monotonic() if now is None else now
    cached = _cache.get(key)
    if cached is not None and moment - cached[0] < TTL_SECONDS:
        return cached[1]
    files: dict[str, str] | None = None
    if repo:
        try:
            files = await github_files(repo, env)
        except Exception as exc:  # any failure: the local checkout
            log.warning("BusyBro docs from GitHub (%s) failed, using the local files: %s", repo, exc)
    text = _join(files if files is not None else local_files())
    _cache[key] = (moment, text)
    return text


def clear_cache() -> None:
    """Forget the cached docs (tests)."""
    _cache.clear()
