"""What both API clients share (busymate.client's Api, busymate.api_client's AsyncApi): the headers a call
carries, the token it goes under, and the one mapping of an answer to JSON or a typed error.

A call sends what supabase-py sends: `apikey: <publishable key>` and `Authorization: Bearer <token>`, the
token being the caller's (the key itself when there is none). A refusal becomes an ApiRefused with the
server's status, code, message, details and hint, whatever shape the answer had (PostgREST, GoTrue, OAuth, a
function's own); the statuses a worker acts on have their own subclass (Unauthorized for 401, RateLimited for
429, Unavailable for 503, ...), and `retry_after` carries the server's Retry-After. A server that cannot be
reached is ApiUnreachable; an API port answered by another program is NotThisProject.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from busymate.errors import BusymateError

# The bearer token a client calls under: a fixed token, a callable asked before every call (the CLI's
# session, the proxy's renewed operator token), or None for the publishable key alone.
type TokenSource = str | Callable[[], str | None] | None
type AsyncTokenSource = str | Callable[[], str | None] | Callable[[], Awaitable[str | None]] | None


class ApiError(BusymateError):
    """No usable answer from the project's API."""


class ApiUnreachable(ApiError):
    """The API did not answer: nothing listens, the connection broke, or it timed out."""


class NotThisProject(ApiError):
    """What answers on the project's API port is another project's server, or not a Busymate server."""


class ApiRefused(ApiError):
    """The server answered with an error: its HTTP status, its code (a SQLSTATE such as 23505 from /rest/v1,
    GoTrue's error_code such as invalid_credentials from /auth/v1), message, details and hint, and how many
    seconds it asked the caller to wait (Retry-After), if it said."""

    def __init__(
        self,
        what: str,
        status: int,
        code: str,
        message: str,
        details: str = "",
        hint: str = "",
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status, self.code, self.message, self.details, self.hint = status, code, message, details, hint
        self.retry_after = retry_after
        super().__init__(f"{what}: {status} {message}" + (f" (hint: {hint})" if hint else ""))


class Unauthorized(ApiRefused):
    """401: the token (or key) was refused: expired, voided, signed by another key."""


class Forbidden(ApiRefused):
    """403: the caller is known but may not do this."""


class NotFound(ApiRefused):
    """404: no such route, row or function (or none the caller may see)."""


class Conflict(ApiRefused):
    """409: the write collides with what is stored (a unique value, a stale state)."""


class TooLarge(ApiRefused):
    """413: the request body is over the API's limit."""


class RateLimited(ApiRefused):
    """429: too many attempts; `retry_after` says when to try again, when the server says."""


class Unavailable(ApiRefused):
    """503: the server did nothing and expects to serve again (its database restarting); see `retry_after`."""


_BY_STATUS: dict[int, type[ApiRefused]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    429: RateLimited,
    503: Unavailable,
}


def headers(key: str, token: str | None) -> dict[str, str]:
    """The headers every call carries: the publishable key, and the token as Bearer (the key when None)."""
    return {"apikey": key, "authorization": f"Bearer {token or key}"}


def token_now(source: TokenSource) -> str | None:
    """The token a sync call goes under now."""
    return source() if callable(source) else source


async def token_soon(source: AsyncTokenSource) -> str | None:
    """The token an async call goes under now (the source may be a coroutine function)."""
    if not callable(source):
        return source
    value = source()
    return await value if inspect.isawaitable(value) else value


def retry_after(response: httpx.Response) -> float | None:
    """The seconds the Retry-After header asks for (a number, or an HTTP date), None when absent or bad."""
    raw = response.headers.get("retry-after", "").strip()
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def refusal(what: str, response: httpx.Response) -> ApiRefused:
    """The error for a 4xx/5xx answer in any of the API's shapes (PostgREST, GoTrue, OAuth, a function's)."""
    kind = _BY_STATUS.get(response.status_code, ApiRefused)
    wait = retry_after(response) if response.status_code in (429, 503) else None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raw = response.text.strip()[:300] or response.reason_phrase
        return kind(what, response.status_code, "", raw, retry_after=wait)

    def text(*keys: str) -> str:
        for key in keys:
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
        return ""

    message = text("message", "msg", "error_description", "error") or str(body)[:300]
    code = text("error_code") or (str(body["code"]) if body.get("code") is not None else "") or text("error")
    return kind(what, response.status_code, code, message, text("details"), text("hint"), retry_after=wait)


def unreachable(url: str, what: str, exc: httpx.HTTPError, hint: str = "") -> ApiUnreachable:
    """The error for a call that got no answer (raise it `from exc`)."""
    if isinstance(exc, httpx.ConnectError):
        return ApiUnreachable(f"the API server does not answer at {url}" + (f": {hint}" if hint else ""))
    return ApiUnreachable(f"{what} failed: {exc}")


def decode(what: str, response: httpx.Response) -> Any:
    """The answer's JSON (None for an empty body), or the ApiRefused it stands for."""
    if response.status_code >= 400:
        raise refusal(what, response)
    return response.json() if response.content else None
