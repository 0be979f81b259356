"""The one tool registry: BusyBro's tools, reused by the MCP server (issue 20).

`all_tools()` lists every tool in a stable order; `tools_for(identity)` those the identity may see;
`run_tool(name, args, ctx)` runs one, re-checking the capability, and never raises: a refusal comes back as
`ToolResult(is_error=True)` with a message the model can act on.
"""
