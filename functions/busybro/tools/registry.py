"""Listing and running tools: one gate on advertising, the same gate again on execution."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from busymate.api_core import ApiRefused, ApiUnreachable
from busymate.functions.busybro.core import Identity, Tool, ToolContext, ToolRefused

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 24_000  # a tool_result stays small, whatever a handler returns


@dataclass(frozen=True)
class ToolResult:
    """What goes back to the model as a tool_result."""

    content: str
    is_error: bool = False


def all_tools() -> list[Tool]:
    """Every tool, in a stable order: reads, inspect, writes."""
    from busymate.functions.busybro.tools import inspect, read, write  # here: the modules import core

    return [*read.TOOLS, *inspect.TOOLS, *write.TOOLS]


def tools_for(identity: Identity) -> list[Tool]:
    """The tools `identity` is offered: reads (view-gated ones only with the view), writes only with edit."""
    return [tool for tool in all_tools() if tool.allowed(identity)]


def find(name: str) -> Tool | None:
    """The tool called `name`, whoever asks."""
    return next((tool for tool in all_tools() if tool.name == name), None)


def dumps(value: Any) -> str:
    """A handler's value as the text of a tool_result, capped."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"… [truncated, {len(text) - MAX_RESULT_CHARS} more characters]"
    return text


async def run_tool(
    name: str, args: object, ctx: ToolContext, *, tools: Sequence[Tool] | None = None
) -> ToolResult:
    """Run `name` for `ctx.identity`, re-checking that it may (a forged call for a tool that was not offered
    is refused here). `tools` is where to look (default: the registry; the MCP server passes the registry and
    its own administrative tools). Never raises."""
    tool = find(name) if tools is None else next((t for t in tools if t.name == name), None)
    if tool is None or not tool.allowed(ctx.identity):
        return ToolResult(f"{name} is not available to you (your role does not allow it).", is_error=True)
    if not isinstance(args, dict):
        return ToolResult("the tool's input must be a JSON object", is_error=True)
    try:
        return ToolResult(dumps(await tool.handler(ctx, args)))
    except ToolRefused as exc:
        return ToolResult(str(exc), is_error=True)
    except ApiRefused as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return ToolResult(f"refused by the database: {exc.message}{hint}", is_error=True)
    except ApiUnreachable:
        return ToolResult("the Busymate API did not answer; try again shortly", is_error=True)
    except Exception:  # a bug in a handler: the model gets a plain error, the log the traceback
        log.exception("tool %s failed", name)
        return ToolResult(f"{name} failed unexpectedly", is_error=True)
