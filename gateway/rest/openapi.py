"""GET /rest/v1/: a Swagger 2.0 document of the exposed tables, views and functions
(https://docs.postgrest.org/en/v14/references/api/openapi.html)."""

from __future__ import annotations

import orjson

from busymate.gateway.rest.schema import Column, SchemaCache

_FORMATS = {
    "integer": ("integer", "int32"),
    "bigint": ("integer", "int64"),
    "smallint": ("integer", "int16"),
    "boolean": ("boolean", None),
    "real": ("number", "float"),
    "double precision": ("number", "double"),
    "numeric": ("number", None),
    "jsonb": ("object", None),
    "json": ("object", None),
}


def _property(col: Column) -> dict[str, object]:
    kind, fmt = _FORMATS.get(col.type, ("string", None))
    prop: dict[str, object] = {"type": "array" if col.type.endswith("[]") else kind, "format": col.type}
    if col.type.endswith("[]"):
        prop["items"] = {"type": "string"}
    if fmt and kind != "object":
        prop["format"] = col.type
    if col.default is not None:
        prop["default"] = col.default
    return prop


def document(cache: SchemaCache, schema: str) -> bytes:
    """The OpenAPI (Swagger 2.0) document for `schema`."""
    paths: dict[str, object] = {
        "/": {
            "get": {
                "produces": ["application/openapi+json", "application/json"],
                "responses": {"200": {"description": "OK"}},
                "summary": "OpenAPI description (this document)",
                "tags": ["Introspection"],
            }
        }
    }
    definitions: dict[str, object] = {}
    for (nsp, name), rel in sorted(cache.relations.items(), key=lambda kv: kv[0]):
        if nsp != schema:
            continue
        ok = {"200": {"description": "OK"}, "206": {"description": "Partial Content"}}
        paths[f"/{name}"] = {
            "get": {"tags": [name], "responses": ok, "parameters": [{"$ref": "#/parameters/select"}]},
            "post": {"tags": [name], "responses": {"201": {"description": "Created"}}},
            "patch": {"tags": [name], "responses": {"204": {"description": "No Content"}}},
            "delete": {"tags": [name], "responses": {"204": {"description": "No Content"}}},
        }
        definitions[name] = {
            "type": "object",
            "required": [c.name for c in rel.columns.values() if not c.nullable and c.default is None],
            "properties": {c.name: _property(c) for c in rel.columns.values()},
            **({"description": rel.comment} if rel.comment else {}),
        }
    for (nsp, name), fns in sorted(cache.functions.items(), key=lambda kv: kv[0]):
        if nsp != schema:
            continue
        fn = fns[0]
        entry: dict[str, object] = {
            "post": {
                "tags": ["(rpc) " + name],
                "responses": {"200": {"description": "OK"}},
                **({"summary": fn.comment} if fn.comment else {}),
            },
        }
        if fn.volatility != "v":
            entry["get"] = {"tags": ["(rpc) " + name], "responses": {"200": {"description": "OK"}}}
        paths[f"/rpc/{name}"] = entry
    doc = {
        "swagger": "2.0",
        "info": {
            "title": "Busymate REST API",
            "description": "PostgREST-compatible API of the Busymate database",
            "version": "14",
        },
        "basePath": "/",
        "schemes": ["http"],
        "consumes": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "produces": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "paths": paths,
        "definitions": definitions,
        "parameters": {
            "select": {
                "name": "select",
                "in": "query",
                "required": False,
                "type": "string",
                "description": "Filtering Columns",
            }
        },
    }
    return orjson.dumps(doc)
