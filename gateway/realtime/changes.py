"""One postgres change, from wal2json's record to the `postgres_changes` messages of the channels it is for:
which bindings it matches (event and filters; a DELETE on a table with RLS by its key, see rls.py), then
each subscriber's message with only the columns its role may select.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from busymate.gateway.realtime import filters as pgfilters
from busymate.gateway.realtime.catalog import Table
from busymate.gateway.realtime.protocol import Frame
from busymate.gateway.realtime.values import commit_time, key_text, value

if TYPE_CHECKING:
    from busymate.gateway.realtime.channel import Channel
    from busymate.gateway.realtime.subscriptions import Binding

ACTIONS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}

Target = tuple["Channel", str, str]  # (channel, role, claims json)


@dataclass
class Change:
    """One decoded postgres change, before fan-out."""

    table: Table
    action: str
    record: dict[str, object]
    old: dict[str, object]
    commit: str
    keys: list[object]  # the primary key as wal2json spelled it (Postgres's text output)
    # (channel, role, claims json) -> binding ids that passed event and filters
    targets: dict[Target, list[int]]
    # of those, the DELETE bindings whose filter read a non-key column: kept only if the old row was readable
    unverified: dict[Target, list[int]] = field(default_factory=dict)
    old_text: dict[str, str | None] = field(default_factory=dict)  # the old row as Postgres's text output


def match(table: Table, bindings: Iterable[Binding], raw: dict[str, Any]) -> Change | None:
    """A wal2json change of `table` with the bindings it passes, or None when it passes none."""
    action = ACTIONS.get(str(raw.get("action")))
    if action is None:
        return None
    types = table.types
    record = {c["name"]: value(c.get("value"), types.get(c["name"], "")) for c in raw.get("columns", [])}
    old = {c["name"]: value(c.get("value"), types.get(c["name"], "")) for c in raw.get("identity", [])}
    raw_values = {
        c["name"]: c.get("value") for c in raw.get("columns" if action != "DELETE" else "identity", [])
    }
    keys = [raw_values.get(col) for col in table.pk]
    targets: dict[Target, list[int]] = {}
    unverified: dict[Target, list[int]] = {}
    row = old if action == "DELETE" else record
    # A DELETE with RLS goes out as its key: a filter on the key sees what the subscriber gets anyway; one
    # on another column sees the old row only if its policies pass on it (see rls.py).
    keyed = {k: v for k, v in old.items() if k in table.pk} if action == "DELETE" and table.rls else None
    for binding in bindings:
        if binding.event not in ("*", action):
            continue
        key = (binding.channel, binding.role, binding.claims_json)
        if keyed is not None and all(f.column in keyed for f in binding.filters):
            if not pgfilters.matches(binding.filters, keyed, table.types):
                continue
        elif not pgfilters.matches(binding.filters, row, table.types):
            continue
        elif keyed is not None and binding.role != "service_role":
            unverified.setdefault(key, []).append(binding.id)
        targets.setdefault(key, []).append(binding.id)
    if not targets:
        return None
    change = Change(table, action, record, old, commit_time(raw.get("timestamp")), keys, targets)
    if unverified:
        change.unverified = unverified
        change.old_text = {name: key_text(v) for name, v in raw_values.items()}
    return change


def deliver(change: Change) -> None:
    """Send a change to each channel it still targets, with the columns the channel's role may select."""
    table = change.table
    for (channel, role, _claims), ids in change.targets.items():
        if channel.closed:
            continue
        visible = table.selectable.get(role)
        if visible is None:
            visible = {name for name, _ in table.columns}
        data: dict[str, object] = {
            "schema": table.schema,
            "table": table.name,
            "commit_timestamp": change.commit,
            "type": change.action,
            "columns": [{"name": n, "type": t} for n, t in table.columns if n in visible],
            "errors": None,
        }
        if not table.pk and change.action != "DELETE":
            data["errors"] = ["Error 400: Bad Request, no primary key"]
        elif change.action in ("INSERT", "UPDATE"):
            data["record"] = {k: v for k, v in change.record.items() if k in visible}
        if change.action in ("UPDATE", "DELETE"):
            old = change.old
            if change.action == "DELETE" and table.rls:
                old = {k: v for k, v in old.items() if k in table.pk}
            data["old_record"] = {k: v for k, v in old.items() if k in visible}
        channel.socket.send_frame(
            Frame(channel.topic, "postgres_changes", {"ids": ids, "data": data}, None, channel.join_ref)
        )
