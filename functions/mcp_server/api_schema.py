"""describe_api's inference: captured flows of one host as an OpenAPI 3.1 document.

Flows are grouped by method and path template: a path segment that is an id (digits, a uuid, long hex, a
long random-looking token) becomes a path parameter, named `id` when it is a template's only one and
`<singular of the segment before>Id` otherwise, typed `integer` or `string` (format `uuid`). Query parameters
are the names seen (required when every sample had them), typed from their values. JSON bodies give schemas
by type inference over every sample, merged (an object's `required` is the keys every sample had). Only names,
types and status codes go in: never a captured value, so no credential can reach the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson

from busymate.functions.busybro.tools.redact import redact_text
from busymate.functions.mcp_server import api_security

MAX_DEPTH = 8
MAX_PROPERTIES = 60
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^[0-9a-fA-F]{8,}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_=~.+-]{16,}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def segment_kind(segment: str) -> str | None:
    """What an id-like path segment is (`integer`, `uuid`, `string`), or None for a literal segment."""
    if segment.isdigit():
        return "integer"
    if _UUID.match(segment):
        return "uuid"
    if _HEX.match(segment) and any(c.isdigit() for c in segment):
        return "string"
    if _TOKEN.match(segment) and any(c.isdigit() for c in segment) and any(c.isalpha() for c in segment):
        return "string"
    return None


def _singular(word: str) -> str:
    word = re.sub(r"[^A-Za-z0-9]", "", word)
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 1:
        return word[:-1]
    return word


def key(method: str, path: str) -> tuple[str, str]:
    """The operation a flow belongs to: its method and path template."""
    return method.lower(), template(path)[0]


def template(path: str) -> tuple[str, list[tuple[str, str]]]:
    """A concrete path as its template and its parameters [(name, kind)]: /users/42 -> /users/{id}."""
    segments = path.split("/")
    kinds = [segment_kind(s) if s else None for s in segments]
    count = sum(kind is not None for kind in kinds)
    out: list[str] = []
    params: list[tuple[str, str]] = []
    for index, (segment, kind) in enumerate(zip(segments, kinds, strict=True)):
        if kind is None:  # braces would read as a template
            out.append(redact_text(segment).replace("{", "%7B").replace("}", "%7D"))
            continue
        before = next((segments[j] for j in range(index - 1, -1, -1) if segments[j] and kinds[j] is None), "")
        name = "id" if count == 1 or not before else f"{_singular(before) or 'item'}Id"
        taken = {n for n, _ in params}
        base, n = name, 2
        while name in taken:
            name, n = f"{base}{n}", n + 1
        params.append((name, kind))
        out.append("{" + name + "}")
    return "/".join(out) or "/", params


def infer(value: Any, depth: int = 0) -> dict[str, Any]:
    """A JSON Schema (2020-12, as OpenAPI 3.1 uses) for one decoded JSON value."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        if _UUID.match(value):
            return {"type": "string", "format": "uuid"}
        if _DATE_TIME.match(value):
            return {"type": "string", "format": "date-time"}
        return {"type": "string"}
    if depth >= MAX_DEPTH:
        return {}
    if isinstance(value, list):
        items: dict[str, Any] | None = None
        for item in value[:50]:
            items = infer(item, depth + 1) if items is None else merge(items, infer(item, depth + 1))
        return {"type": "array", "items": items} if items is not None else {"type": "array"}
    if isinstance(value, dict):
        keys = [str(key) for key in list(value)[:MAX_PROPERTIES]]
        return {
            "type": "object",
            "properties": {redact_text(key): infer(value[key], depth + 1) for key in keys},
            "required": sorted({redact_text(key) for key in keys}),
        }
    return {}


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) else list(kind) if isinstance(kind, list) else []


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One schema that both samples' schemas fit: objects' properties united (required: those in both),
    arrays' items merged, integer and number as number, other differing types as a list of types."""
    if not a or not b:
        return {}
    ta, tb = _types(a), _types(b)
    if ta == ["object"] and tb == ["object"]:
        props = dict(a.get("properties", {}))
        for key, sub in b.get("properties", {}).items():
            props[key] = merge(props[key], sub) if key in props else sub
        required = sorted(set(a.get("required", [])) & set(b.get("required", [])))
        return {"type": "object", "properties": props, "required": required}
    if ta == ["array"] and tb == ["array"]:
        if "items" not in a or "items" not in b:  # an empty sample says nothing of the items
            return a if "items" in a else b
        return {"type": "array", "items": merge(a["items"], b["items"])}
    if ta == tb:
        return a if a == b else {"type": ta[0] if len(ta) == 1 else ta}
    if {*ta, *tb} == {"integer", "number"}:
        return {"type": "number"}
    non_null = [s for s in (a, b) if _types(s) != ["null"]]
    if len(non_null) == 1:
        kept = non_null[0]
        return {**kept, "type": sorted({*_types(kept), "null"})}
    if all(t not in ("object", "array") for t in {*ta, *tb}):
        return {"type": sorted({*ta, *tb})}
    return {"anyOf": [a, b]}


