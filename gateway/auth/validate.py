"""GoTrue's checks on what a request to /auth/v1 sends: email, password, metadata, paging and ban durations,
each refused with GoTrue's error."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from busymate.gateway.auth.errors import AuthError

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 6  # GoTrue's default minimum length
MAX_PASSWORD = 72  # bcrypt reads no further


def email(value: object) -> str:
    """A valid address, trimmed and lower-cased."""
    if not isinstance(value, str) or not EMAIL.match(value.strip()) or len(value) > 255:
        raise AuthError(400, "validation_failed", "Unable to validate email address: invalid format")
    return value.strip().lower()


def password(value: object) -> str:
    """A password of a length GoTrue (and bcrypt) accept."""
    weak: dict[str, object] = {"weak_password": {"reasons": ["length"]}}
    if not isinstance(value, str) or len(value) < MIN_PASSWORD:
        raise AuthError(
            422, "weak_password", f"Password should be at least {MIN_PASSWORD} characters.", extra=weak
        )
    if len(value.encode()) > MAX_PASSWORD:
        raise AuthError(
            422, "weak_password", f"Password cannot be longer than {MAX_PASSWORD} characters", extra=weak
        )
    return value


def merge(old: object, changes: dict[str, object]) -> dict[str, object]:
    """GoTrue's metadata update: keys set, a key set to null removed."""
    merged = dict(old) if isinstance(old, dict) else {}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def json_object(value: object, name: str) -> dict[str, object]:
    """`value` when it is a JSON object, {} when absent."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AuthError(400, "validation_failed", f"{name} must be a JSON object")
    return value


def positive(raw: str | None, default: int) -> int:
    """A positive whole number from the query string, `default` when absent."""
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise AuthError(400, "validation_failed", f"{raw[:20]!r} is not a positive whole number below 10^9")
    return int(raw)


def ban_until(value: object) -> object:
    """GoTrue's ban_duration: 'none' lifts a ban, else a Go duration such as '24h' or '876000h'."""
    if value == "none":
        return None
    match = re.fullmatch(r"([0-9]{1,9})(h|m|s)", str(value))
    if match is None:
        raise AuthError(
            400,
            "validation_failed",
            "ban_duration must be 'none' or a duration such as '24h' (at most 9 digits)",
        )
    seconds = int(match[1]) * {"h": 3600, "m": 60, "s": 1}[match[2]]
    try:
        return datetime.now(UTC) + timedelta(seconds=seconds)
    except OverflowError as exc:
        raise AuthError(400, "validation_failed", "ban_duration ends after the year 9999") from exc
