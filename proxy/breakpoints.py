"""Breakpoints: pause a matching flow, record a breakpoint_event, wait until the database says how it ended.

Rules (public.breakpoints) are read under the proxy's operator token and matched per device and phase: method
(exact, optional), host and path globs (`*` any run, `?` one character; host without letter case). A match
intercepts the flow (mitmproxy's own intercept, so nothing is sent on), inserts a breakpoint_event under the
device's credential (published on ws:<workspace_id>), and waits. `continue_breakpoint` stores the outcome and
the edits in that row and wakes the proxy with `breakpoint-continue` on proxy-control:<workspace_id>; the
proxy then reads the row back under the device's credential (and polls the rows of paused flows anyway, so a
lost wake-up costs a second, not the flow). Only the row counts, never the message: `continued` resumes,
`edited` applies the row's edits first (request: method, url, path, headers, body / body_b64; response:
status, headers, body / body_b64), `aborted` kills the flow. After `timeout` seconds without an answer the
event is marked timed_out and the flow goes on unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mitmproxy import http

log = logging.getLogger("busymate.proxy")

SNAPSHOT_BODY = 64 * 1024  # how much of a paused body the event's snapshot shows
ACTIONS = {"continued": "continue", "edited": "edit", "aborted": "abort", "timed_out": "continue"}

ReadEvents = Callable[[str, list[str]], Awaitable[list[dict[str, Any]]]]
"""(device uuid, event ids) -> the resolved breakpoint_events rows among them, read under the device's own
token."""


def glob(pattern: str, *, fold: bool) -> re.Pattern[str]:
    """`*` and `?` as in the breakpoints table; everything else literal."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE if fold else 0)


@dataclass(frozen=True)
class Rule:
    """One enabled breakpoint rule."""

    id: str
    workspace_id: str
    device_uuid: str | None
    phase: str
    method: str | None
    host: re.Pattern[str]
    path: re.Pattern[str]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Rule:
        """A rule from a public.breakpoints row."""
        return cls(
            id=row["id"],
            workspace_id=row["workspace_id"],
            device_uuid=row.get("device_uuid"),
            phase=row["phase"],
            method=row.get("method"),
            host=glob(row.get("host_pattern") or "*", fold=True),
            path=glob(row.get("path_pattern") or "*", fold=False),
        )

    def matches(self, workspace_id: str, device_uuid: str, phase: str, flow: http.HTTPFlow) -> bool:
        """Whether this rule pauses `flow` of that device at `phase`."""
        req = flow.request
        return (
            self.phase == phase
            and self.workspace_id == workspace_id
            and (self.device_uuid is None or self.device_uuid == device_uuid)
            and (self.method is None or self.method == req.method.upper())
            and self.host.match(req.pretty_host) is not None
            and self.path.match(req.path.partition("?")[0]) is not None
        )


@dataclass
class Paused:
    """A flow waiting at a breakpoint."""

    event_id: str
    flow: http.HTTPFlow
    phase: str
    device_uuid: str
    decided: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _text_or_b64(content: bytes) -> dict[str, Any]:
    cut = content[:SNAPSHOT_BODY]
    try:
        return {
            "body": cut.decode("utf-8"),
            "body_size": len(content),
            "body_truncated": len(content) > len(cut),
        }
    except UnicodeDecodeError:
        return {
            "body_b64": base64.b64encode(cut).decode(),
            "body_size": len(content),
            "body_truncated": len(content) > len(cut),
        }


def snapshot(flow: http.HTTPFlow, phase: str) -> dict[str, Any]:
    """What a person needs to decide: the request (and the response when paused on it)."""
    req = flow.request
    shot: dict[str, Any] = {
        "request": {
            "method": req.method,
            "url": req.pretty_url,
            "http_version": req.http_version,
            "headers": [[k, v] for k, v in req.headers.items(multi=True)],
            **_text_or_b64(req.get_content(strict=False) or b""),
        }
    }
    if phase == "response" and flow.response is not None:
        res = flow.response
        shot["response"] = {
            "status": res.status_code,
            "headers": [[k, v] for k, v in res.headers.items(multi=True)],
            **_text_or_b64(res.get_content(strict=False) or b""),
        }
    return shot


def _body_of(edits: dict[str, Any]) -> bytes | None:
    if isinstance(edits.get("body_b64"), str):
        return base64.b64decode(edits["body_b64"])
    if isinstance(edits.get("body"), str):
        return str(edits["body"]).encode()
    return None


def _set_headers(message: http.Message, headers: Any) -> None:
    """An object sets (or, with null, removes) the headers it names; a list of pairs replaces them all."""
    if isinstance(headers, dict):
        for name, value in headers.items():
            if value is None:
                message.headers.pop(str(name), None)
            else:
                message.headers[str(name)] = str(value)
        return
    message.headers = http.Headers([(str(k).encode(), str(v).encode()) for k, v in headers])


