"""What an /auth/v1 handler returns (`Answer`), and its bytes on the wire."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from busymate.gateway.auth.errors import HttpRequest


@dataclass
class Answer:
    """A handler's result: status, JSON body (None for no body) and extra headers."""

    status: int
    body: object = None
    headers: dict[str, str] | None = None
    raw: bytes | None = None
    content_type: str = "application/json"


type Handler = Callable[[HttpRequest], Awaitable[Answer]]


def json_body(answer: Answer) -> bytes:
    """The bytes of an answer."""
    if answer.raw is not None:
        return answer.raw
    return b"" if answer.body is None else orjson.dumps(answer.body)
