"""GoTrue's and OAuth's error answers, and the request a handler of /auth/v1 (or a function) sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import parse_qsl

import orjson

# The API version GoTrue announces; clients that send it get `{"code": "<error_code>", "message": ...}`.
API_VERSION = "2024-01-01"


class AuthError(Exception):
    """An error in GoTrue's shape: the HTTP status, a stable error_code and a message for people."""

    def __init__(
        self,
        status: int,
        error_code: str,
        msg: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.error_code = error_code
        self.msg = msg
        self.headers = headers or {}
        self.extra = extra or {}  # e.g. weak_password: {"reasons": [...]}, which the clients read

    def body(self, api_version: str | None) -> dict[str, object]:
        """`{"code": 400, "error_code": ..., "msg": ...}`, or the 2024-01-01 shape when the client asked for
        it."""
        if api_version is not None and api_version >= API_VERSION:
            return {"code": self.error_code, "message": self.msg, **self.extra}
        return {"code": self.status, "error_code": self.error_code, "msg": self.msg, **self.extra}


class OAuthError(Exception):
    """RFC 6749 §5.2: `{"error": ..., "error_description": ...}`."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def bad_json() -> AuthError:
    return AuthError(400, "bad_json", "Could not parse request body as JSON")


@dataclass
class HttpRequest:
    """One request after the gateway: the path below the mount point, decoded headers, the raw body."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    client_ip: str
    cookies: dict[str, str] = field(default_factory=dict)

    @cached_property
    def query(self) -> dict[str, str]:
        """The query string's parameters (the last of a repeated name wins)."""
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    def json(self) -> dict[str, object]:
        """The body as a JSON object (an empty body is `{}`); AuthError bad_json otherwise."""
        if not self.body.strip():
            return {}
        try:
            value = orjson.loads(self.body)
            # orjson reads 1024 levels of nesting but writes 254, and what is read here may be stored and
            # answered: refuse now what could not be written later.
            orjson.dumps(value)
        except (orjson.JSONDecodeError, orjson.JSONEncodeError) as exc:
            raise bad_json() from exc
        if not isinstance(value, dict):
            raise bad_json()
        return value

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (OAuth's token endpoint and our HTML forms)."""
        try:
            return dict(parse_qsl(self.body.decode(), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise AuthError(400, "validation_failed", "The form body is not UTF-8") from exc

    def bearer(self) -> str | None:
        """The token of `Authorization: Bearer <token>`, if any."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
