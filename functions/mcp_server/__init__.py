"""Busymate's MCP server (`/functions/v1/mcp`, docs/mcp.md), on the official `mcp` SDK's `MCPServer` and its
streamable HTTP transport, hosted as a function.

- `site`: where the server answers (its resource URL, the issuer, the hosts it accepts).
- `auth`: the caller of one request, the token verifier (the auth server and the token's claims), the
  protected-resource metadata and the `WWW-Authenticate` challenges.
- `tools`: the catalogue (BusyBro's registry, then `EXTRA_TOOLS`, the MCP-only tools), annotations, runs.
- `server`: the `MCPServer` whose tools are the caller's.
- `bridge`: a FunctionRequest through the SDK's ASGI app, back as a FunctionResponse.
"""
