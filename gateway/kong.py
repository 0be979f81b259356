"""The answers Supabase's Kong gives at the edge (https://supabase.com/docs/guides/api/api-keys): CORS
(preflights and the headers on every answer) and the key check's refusals. Reading the keys and tokens is
gateway/edge.py's; this module turns its refusals into Kong's answers for a key, PostgREST's for a token."""

from __future__ import annotations

from busymate.gateway.edge import Edge, EdgeError
from busymate.gateway.rest.errors import ApiError, edge_error
from busymate.gateway.rest.handler import Response

CORS_EXPOSE = (
    "Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, "
    "Transfer-Encoding, Range-Unit, Preference-Applied, Proxy-Status"
)


def preflight(headers: dict[str, str]) -> Response:
    """The answer to a CORS preflight: any origin, the methods PostgREST serves, the headers asked for."""
    requested = headers.get("access-control-request-headers", "")
    allow = "Authorization" + (f", {requested}" if requested else "")
    return Response(
        200,
        {
            "access-control-allow-origin": "*",
            "access-control-allow-methods": "GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD",
            "access-control-allow-headers": allow,
            "access-control-max-age": "86400",
        },
    )


def expose_cors(response: Response) -> None:
    """Let a browser page of any origin read `response` (the request named an origin)."""
    response.headers["access-control-allow-origin"] = "*"
    response.headers["access-control-expose-headers"] = CORS_EXPOSE


def request_claims(
    edge: Edge, headers: dict[str, str], query: str, *, verify: bool = True
) -> dict[str, object]:
    """The request's claims from the edge; a refusal in Kong's shape for a key, in PostgREST's for a token."""
    try:
        return edge.request_claims(headers, query, verify=verify)
    except EdgeError as exc:
        if exc.kind == "no_apikey":
            raise _refusal("No API key found in request") from exc
        if exc.kind == "unknown_key":
            raise _refusal("Invalid authentication credentials") from exc
        raise edge_error(exc) from exc


def _refusal(message: str) -> ApiError:
    return ApiError(401, "", message, gateway=True)
