"""Who a signed-in user is, as the database tells them: the one lookup `ask` and the MCP server share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from busymate.api_client import AsyncApi
from busymate.functions.busybro.core import Identity


async def load_identity(db: AsyncApi, user: Mapping[str, Any]) -> Identity:
    """The identity of `user` (the auth server's user object): their profile (display name, email, role,
    BusyBro preferences) and `my_capabilities()`, both read under their own token through `db`."""
    user_id = str(user.get("id", ""))
    profiles = await db.select(
        "profiles", {"select": "display_name,email,role,busybro_prefs", "id": f"eq.{user_id}"}
    )
    caps = await db.rpc("my_capabilities", {})
    profile = profiles[0] if profiles else {}
    caps = caps if isinstance(caps, dict) else {}
    return Identity(
        user_id=user_id,
        email=profile.get("email") or user.get("email"),
        display_name=profile.get("display_name") or "",
        role=profile.get("role") or caps.get("role"),
        grants_all=caps.get("grants_all") is True,
        capabilities=caps.get("capabilities") or {},
        prefs=profile.get("busybro_prefs") or {},
    )
