"""The HTTP broadcast API (https://supabase.com/docs/guides/realtime/broadcast#broadcast-using-the-rest-api):
`POST /realtime/v1/api/broadcast` and `/realtime/v1/api/broadcast/{topic}/events/{event}`. Public messages go
out at once; private ones are inserted into realtime.messages as the caller (its INSERT policy is the
permission check) and reach subscribers from the database, in commit order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

import orjson

from busymate.gateway.edge import bearer
from busymate.gateway.realtime import protocol
from busymate.gateway.realtime.channel import PREFIX
from busymate.gateway.realtime.protocol import truthy
from busymate.gateway.realtime.tokens import RealtimeError, token_claims

if TYPE_CHECKING:
    from busymate.gateway.realtime.hub import Hub

log = logging.getLogger("busymate.realtime")


@dataclass(slots=True)
class HttpAnswer:
    """Status and JSON body of an HTTP broadcast answer (None: empty)."""

    status: int
    body: object


class BroadcastApi:
    """Answers the HTTP broadcast endpoints."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def claims(self, headers: dict[str, str]) -> dict[str, object]:
        """Who sends an HTTP broadcast: the bearer token, else the apikey; RealtimeError if neither passes."""
        keys = self.hub.keys
        token = bearer(headers) or None
        if token is None or (token.startswith("sb_") and token not in keys):
            token = headers.get("apikey") or token
        if not token:
            raise RealtimeError("Unauthorized")
        return token_claims(self.hub.verifier, keys.legacy(token))

    async def answer(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> HttpAnswer:
        """POST /realtime/v1/api/broadcast and /realtime/v1/api/broadcast/{topic}/events/{event}."""
        if method != "POST":
            return HttpAnswer(404, {"message": "Not found"})
        try:
            claims = self.claims(headers)
        except RealtimeError:
            return HttpAnswer(401, {"message": "Unauthorized"})
        if path == "/api/broadcast":
            return await self._batch(claims, headers, body)
        parts = path.split("/")
        if len(parts) == 6 and parts[1:3] == ["api", "broadcast"] and parts[4] == "events":
            topic, event = unquote(parts[3]), unquote(parts[5])
            private = truthy(dict(parse_qsl(query)).get("private"))
            return await self._single(claims, headers, topic, event, private, body)
        return HttpAnswer(404, {"message": "Not found"})

    async def _batch(self, claims: dict[str, object], headers: dict[str, str], body: bytes) -> HttpAnswer:
        try:
            data = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            return HttpAnswer(422, {"errors": {"messages": ["the body is not JSON"]}})
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list) or not messages:
            return HttpAnswer(422, {"errors": {"messages": ["can't be blank"]}})
        problems = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                problems.append(f"message {i} is not an object")
            elif not isinstance(m.get("topic"), str) or not m["topic"]:
                problems.append(f"message {i}: topic can't be blank")
            elif not isinstance(m.get("event"), str) or not m["event"]:
                problems.append(f"message {i}: event can't be blank")
            elif not isinstance(m.get("payload"), dict):
                problems.append(f"message {i}: payload must be an object")
        if problems:
            return HttpAnswer(422, {"errors": {"messages": problems}})
        private = [m for m in messages if truthy(m.get("private"))]
        for m in messages:
            if not truthy(m.get("private")):
                self.hub.fanout.public(m["topic"], m["event"], m["payload"], m.get("id"))
        if private:
            rows = [
                {
                    "topic": m["topic"],
                    "event": m["event"],
                    "payload_json": orjson.dumps(m["payload"]).decode(),
                    "id": m.get("id") if isinstance(m.get("id"), str) else None,
                }
                for m in private
            ]
            try:
                await self.hub.access.store(claims, headers, rows)
            except Exception as exc:
                log.info("HTTP broadcast refused: %s", exc)
        return HttpAnswer(202, None)

    async def _single(
        self,
        claims: dict[str, object],
        headers: dict[str, str],
        topic: str,
        event: str,
        private: bool,
        body: bytes,
    ) -> HttpAnswer:
        ctype = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        binary: bytes | None = None
        payload: object = None
        if ctype == "application/octet-stream":
            binary = body
        elif ctype == "application/json":
            try:
                payload = orjson.loads(body or b"{}")
            except orjson.JSONDecodeError:
                return HttpAnswer(422, {"error": "the body is not JSON"})
        else:
            return HttpAnswer(415, {"error": f"unsupported content type {ctype}"})
        if not private:
            if binary is not None:
                full = PREFIX + topic
                self.hub.fanout.send(
                    topic, False, None, None, protocol.encode_binary_broadcast(full, event, binary, None)
                )
            else:
                self.hub.fanout.public(topic, event, payload, None)
            return HttpAnswer(202, None)
        row: dict[str, object] = {
            "topic": topic,
            "event": event,
            "payload_json": orjson.dumps(payload).decode(),
            "binary": binary,
            "id": None,
        }
        try:
            stored = await self.hub.access.store(claims, headers, [row])
        except Exception as exc:
            log.info("HTTP broadcast refused: %s", exc)
            stored = [False]
        if not stored[0]:
            return HttpAnswer(403, {"message": "Unauthorized"})
        return HttpAnswer(202, None)
