"""Running a plan: one pooled `authenticator` connection, one transaction as the request's role with its
settings (the JWT claims, headers, cookies, the role's own settings), the statement and its one row, commit or
rollback; database and pool failures become PostgREST's errors (docs/rest.md, "A request, end to end")."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from busymate.gateway.availability import RETRY_AFTER, Availability, connection_lost, first_line
from busymate.gateway.rest.errors import ApiError, status_for_sqlstate
from busymate.gateway.rest.plan import Plan, ResultRow
from busymate.gateway.rest.request import ANON_ROLE, Call, Prefer
from busymate.gateway.rest.schema import SchemaCache

SETTINGS_SQL = (
    "select set_config('search_path', %s, true), set_config('role', %s, true), "
    "set_config('request.jwt.claims', %s, true), set_config('request.method', %s, true), "
    "set_config('request.path', %s, true), set_config('request.headers', %s, true), "
    "set_config('request.cookies', %s, true), "
    "(select count(set_config('request.jwt.claim.' || c.key, c.value, true)) "
    "from jsonb_each_text(%s::jsonb) as c), "
    "(select count(set_config(s.key, s.value, true)) from jsonb_each_text(%s::jsonb) as s)"
)


async def run(
    pool: AsyncConnectionPool,
    cache: SchemaCache,
    availability: Availability | None,
    call: Call,
    plan: Plan,
    schema: str,
) -> tuple[ResultRow, int | None]:
    """Run the plan as the request's role with its settings, in one transaction: its row, and the planned
    count when one was asked for. A lost or exhausted pool turns into PGRST000/001/003, a database error into
    PostgREST's error answer."""
    prefer = call.preferences
    claims = dict(call.claims)
    claims["role"] = call.role
    legacy = {
        k: v
        for k, v in claims.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool) and re.fullmatch(r"[A-Za-z0-9_]+", k)
    }
    headers = {k: v for k, v in call.headers.items() if k != "cookie"}
    cookies = {k: m.value for k, m in SimpleCookie(call.headers.get("cookie", "")).items()}
    settings = [
        f'"{schema}", "public", "extensions"',
        call.role,
        orjson.dumps(claims).decode(),
        call.method,
        call.path,
        orjson.dumps(headers).decode(),
        orjson.dumps(cookies).decode(),
        orjson.dumps(legacy).decode(),
        orjson.dumps(cache.role_settings.get(call.role, {})).decode(),
    ]
    timezone = prefer.get("timezone")
    rollback = prefer.get("tx") == "rollback"
    anonymous = call.role == ANON_ROLE
    if availability is not None and availability.down:
        raise ApiError(
            503,
            "PGRST000",
            "Database connection error. Retrying the connection.",
            details=availability.reason,
            headers={"retry-after": RETRY_AFTER},
        )
    try:
        async with pool.connection() as conn:
            try:
                row, total = await _execute(conn, cache, plan, settings, timezone, rollback, prefer)
            except BaseException:
                if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    await conn.execute("rollback")
                raise
    except PoolTimeout as exc:
        if availability is not None:
            availability.suspect()
        raise ApiError(504, "PGRST003", "Timed out acquiring connection from connection pool.") from exc
    except psycopg.OperationalError as exc:
        if not connection_lost(exc):
            raise _db_error(exc, anonymous) from exc
        if availability is not None:
            availability.lost(exc)
        raise ApiError(
            503,
            "PGRST001",
            "Database client error. Retrying the connection.",
            details=first_line(exc),
            headers={"retry-after": RETRY_AFTER},
        ) from exc
    except pg_errors.Error as exc:
        raise _db_error(exc, anonymous) from exc
    return row, total


async def _execute(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
    cache: SchemaCache,
    plan: Plan,
    settings: list[str],
    timezone: str | None,
    rollback: bool,
    prefer: Prefer,
) -> tuple[ResultRow, int | None]:
    mode = "read only" if plan.read_only else "read write"
    await conn.execute(f"begin isolation level read committed {mode}")
    await conn.execute(SETTINGS_SQL, settings)
    if cache.pre_request is not None:
        # db-pre-request: its own statement, as PostgREST runs it, so its name resolves as the request's
        # role.
        await conn.execute(f"select {cache.pre_request}()")
    if timezone:
        await conn.execute("select set_config('timezone', %s, true)", [timezone])
    cur = await conn.execute(plan.sql, plan.params)
    fetched = await cur.fetchone()
    assert fetched is not None
    row = ResultRow._make(fetched)
    total = None
    if plan.count_sql is not None:
        explain = await conn.execute("explain (format json) " + plan.count_sql[0], plan.count_sql[1])
        doc = (await explain.fetchone() or [[{}]])[0]
        total = int(doc[0]["Plan"]["Plan Rows"])  # type: ignore[index]
    page_total = int(row.page_total or 0)
    failed = None
    if plan.singular and page_total != 1:
        failed = ApiError(
            406,
            "PGRST116",
            "Cannot coerce the result to a single JSON object",
            details=f"The result contains {page_total} rows",
        )
    elif (
        prefer.get("handling") == "strict"
        and prefer.get("max-affected")
        and plan.kind in ("update", "delete", "rpc")
    ) and page_total > int(prefer.get("max-affected") or 0):
        failed = ApiError(
            400,
            "PGRST124",
            "Query result exceeds max-affected preference constraint",
            details=f"The query affects {page_total} rows",
        )
    if failed is not None:
        await conn.execute("rollback")
        raise failed
    await conn.execute("rollback" if rollback or plan.read_only else "commit")
    return row, total


def _db_error(exc: pg_errors.Error, anonymous: bool) -> ApiError:
    diag = exc.diag
    if diag.sqlstate is None and isinstance(exc, psycopg.DataError):
        # Refused by psycopg before it reached Postgres (a NUL byte in text): what Postgres would say, 22021.
        return ApiError(400, "22021", str(exc))
    code = diag.sqlstate or "XX000"
    message = diag.message_primary or str(exc)
    if code == "PGRST":
        try:
            custom = orjson.loads(message)
            extra = orjson.loads(diag.message_detail or "{}")
            return ApiError(
                int(extra.get("status", 400)),
                str(custom.get("code")),
                str(custom.get("message")),
                details=custom.get("details"),
                hint=custom.get("hint"),
                headers={k.lower(): str(v) for k, v in (extra.get("headers") or {}).items()},
            )
        except (orjson.JSONDecodeError, AttributeError, ValueError):
            return ApiError(500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error")
    status = status_for_sqlstate(code, message, anonymous)
    return ApiError(status, code, message, details=diag.message_detail, hint=diag.message_hint)