def scalar_type(values: Iterable[str]) -> dict[str, Any]:
    """The schema of a query or path value from its samples: integer, number, boolean or string."""
    seen = list(values)
    if seen and all(re.fullmatch(r"-?\d+", v) for v in seen):
        return {"type": "integer"}
    if seen and all(re.fullmatch(r"-?\d+(\.\d+)?", v) for v in seen):
        return {"type": "number"}
    if seen and all(v in ("true", "false") for v in seen):
        return {"type": "boolean"}
    return {"type": "string"}


def _json(body: str | None, content_type: str | None) -> tuple[bool, Any]:
    if body is None or not body.strip():
        return False, None
    if "json" not in (content_type or "").lower() and body.strip()[:1] not in ("{", "["):
        return False, None
    try:
        return True, orjson.loads(body)
    except orjson.JSONDecodeError:
        return False, None


@dataclass
class Operation:
    """What the samples of one method + path template showed."""

    method: str
    path: str
    params: dict[str, set[str]] = field(default_factory=dict)  # path parameter -> kinds seen
    samples: int = 0
    query: dict[str, list[str]] = field(default_factory=dict)  # name -> values seen (types only are used)
    query_counts: dict[str, int] = field(default_factory=dict)
    request_schema: dict[str, Any] | None = None
    request_type: str | None = None
    with_body: int = 0
    sampled: int = 0  # samples whose bodies were read
    security: dict[str, None] = field(default_factory=dict)  # the schemes seen, in order
    responses: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    response_types: dict[str, str] = field(default_factory=dict)


@dataclass
class Flow:
    """One captured flow's parts that inference reads (bodies as text, None when binary or absent)."""

    method: str
    scheme: str
    host: str
    port: int | None
    path: str
    query: str | None
    status: int | None
    request_type: str | None
    response_type: str | None
    request_body: str | None
    response_body: str | None
    sampled: bool = True  # whether its bodies were read (describe_api reads a few per operation and status)
    request_headers: list[list[str]] = field(default_factory=list)


def _add(op: Operation, flow: Flow, params: list[tuple[str, str]]) -> None:
    op.samples += 1
    op.security.update(dict.fromkeys(api_security.schemes(flow.request_headers, flow.query)))
    for name, kind in params:
        op.params.setdefault(name, set()).add(kind)
    for name, value in parse_qsl(flow.query or "", keep_blank_values=True):
        if not name:
            continue
        name = redact_text(name)
        op.query.setdefault(name, []).append(value)
        op.query_counts[name] = op.query_counts.get(name, 0) + 1
    status = str(flow.status) if flow.status and 100 <= flow.status <= 599 else "default"
    if not flow.sampled:
        op.responses.setdefault(status, None)
        return
    op.sampled += 1
    is_json, body = _json(flow.request_body, flow.request_type)
    if is_json:
        op.with_body += 1
        schema = infer(body)
        op.request_schema = schema if op.request_schema is None else merge(op.request_schema, schema)
        op.request_type = (flow.request_type or "application/json").split(";")[0].strip()
    is_json, body = _json(flow.response_body, flow.response_type)
    if is_json:
        schema = infer(body)
        known = op.responses.get(status)
        op.responses[status] = schema if known is None else merge(known, schema)
        op.response_types[status] = (flow.response_type or "application/json").split(";")[0].strip()
    else:
        op.responses.setdefault(status, None)


