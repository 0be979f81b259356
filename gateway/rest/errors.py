"""Errors in PostgREST's shape: `{code, details, hint, message}` and the SQLSTATE to HTTP table
(https://docs.postgrest.org/en/v14/references/errors.html)."""

from __future__ import annotations

import orjson

from busymate.gateway.edge import TIME_KINDS, EdgeError


class ApiError(Exception):
    """An error answer: status, PostgREST or SQLSTATE code, message, details and hint."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: object = None,
        hint: str | None = None,
        www_authenticate: str | None = None,
        headers: dict[str, str] | None = None,
        gateway: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.www_authenticate = www_authenticate
        self.headers = headers or {}
        # The gateway (Kong on Supabase) answers with `{"message": ...}` only, before PostgREST is reached.
        self.gateway = gateway

    def body(self) -> bytes:
        """The JSON body, keys in alphabetical order like PostgREST (just the message from the gateway)."""
        if self.gateway:
            return orjson.dumps({"message": self.message})
        return orjson.dumps(
            {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}
        )


def edge_error(exc: EdgeError) -> ApiError:
    """PostgREST's 401 for a token the edge refused: PGRST303 for its time claims, PGRST301 otherwise, with
    `WWW-Authenticate: Bearer error="invalid_token"` (https://docs.postgrest.org/en/v14/references/auth.html)."""
    code = "PGRST303" if exc.kind in TIME_KINDS else "PGRST301"
    return ApiError(401, code, exc.message, details=exc.details, www_authenticate=exc.message)


def parse_error(what: str, text: str, position: int, details: str) -> ApiError:
    """PGRST100 for a query-string parameter that does not parse, with the 1-based column."""
    return ApiError(
        400, "PGRST100", f'"failed to parse {what} ({text})" (line 1, column {position + 1})', details=details
    )


def status_for_sqlstate(code: str, message: str, anonymous: bool) -> int:
    """The HTTP status PostgREST answers for a database error (https://docs.postgrest.org/en/v14/references/errors.html)."""
    exact = {
        "23503": 409,
        "23505": 409,
        "25006": 405,
        "42883": 406 if message.startswith("function xmlagg(") else 404,
        "42P01": 404,
        "42P17": 500,
        "53400": 500,
        "57P01": 503,
        "P0001": 400,
    }
    if code in exact:
        return exact[code]
    if code == "42501":
        return 401 if anonymous else 403
    if code == "21000":
        return 400 if message.endswith("requires a WHERE clause") else 500
    if code == "22023":
        return 401 if message.startswith("role ") and message.endswith("does not exist") else 400
    if code.startswith("PT") and code[2:].isdigit():
        return int(code[2:])
    prefix = code[:2]
    table = {
        "08": 503,
        "09": 500,
        "0L": 403,
        "0P": 403,
        "28": 403,
        "25": 500,
        "2D": 500,
        "38": 500,
        "39": 500,
        "3B": 500,
        "40": 500,
        "53": 503,
        "54": 500,
        "55": 500,
        "57": 500,
        "58": 500,
        "F0": 500,
        "HV": 500,
        "XX": 500,
        "P0": 500,
    }
    return table.get(prefix, 400)
