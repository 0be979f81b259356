"""`busymate mcp`: how to add Busymate's MCP server to an MCP client (docs/mcp.md): its URL, the OAuth
discovery (protected-resource metadata, then the authorization server's), and a client config snippet."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer

from busymate import scopes
from busymate.cli.common import err, friendly, out, settings_from

PATH = "/functions/v1/mcp"


def endpoints(base: str) -> dict[str, str]:
    """The MCP server's URL and its discovery URLs, below the API's `base` URL."""
    base = base.rstrip("/")
    return {
        "url": f"{base}{PATH}",
        "resource_metadata": f"{base}/.well-known/oauth-protected-resource{PATH}",
        "authorization_server": f"{base}/auth/v1",
        "authorization_server_metadata": f"{base}/.well-known/oauth-authorization-server/auth/v1",
    }


def client_config(url: str) -> dict[str, Any]:
    """The `mcpServers` entry most MCP clients read (Claude Code's .mcp.json, Claude Desktop, Cursor...)."""
    return {"mcpServers": {"busymate": {"type": "http", "url": url}}}


@friendly
def mcp(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", help="The API's public URL, when clients reach it by another name."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Everything as one JSON object.")] = False,
) -> None:
    """Print how to add the MCP server to an MCP client: its URL, the OAuth discovery and a config snippet."""
    settings = settings_from(ctx)
    found = endpoints(url or settings.url or settings.api_url)
    live = _metadata(found["resource_metadata"])
    if live is not None and live.get("authorization_servers"):
        issuer = urlsplit(str(live["authorization_servers"][0]))
        found["authorization_server"] = issuer.geturl()
        found["authorization_server_metadata"] = (
            f"{issuer.scheme}://{issuer.netloc}/.well-known/oauth-authorization-server{issuer.path}"
        )
    if as_json:
        typer.echo(json.dumps({**found, "scopes": list(scopes.ALL), **client_config(found["url"])}, indent=2))
        return
    if live is None:
        err.print("note: the API server did not answer; start it with `busymate start` (the URLs are below)")
    out.print(f"MCP server (streamable HTTP)  {found['url']}")
    out.print(f"protected resource metadata   {found['resource_metadata']}")
    out.print(f"authorization server          {found['authorization_server']}")
    out.print(f"  its metadata (RFC 8414)     {found['authorization_server_metadata']}")
    out.print(
        f"scopes                        {scopes.READ} (read only), {scopes.WRITE} (changes); "
        "chosen on the consent page"
    )
    out.print("")
    out.print("Add it to an MCP client's config (.mcp.json, claude_desktop_config.json, ...):")
    typer.echo(json.dumps(client_config(found["url"]), indent=2))
    out.print("")
    out.print(f"or: claude mcp add --transport http busymate {found['url']}")
    out.print("The client signs you in through the browser (OAuth 2.1 with PKCE) on first use.")


def _metadata(url: str) -> dict[str, Any] | None:
    """The server's protected-resource metadata, or None when it does not answer."""
    try:
        answer = httpx.get(url, timeout=3.0)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    body = answer.json()
    return body if isinstance(body, dict) else None


def register(app: typer.Typer) -> None:
    """Add `busymate mcp` to the CLI."""
    app.command("mcp")(mcp)
