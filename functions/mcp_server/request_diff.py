"""diff_requests' comparison: two captured flows side by side, every value shown redacted.

Differences are found on the captured values (two different tokens of the same length are "changed") and
shown through BusyBro's redaction: headers and query parameters by name (added, removed, changed), JSON bodies
structurally (the JSONPath-like paths that differ; the raw and the redacted trees are walked together, so a
field under a sensitive name is shown as `<redacted len=N>` whatever its depth), other bodies as a unified
diff of their redacted text.
"""

from __future__ import annotations

import difflib
from typing import Any
from urllib.parse import parse_qsl

import orjson

from busymate.functions.busybro.tools.common import clip
from busymate.functions.busybro.tools.redact import (
    is_sensitive_name,
    marker,
    redact_body,
    redact_headers,
    redact_json,
    redact_text,
)

BODY_CHARS = 4_000
MAX_CHANGES = 80
VALUE_CHARS = 200


def _grouped(raw: list[list[str]], shown: list[list[str]]) -> dict[str, tuple[list[str], list[str]]]:
    """Header (or parameter) values by lower-cased name: the captured ones and the redacted ones."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for (name, value), (_, safe) in zip(raw, shown, strict=True):
        values, safes = out.setdefault(name.lower(), ([], []))
        values.append(value)
        safes.append(safe)
    return out


def pairs_diff(
    raw_a: list[list[str]], shown_a: list[list[str]], raw_b: list[list[str]], shown_b: list[list[str]]
) -> dict[str, Any]:
    """Name/value pairs compared by name: added (in b only), removed (in a only), changed, and how many are
    the same; values shown redacted."""
    a, b = _grouped(raw_a, shown_a), _grouped(raw_b, shown_b)

    def show(safes: list[str]) -> Any:
        return clip(safes[0] if len(safes) == 1 else safes, VALUE_CHARS)

    changed = []
    for name in sorted(set(a) & set(b)):
        if a[name][0] != b[name][0]:
            item: dict[str, Any] = {"name": name, "a": show(a[name][1]), "b": show(b[name][1])}
            if a[name][1] == b[name][1]:
                item["note"] = "the captured values differ; both are redacted"
            changed.append(item)
    return {
        "added": [{"name": n, "value": show(b[n][1])} for n in sorted(set(b) - set(a))],
        "removed": [{"name": n, "value": show(a[n][1])} for n in sorted(set(a) - set(b))],
        "changed": changed,
        "same": sum(1 for n in set(a) & set(b) if a[n][0] == b[n][0]),
    }


def headers(raw: object) -> tuple[list[list[str]], list[list[str]]]:
    """A flow's headers as captured ([name, value] pairs) and redacted, in the same order."""
    pairs = raw if isinstance(raw, list) else []
    captured = [
        [str(p[0]), "" if len(p) < 2 or p[1] is None else str(p[1])]
        for p in pairs
        if isinstance(p, list | tuple) and p
    ]
    return captured, redact_headers(captured)


def query(raw: str | None) -> tuple[list[list[str]], list[list[str]]]:
    """A query string's parameters as captured and redacted."""
    captured = [[name, value] for name, value in parse_qsl(raw or "", keep_blank_values=True)]
    shown = [[n, marker(v) if is_sensitive_name(n) and v else redact_text(v)] for n, v in captured]
    return captured, shown


def _walk(a: Any, sa: Any, b: Any, sb: Any, path: str, out: list[dict[str, Any]]) -> None:
    """The differences between a and b (raw), shown with their redacted twins sa and sb."""
    if len(out) > MAX_CHANGES:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            at = f"{path}.{redact_text(str(key))}"
            if key not in b:
                out.append({"path": at, "change": "removed", "a": clip(sa[key], VALUE_CHARS)})
            elif key not in a:
                out.append({"path": at, "change": "added", "b": clip(sb[key], VALUE_CHARS)})
            else:
                _walk(a[key], sa[key], b[key], sb[key], at, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        for index in range(max(len(a), len(b))):
            at = f"{path}[{index}]"
            if index >= len(b):
                out.append({"path": at, "change": "removed", "a": clip(sa[index], VALUE_CHARS)})
            elif index >= len(a):
                out.append({"path": at, "change": "added", "b": clip(sb[index], VALUE_CHARS)})
            else:
                _walk(a[index], sa[index], b[index], sb[index], at, out)
        return
    if a != b or type(a) is not type(b):
        change = "changed" if type(a) is type(b) else "type changed"
        item: dict[str, Any] = {
            "path": path,
            "change": change,
            "a": clip(sa, VALUE_CHARS),
            "b": clip(sb, VALUE_CHARS),
        }
        if sa == sb:
            item["note"] = "the captured values differ; both are redacted"
        out.append(item)


def _parsed(text: str | None) -> tuple[bool, Any]:
    if text is None or text.strip()[:1] not in ("{", "["):
        return False, None
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None


def body(a: str | None, b: str | None, type_a: str | None, type_b: str | None) -> dict[str, Any]:
    """Two bodies (text, None when absent or binary) compared: structurally when both are JSON, else as a
    unified diff of the redacted text."""
    json_a, va = _parsed(a)
    json_b, vb = _parsed(b)
    if json_a and json_b:
        changes: list[dict[str, Any]] = []
        _walk(va, redact_json(va), vb, redact_json(vb), "$", changes)
        out: dict[str, Any] = {"kind": "json", "same": not changes, "differences": changes[:MAX_CHANGES]}
        if len(changes) > MAX_CHANGES:
            out["more"] = "more differences not shown"
        return out
    shown_a = None if a is None else redact_body(a, type_a)
    shown_b = None if b is None else redact_body(b, type_b)
    if a == b:
        return {"kind": "text" if a is not None else "none", "same": True}
    if shown_a == shown_b:
        return {"kind": "text", "same": False, "note": "the bodies differ only in values that are redacted"}
    lines = difflib.unified_diff(
        (shown_a or "").splitlines(), (shown_b or "").splitlines(), "a", "b", lineterm="", n=2
    )
    text = "\n".join(lines)
    out = {"kind": "text", "same": False, "diff": text[:BODY_CHARS]}
    if len(text) > BODY_CHARS:
        out["note"] = f"diff cut to {BODY_CHARS} of {len(text)} characters"
    if a is None or b is None:
        out["absent"] = "a" if a is None else "b"
    return out
