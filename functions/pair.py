"""POST /functions/v1/pair {"code": "ABCDE-FGHJK"}: exchange a device's activation code for its JWT, once.

The code goes to the `pair_device` RPC under the publishable key alone (the code is the proof); the RPC voids
any earlier credential of that device and answers the new one, which this function has signed into a device
token (docs/auth.md, "Devices": role `device`, sub = the device's uuid, workspace_id, cred). Attempts are
limited per address (BUSYMATE_PAIR_RATE_LIMIT per 5 minutes).
"""

from __future__ import annotations

from busymate.api_core import ApiRefused
from busymate.functions_api import FunctionContext, FunctionRequest, FunctionResponse

VERIFY_JWT = False  # a device has nothing but its code; the RPC is the gate
NEEDS = ("signer", "limit")


async def handle(request: FunctionRequest, ctx: FunctionContext) -> FunctionResponse:
    """Pair, or say clearly why not."""
    if request.method != "POST":
        return FunctionResponse.json(405, {"error": "method_not_allowed", "message": "POST a JSON {code}"})
    ctx.limit()
    try:
        body = request.json()
    except ValueError as exc:
        return FunctionResponse.json(400, {"error": "bad_json", "message": str(exc)})
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code.strip():
        return FunctionResponse.json(400, {"error": "validation_failed", "message": "code is required"})
    # Always under the publishable key: the code is the proof, and a device recovering from an unpair may
    # still send its voided token, which must not stand in the way.
    try:
        answer = await ctx.anon.rpc("pair_device", {"code": code})
    except ApiRefused as exc:
        error = "invalid_code" if exc.status == 400 else "pairing_failed"
        return FunctionResponse.json(exc.status, {"error": error, "message": exc.message or "pairing failed"})
    if not isinstance(answer, dict):
        return FunctionResponse.json(502, {"error": "pairing_failed", "message": "pairing failed"})
    issued = ctx.sign_device_token(
        str(answer["device_uuid"]), str(answer["workspace_id"]), str(answer["credential_id"])
    )
    return FunctionResponse.json(200, issued.answer(answer))
