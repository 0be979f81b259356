"""POST /functions/v1/pair {"code": "ABCDE-FGHJK"}: exchange a device's activation code for its JWT, once.

The code goes to the `pair_device` RPC under the anon key (the code is the proof); the RPC voids any earlier
credential of that device and answers the new one, which this function signs into a device token
(docs/auth.md, "Devices": role `device`, sub = the device's uuid, workspace_id, cred).
Attempts are limited per address (BUSYMATE_PAIR_RATE_LIMIT per 5 minutes).
"""

from __future__ import annotations

from busymate.stack.functions import FunctionRequest, FunctionResponse

VERIFY_JWT = False  # a device has nothing but its code; the RPC is the gate
DAY = 86_400


def device_claims(paired: dict[str, object], issuer: str, now: int, days: int) -> dict[str, object]:
    """The claims of a device token for the answer of pair_device."""
    return {
        "iss": issuer,
        "sub": str(paired["device_uuid"]),
        "aud": "authenticated",
        "role": "device",
        "workspace_id": str(paired["workspace_id"]),
        "cred": str(paired["credential_id"]),
        "iat": now,
        "exp": now + days * DAY,
    }


async def handle(request: FunctionRequest) -> FunctionResponse:
    """Pair, or say clearly why not."""
    if request.method != "POST":
        return FunctionResponse.json(405, {"error": "method_not_allowed", "message": "POST a JSON {code}"})
    request.limit("pair", request.settings.pair_rate_limit)
    try:
        body = request.json()
    except ValueError as exc:
        return FunctionResponse.json(400, {"error": "bad_json", "message": str(exc)})
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code.strip():
        return FunctionResponse.json(400, {"error": "validation_failed", "message": "code is required"})
    # Always under the anon key: the code is the proof, and a device recovering from an unpair may still send
    # its voided token, which must not stand in the way.
    status, answer = await request.rest("POST", "/rpc/pair_device", {"code": code})
    if status != 200 or not isinstance(answer, dict):
        message = answer.get("message") if isinstance(answer, dict) else None
        error = "invalid_code" if status == 400 else "pairing_failed"
        return FunctionResponse.json(
            400 if status == 400 else status, {"error": error, "message": message or "pairing failed"}
        )
    now = request.now()
    days = request.settings.device_token_days
    token = request.keys.sign(device_claims(answer, request.settings.auth_url, now, days))
    return FunctionResponse.json(
        200,
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": days * DAY,
            "expires_at": now + days * DAY,
            "device": {
                "uuid": answer["device_uuid"],
                "workspace_id": answer["workspace_id"],
                "name": answer["name"],
                "source": answer["source"],
                "proxy_port": answer["proxy_port"],
            },
        },
    )
