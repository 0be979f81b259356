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

from busymate.functions.pair import DAY, device_claims
from busymate.stack.functions import FunctionRequest, FunctionResponse

DEVICE_COLUMNS = "uuid,workspace_id,name,source,proxy_port"


def _not_found(device: str) -> FunctionResponse:
    return FunctionResponse.json(
        404,
        {"error": "device_not_found", "message": f"no paired device {device} you may get a token for"},
    )


async def handle(request: FunctionRequest) -> FunctionResponse:
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
    token = request.bearer()
    status, answer = await request.rest(
        "POST", "/rpc/device_credentials", {"device_uuids": [device]}, token=token
    )
    if status == 401:
        message = answer.get("message") if isinstance(answer, dict) else None
        return FunctionResponse.json(401, {"error": "not_authorized", "message": message or "sign in first"})
    if status != 200 or not isinstance(answer, list):
        return _not_found(device)  # no devices:edit, a device token, ...: nothing to tell apart
    credential = next(
        (r.get("credential_id") for r in answer if isinstance(r, dict) and r.get("device_uuid") == device),
        None,
    )
    if not credential:
        return _not_found(device)
    status, rows = await request.rest(
        "GET", f"/devices?select={DEVICE_COLUMNS}&uuid=eq.{device}", token=token
    )
    if status != 200 or not isinstance(rows, list) or len(rows) != 1:
        return _not_found(device)
    row = rows[0]
    now = request.now()
    days = request.settings.device_token_days
    paired = {"device_uuid": device, "workspace_id": row["workspace_id"], "credential_id": credential}
    signed = request.keys.sign(device_claims(paired, request.settings.auth_url, now, days))
    return FunctionResponse.json(
        200,
        {
            "access_token": signed,
            "token_type": "bearer",
            "expires_in": days * DAY,
            "expires_at": now + days * DAY,
            "device": {
                "uuid": device,
                "workspace_id": row["workspace_id"],
                "name": row["name"],
                "source": row["source"],
                "proxy_port": row["proxy_port"],
            },
        },
    )
