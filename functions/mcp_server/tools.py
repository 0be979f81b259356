"""The MCP server's tools: BusyBro's registry (one definition for both), then `EXTRA_TOOLS`, the tools only
the MCP server offers (the administrative ones BusyBro refuses). A tool is offered when the caller's role
allows it (`Tool.allowed`, re-checked when it runs) and, for a write, when the grant has `busymate:write`."""

from __future__ import annotations

from mcp.types import Tool as MCPTool
from mcp.types import ToolAnnotations

from busymate import scopes
from busymate.functions.busybro.core import Identity, Tool, ToolContext
from busymate.functions.busybro.tools import registry
from busymate.functions.busybro.tools.registry import ToolResult
from busymate.functions.mcp_server import admin_tools, analysis_tools

# The MCP-only tools, appended after BusyBro's in this order (unpair and delete devices, wipe entries, roles,
# workspaces and tabs, settings JSON, breakpoint rules, resend, export_har, diff_requests, describe_api).
# Their names must not collide with the registry's.
EXTRA_TOOLS: list[Tool] = []
EXTRA_TOOLS.extend(admin_tools.TOOLS)
EXTRA_TOOLS += analysis_tools.TOOLS  # export_har, diff_requests, describe_api: always last

MAX_RESULT_CHARS = registry.MAX_RESULT_CHARS


def catalogue() -> list[Tool]:
    """Every tool in its stable order: BusyBro's (reads, inspect, writes), then the MCP-only ones."""
    return [*registry.all_tools(), *EXTRA_TOOLS]


def find(name: str) -> Tool | None:
    """The tool called `name`, whoever asks."""
    return next((tool for tool in catalogue() if tool.name == name), None)


def writes(name: str) -> bool:
    """Whether `name` is a write tool (a call needs `busymate:write`)."""
    tool = find(name)
    return tool is not None and tool.kind == "write"


def offered(identity: Identity, granted: frozenset[str]) -> list[Tool]:
    """The tools this caller may list and run: their role's, and writes only under a read-write grant."""
    return [
        tool
        for tool in catalogue()
        if tool.allowed(identity) and (tool.kind != "write" or scopes.WRITE in granted)
    ]


def describe(tool: Tool) -> MCPTool:
    """The MCP definition of a tool, with its annotations (reads are read-only; a write says whether it
    destroys)."""
    write = tool.kind == "write"
    return MCPTool(
        name=tool.name,
        description=tool.description,
        input_schema=tool.input_schema,
        annotations=ToolAnnotations(
            read_only_hint=not write,
            destructive_hint=tool.destructive if write else False,
            open_world_hint=False,
        ),
    )


async def run(name: str, args: object, ctx: ToolContext, granted: frozenset[str]) -> ToolResult:
    """Run `name` for the caller: the same gates as listing (a call for a tool that was not offered is a tool
    error, as is every refusal), never an exception."""
    tool = find(name)
    if tool is None:
        return ToolResult(f"there is no tool called {name}; call tools/list for the tools you have", True)
    if not tool.allowed(ctx.identity):
        return ToolResult(f"{name} is not available to you (your role does not allow it).", True)
    if tool.kind == "write" and scopes.WRITE not in granted:
        return ToolResult(f"{name} changes data: this connection was granted read-only access.", True)
    return await registry.run_tool(name, args, ctx, tools=catalogue())


def result_text(result: ToolResult) -> str:
    """The result's text, capped (a handler's own cap is the registry's; this holds for every tool)."""
    text = result.content
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"… [truncated, {len(text) - MAX_RESULT_CHARS} more characters]"
    return text
