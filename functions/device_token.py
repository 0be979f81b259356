"""POST /functions/v1/device-token {"device": "<uuid>"}: a token for a device, for its owner or an admin.

The proxy (and later the dashboard) holds issued device credentials instead of signing its own: it asks here,
under its operator's token, for each device it serves. The database decides who may: `device_credentials`
runs under the caller's token and answers admins for any device and owners (with devices:edit) for their own;
anything it leaves out (not theirs, unknown, unpaired) is 404, so the answer says nothing of devices the
caller may not have. The token carries the same claims as `pair`'s (docs/auth.md); the credential is not
rotated, so tokens issued earlier stay valid until the device is unpaired or paired again.
"""

from __future__ import annotations

import uuid

from busymate.api_core import ApiRefused
from busymate.functions_api import FunctionContext, FunctionRequest, FunctionResponse

NEEDS = ("signer",)
DEVICE_COLUMNS = "uuid,workspace_id,name,source,proxy_port"


def _not_found(device: str) -> FunctionResponse:
    return FunctionResponse.json(
        404,
        {"error": "device_not_found", "message": f"no paired device {device} you may get a token for"},
    )


async def handle(request: FunctionRequest, ctx: FunctionContext) -> FunctionResponse:
    """Sign a token for a device the caller may have, or say clearly why not."""
    if request.method != "POST":
        return FunctionResponse.json(405, {"error": "method_not_allowed", "message": "POST a JSON {device}"})
    try:
        body = request.json()
    except ValueError as exc:
        return FunctionResponse.json(400, {"error": "bad_json", "message": str(exc)})
    device = body.get("device") if isinstance(body, dict) else None
    try:
        device = str(uuid.UUID(device)) if isinstance(device, str) else None
    except ValueError:
        device = None
    if device is None:
        return FunctionResponse.json(
            400, {"error": "validation_failed", "message": "device is required: the device's uuid"}
        )
    try:  # under the caller's token: the database decides which devices they may have
        answer = await ctx.api.rpc("device_credentials", {"device_uuids": [device]})
        rows = await ctx.api.select("devices", {"select": DEVICE_COLUMNS, "uuid": f"eq.{device}"})
    except ApiRefused as exc:
        if exc.status == 401:
            return FunctionResponse.json(
                401, {"error": "not_authorized", "message": exc.message or "sign in first"}
            )
        return _not_found(device)  # no devices:edit, a device token, ...: nothing to tell apart
    credential = next(
        (
            r.get("credential_id")
            for r in answer or []
            if isinstance(r, dict) and r.get("device_uuid") == device
        ),
        None,
    )
    if not credential or len(rows) != 1:
        return _not_found(device)
    row = rows[0]
    issued = ctx.sign_device_token(device, str(row["workspace_id"]), str(credential))
    return FunctionResponse.json(200, issued.answer({"uuid": device, **row}))
