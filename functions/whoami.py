"""POST /functions/v1/whoami [{"fields": ["role", ...]}]: the caller's `whoami` RPC and the devices they may
see, both asked under their own token: the example function of docs/functions.md.

It needs nothing but `ctx.api` (the caller's token, so RLS applies: `visible_devices` lists only the devices
of the caller's workspaces), and it keeps the habits of every function: a bad body is a 400 in the function's
error shape, a refusal of the API keeps its status and message.
"""

from __future__ import annotations

from busymate.api_core import ApiRefused
from busymate.functions_api import FunctionContext, FunctionRequest, FunctionResponse


async def handle(request: FunctionRequest, ctx: FunctionContext) -> FunctionResponse:
    """Who the caller is, or only the `fields` they ask for."""
    try:
        body = request.json()
    except ValueError as exc:
        return FunctionResponse.json(400, {"error": "bad_json", "message": str(exc)})
    fields = body.get("fields") if isinstance(body, dict) else None
    if body is not None and (
        not isinstance(body, dict)
        or (fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)))
    ):
        return FunctionResponse.json(
            400, {"error": "validation_failed", "message": 'send nothing, or {"fields": ["role", ...]}'}
        )
    try:
        me = await ctx.api.rpc("whoami", {})
        visible = await ctx.api.select("devices", {"select": "uuid", "order": "uuid"})
    except ApiRefused as exc:
        return FunctionResponse.json(exc.status, {"error": exc.code or "refused", "message": exc.message})
    answer = {**(me if isinstance(me, dict) else {}), "visible_devices": [row["uuid"] for row in visible]}
    if fields is not None:
        answer = {k: v for k, v in answer.items() if k in fields}
    return FunctionResponse.json(200, answer)