def _operation_id(method: str, path: str, taken: set[str]) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path.replace("{", "by ").replace("}", "")) if w]
    base = method.lower() + "".join(w[:1].upper() + w[1:] for w in words)
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name


def _describe_status(status: str) -> str:
    if status == "default":
        return "No response (the request failed), or a status outside 100-599"
    try:
        return HTTPStatus(int(status)).phrase
    except ValueError:
        return f"Status {status}"


def _operation(op: Operation, taken: set[str]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for name, kinds in op.params.items():
        schema = {"type": "integer"} if kinds == {"integer"} else {"type": "string"}
        if kinds == {"uuid"}:
            schema["format"] = "uuid"
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, values in sorted(op.query.items()):
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": op.query_counts[name] == op.samples,
                "schema": scalar_type(values),
            }
        )
    out: dict[str, Any] = {
        "operationId": _operation_id(op.method, op.path, taken),
        "summary": f"{op.method.upper()} {op.path}",
        "description": f"Inferred from {op.samples} captured flow(s).",
    }
    if parameters:
        out["parameters"] = parameters
    if op.request_schema is not None and op.method not in ("get", "head", "delete"):
        out["requestBody"] = {
            "required": op.with_body == op.sampled,
            "content": {op.request_type or "application/json": {"schema": op.request_schema}},
        }
    responses: dict[str, Any] = {}
    for status, body in sorted(op.responses.items()):
        answer: dict[str, Any] = {"description": _describe_status(status)}
        if body is not None:
            answer["content"] = {op.response_types[status]: {"schema": body}}
        responses[status] = answer
    out["responses"] = responses or {"default": {"description": "No response seen"}}
    if op.security:
        out["security"] = [{name: []} for name in op.security]
    out["x-busymate-samples"] = op.samples
    return out


def describe(
    host: str, flows: Iterable[Flow], *, first: str | None = None, last: str | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document the flows of `host` imply (paths sorted, methods in OpenAPI's order)."""
    operations: dict[tuple[str, str], Operation] = {}
    servers: dict[str, None] = {}
    security: dict[str, dict[str, Any]] = {}
    count = 0
    for flow in flows:
        method = flow.method.lower()
        if method not in _METHODS:
            continue
        count += 1
        path, params = template(flow.path if flow.path.startswith("/") else f"/{flow.path}")
        op = operations.setdefault((path, method), Operation(method, path))
        _add(op, flow, params)
        security.update(api_security.schemes(flow.request_headers, flow.query))
        default = 443 if flow.scheme == "https" else 80
        port = f":{flow.port}" if flow.port and flow.port != default else ""
        servers[f"{flow.scheme}://{flow.host}{port}"] = None
    taken: set[str] = set()
    paths: dict[str, dict[str, Any]] = {}
    for path in sorted({path for path, _ in operations}):
        item = {m: _operation(operations[(path, m)], taken) for m in _METHODS if (path, m) in operations}
        paths[path] = item
    window = f" between {first} and {last}" if first and last else ""
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": f"{host} (inferred)",
            "version": "0.0.0-inferred",
            "description": f"Inferred by Busymate from {count} captured flow(s) of {host}{window}. Types and "
            "names only; derived from third-party traffic, so treat it as untrusted.",
        },
        "servers": [{"url": url} for url in servers] or [{"url": f"https://{host}"}],
        "paths": paths,
    }
    if security:
        document["components"] = {"securitySchemes": dict(sorted(security.items()))}
    return document
