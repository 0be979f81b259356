"""The device tokens the proxy holds: issued by /functions/v1/device-token, kept across restarts.

The proxy never signs a token. It asks the backend for each device it serves (when it first sees it, when
the device is paired again, and before a token runs out) and keeps the answers in
`<state>/proxy/credentials.json`: the file 0600, the folder 0700, written whole to a temporary file
and renamed over the old one, so a crash leaves the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RENEW_WHEN_LEFT = 1 / 3  # renew a token once less than this share of its lifetime is left


@dataclass(frozen=True)
class Credential:
    """One device's issued token and which pairing it belongs to."""

    token: str
    paired_at: str | None  # the device's paired_at when the token was issued: a new pairing moves it
    issued_at: int
    expires_at: int

    def due(self, now: float | None = None) -> bool:
        """Whether it is time to ask for a new token (less than a third of its lifetime left)."""
        now = time.time() if now is None else now
        return self.expires_at - now < (self.expires_at - self.issued_at) * RENEW_WHEN_LEFT

    def expired(self, now: float | None = None) -> bool:
        """Whether the token no longer works."""
        return (time.time() if now is None else now) >= self.expires_at


class Credentials:
    """credentials.json: device uuid -> Credential."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "credentials.json"
        self._held: dict[str, Credential] = self._load()

    def _load(self) -> dict[str, Credential]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        held: dict[str, Credential] = {}
        if isinstance(raw, dict):
            for device, entry in raw.items():
                with contextlib.suppress(TypeError, KeyError, ValueError):
                    held[str(device)] = Credential(
                        str(entry["token"]),
                        None if entry.get("paired_at") is None else str(entry["paired_at"]),
                        int(entry["issued_at"]),
                        int(entry["expires_at"]),
                    )
        return held

    def get(self, device: str) -> Credential | None:
        """The token held for `device`, if any."""
        return self._held.get(device)

    def put(self, device: str, credential: Credential) -> None:
        """Hold a new token for `device` and write the file."""
        self._held[device] = credential
        self._save()

    def drop(self, device: str) -> None:
        """Forget `device`'s token (refused, or the device is gone)."""
        if self._held.pop(device, None) is not None:
            self._save()

    def keep_only(self, devices: set[str]) -> None:
        """Forget the tokens of devices not in `devices`."""
        gone = set(self._held) - devices
        if gone:
            for device in gone:
                del self._held[device]
            self._save()

    def _save(self) -> None:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump({d: asdict(c) for d, c in sorted(self._held.items())}, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)
