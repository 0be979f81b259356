"""A user row of auth.users: the columns /auth/v1 reads, and the JSON GoTrue answers with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

USER_COLUMNS = (
    "id, aud, role, email, encrypted_password, email_confirmed_at, phone, phone_confirmed_at, confirmed_at, "
    "last_sign_in_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at, banned_until, "
    "is_anonymous, deleted_at"
)

type Row = dict[str, Any]


def _iso(value: object) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return None


def user_json(row: Row, identities: list[Row] | None = None) -> dict[str, object]:
    """A user as GoTrue serialises it."""
    created = _iso(row["created_at"])
    return {
        "id": str(row["id"]),
        "aud": row["aud"] or "authenticated",
        "role": row["role"] or "authenticated",
        "email": row["email"] or "",
        "email_confirmed_at": _iso(row["email_confirmed_at"]),
        "phone": row["phone"] or "",
        "confirmed_at": _iso(row["confirmed_at"]),
        "last_sign_in_at": _iso(row["last_sign_in_at"]),
        "app_metadata": row["raw_app_meta_data"] or {},
        "user_metadata": row["raw_user_meta_data"] or {},
        "identities": [
            {
                "identity_id": str(i["id"]),
                "id": i["provider_id"],
                "user_id": str(i["user_id"]),
                "identity_data": i["identity_data"],
                "provider": i["provider"],
                "last_sign_in_at": _iso(i["last_sign_in_at"]),
                "created_at": _iso(i["created_at"]),
                "updated_at": _iso(i["updated_at"]),
                "email": i["email"],
            }
            for i in identities or []
        ],
        "created_at": created,
        "updated_at": _iso(row["updated_at"]),
        "is_anonymous": bool(row["is_anonymous"]),
        **({"banned_until": _iso(row["banned_until"])} if row["banned_until"] else {}),
    }
