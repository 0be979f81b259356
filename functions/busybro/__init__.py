"""BusyBro's brain: one package that every surface hosts (the `ask` function now, the Telegram bots later).

- `core`: who is asking (`Identity`), what a tool is (`Tool`, `ToolContext`), what the brain emits (`Event`).
- `tools`: the one tool registry (read, inspect, write), which the MCP server reuses.
- `prompt`: persona, the silent specialist lens, formatting per surface, the docs context and the signature.
- `brain`: the agentic loop on the official `anthropic` SDK (streaming), `answer(...)`.

docs/busybro.md is the page a person reads.
"""
