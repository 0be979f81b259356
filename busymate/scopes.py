"""The OAuth scopes of Busymate's MCP server, shared by the authorization server (the consent page's choice)
and the resource server (functions/mcp.py): read-only or read-write, whatever the user's role allows.

A token without a `scope` claim is a session of the dashboard or the CLI (`/auth/v1/token`): it carries what
the user's role allows, both scopes. An OAuth grant names what the user chose at consent.
"""

from __future__ import annotations

from typing import Literal

READ = "busymate:read"
WRITE = "busymate:write"
ALL = (READ, WRITE)

type Access = Literal["read", "write"]


def offers_choice(requested: str) -> bool:
    """Whether the consent page asks read-only or read-write: the client asked for a Busymate scope, or for
    none at all (a client that asks only for other scopes gets exactly those)."""
    wanted = requested.split()
    return not wanted or any(scope in ALL for scope in wanted)


def offers_write(requested: str) -> bool:
    """Whether read-write may be granted: the client asked for it, or asked for nothing in particular."""
    wanted = requested.split()
    return not wanted or WRITE in wanted


def granted(requested: str, access: str | None) -> str:
    """The scope a grant carries: the client's other scopes, then `busymate:read`, then `busymate:write` when
    the user chose read-write and the client asked for it. A missing choice is read-only (least privilege)."""
    wanted = requested.split()
    if not offers_choice(requested):
        return " ".join(wanted)
    others = [scope for scope in wanted if scope not in ALL]
    chosen = [READ, WRITE] if access == "write" and offers_write(requested) else [READ]
    return " ".join(dict.fromkeys([*others, *chosen]))


def of_claims(claims: dict[str, object]) -> frozenset[str]:
    """The scopes a verified token carries: its `scope` claim, or both Busymate scopes for a session token
    (no claim: what the role allows)."""
    scope = claims.get("scope")
    if scope is None:
        return frozenset(ALL)
    return frozenset(str(scope).split())
