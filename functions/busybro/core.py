"""What every part of BusyBro shares: the caller's identity, a tool, a tool's context, the brain's events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from busymate.api_client import AsyncApi

type Surface = Literal["web", "telegram", "mcp"]
# A capability section of public.roles.capabilities (docs/security-model.md).
type Section = Literal[
    "devices", "entries", "services", "tags", "global", "users", "workspaces", "breakpoints", "agents"
]


@dataclass(frozen=True)
class Identity:
    """Who is asking, as the surface resolved it (the dashboard's session, a linked Telegram account).

    `capabilities` is `my_capabilities()`'s `{section: {"view": bool, "edit": bool}}`; `grants_all` passes
    everything (admins). `user_id` None means an anonymous or unlinked asker: read tools only, no writes."""

    user_id: str | None
    email: str | None = None
    display_name: str = ""
    role: str | None = None
    grants_all: bool = False
    capabilities: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    prefs: Mapping[str, Any] = field(default_factory=dict)  # profiles.busybro_prefs
    telegram_name: str | None = None

    def can(self, section: str, action: Literal["view", "edit"]) -> bool:
        """Mirrors `has_capability(section, action)`: grants_all, else the flag must be exactly true."""
        if self.grants_all:
            return True
        return self.capabilities.get(section, {}).get(action) is True

    @property
    def may_write(self) -> bool:
        """Whether write tools may be offered at all (a known user; each tool still checks its section)."""
        return self.user_id is not None


@dataclass
class ToolContext:
    """What a tool runs with: the db client (the caller's token on the web; the service role on Telegram,
    where the ownership checks inside the write tools are the boundary), who asks, and the surface."""

    db: AsyncApi
    identity: Identity
    surface: Surface = "web"
    dash_origin: str = ""  # absolute links on Telegram; relative routes on the web


class ToolRefused(Exception):
    """A tool's clear refusal (bad arguments, missing capability, not your device): returned to the model as a
    tool_result with is_error, never raised to the surface."""


type ToolHandler = Callable[[ToolContext, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    """One tool, defined once for BusyBro and the MCP server.

    kind: "read" (SELECT-only), "inspect" (captured traffic, redacted) or "write".
    section/action: the capability that advertises it and is re-checked when it runs; None for reads every
    authenticated user may run (RLS still scopes the rows).
    label: the progress line the surfaces show while it runs (e.g. "🔍 Inspecting api.example.com…").
    destructive: the MCP annotation `destructiveHint` (reads are `readOnlyHint`)."""

    name: str
    description: str
    input_schema: dict[str, Any]
    handler: ToolHandler
    kind: Literal["read", "inspect", "write"] = "read"
    section: str | None = None
    action: Literal["view", "edit"] = "view"
    label: Callable[[dict[str, Any]], str] = lambda args: "🔧 Working…"
    destructive: bool = False

    def allowed(self, identity: Identity) -> bool:
        """Whether `identity` may see and run this tool."""
        if self.kind == "write" and not identity.may_write:
            return False
        return self.section is None or identity.can(self.section, self.action)

    def spec(self) -> dict[str, Any]:
        """The Messages API's tool definition."""
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer as the model streams it."""

    delta: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ToolProgress:
    """A tool started (its label)."""

    label: str
    type: Literal["tool"] = "tool"


@dataclass(frozen=True)
class Done:
    """The authoritative final answer (signature included)."""

    answer: str
    type: Literal["done"] = "done"


@dataclass(frozen=True)
class Failed:
    """The answer could not be made (the model unreachable, refused...): a friendly, retryable message."""

    message: str
    type: Literal["error"] = "error"


type Event = TextDelta | ToolProgress | Done | Failed