def apply_edits(flow: http.HTTPFlow, phase: str, edits: dict[str, Any]) -> None:
    """Change the paused request or response as the edits say; unknown keys are ignored."""
    message: http.Message
    if phase == "request":
        message = req = flow.request
        if isinstance(edits.get("method"), str):
            req.method = edits["method"].upper()
        if isinstance(edits.get("url"), str):
            req.url = edits["url"]
        if isinstance(edits.get("path"), str):
            req.path = edits["path"]
    elif flow.response is not None:
        message = res = flow.response
        if isinstance(edits.get("status"), int):
            res.status_code = edits["status"]
    else:
        return
    if isinstance(edits.get("headers"), dict | list):
        _set_headers(message, edits["headers"])
    body = _body_of(edits)
    if body is not None:
        message.content = body


class Breakpoints:
    """Rules, paused flows and their resolution."""

    def __init__(
        self,
        record: Callable[[str, dict[str, Any]], Awaitable[bool]],
        time_out: Callable[[str, str], Awaitable[None]],
        timeout: float,
        read: ReadEvents,
    ) -> None:
        self.rules: list[Rule] = []
        self.paused: dict[str, Paused] = {}
        self.timeout = timeout
        self._record = record
        self._time_out = time_out
        self._read = read

    def set_rules(self, rows: list[dict[str, Any]]) -> None:
        """Replace the rules (enabled rows of public.breakpoints)."""
        self.rules = [Rule.from_row(r) for r in rows if r.get("enabled", True)]

    def match(self, workspace_id: str, device_uuid: str, phase: str, flow: http.HTTPFlow) -> Rule | None:
        """The first rule that pauses this flow here."""
        for rule in self.rules:
            if rule.matches(workspace_id, device_uuid, phase, flow):
                return rule
        return None

    async def pause(
        self, flow: http.HTTPFlow, workspace_id: str, device_uuid: str, rule: Rule, phase: str
    ) -> None:
        """Hold the flow until it is continued, edited, aborted or times out (called from a hook)."""
        flow.intercept()
        paused = Paused(str(uuid.uuid4()), flow, phase, device_uuid)
        self.paused[paused.event_id] = paused
        now = datetime.now(UTC)
        event = {
            "id": paused.event_id,
            "breakpoint_id": rule.id,
            "workspace_id": workspace_id,
            "device_uuid": device_uuid,
            "flow_id": flow.id,
            "phase": phase,
            "snapshot": snapshot(flow, phase),
            "paused_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=self.timeout)).isoformat(),  # readers count down to it
        }
        started = time.monotonic()
        try:
            if not await self._record(device_uuid, event):
                log.warning("could not record the paused flow %s: letting it through", flow.id)
                flow.resume()
                return
            log.info(
                "paused %s %s at a %s breakpoint (event %s)",
                flow.request.method,
                flow.request.pretty_url,
                phase,
                paused.event_id,
            )
            try:
                decision = await asyncio.wait_for(
                    asyncio.shield(paused.decided), max(0.0, self.timeout - (time.monotonic() - started))
                )
            except TimeoutError:
                await self.check([paused.event_id])  # resolved at the last moment, its wake-up on the way?
                if not paused.decided.done():
                    log.info(
                        "breakpoint event %s timed out after %.0f s: the flow goes on",
                        paused.event_id,
                        self.timeout,
                    )
                    await self._time_out(device_uuid, paused.event_id)
                    flow.resume()
                    return
                decision = paused.decided.result()
            action = decision.get("action")
            if action == "abort":
                flow.resume()
                if flow.killable:
                    flow.kill()
                return
            if action == "edit" and isinstance(decision.get("edits"), dict):
                apply_edits(flow, phase, decision["edits"])
            flow.resume()
        finally:
            self.paused.pop(paused.event_id, None)

    def resolved(self, row: dict[str, Any]) -> bool:
        """A breakpoint_events row as the database has it; True when it resolved a flow held here."""
        paused = self.paused.get(str(row.get("id")))
        action = ACTIONS.get(str(row.get("outcome")))
        if paused is None or paused.decided.done() or row.get("active") is not False or action is None:
            return False
        paused.decided.set_result({"action": action, "edits": row.get("edits")})
        return True

    async def check(self, event_ids: list[str] | None = None) -> None:
        """Read back the rows of paused flows (these, or all) and let go of the ones resolved there."""
        by_device: dict[str, list[str]] = {}
        for event_id in self.paused if event_ids is None else event_ids:
            paused = self.paused.get(event_id)
            if paused is not None and not paused.decided.done():
                by_device.setdefault(paused.device_uuid, []).append(event_id)
        for device_uuid, ids in by_device.items():
            for row in await self._read(device_uuid, ids):
                self.resolved(row)
