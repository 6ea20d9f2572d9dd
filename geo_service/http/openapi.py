"""The OpenAPI document also as OpenAPI 3.0, for clients that read only 3.0 (OWSLib's `api()`,
GDAL's OAPIF driver prefers it, most OGC validation tools).

FastAPI writes OpenAPI 3.1, whose schemas are JSON Schema 2020-12; OpenAPI 3.0 has its own
subset of an older draft. The differences FastAPI's output uses are rewritten here: a null
alternative becomes `nullable`, `examples` lists become `example`, `const` becomes a one-value
`enum`, numeric exclusive bounds become boolean ones, a `$ref` with siblings is wrapped in
`allOf`, and keywords 3.0 does not know are dropped.
"""

from __future__ import annotations

from typing import Any

OPENAPI_30 = "application/vnd.oai.openapi+json;version=3.0"
OPENAPI_31 = "application/vnd.oai.openapi+json;version=3.1"

# JSON Schema keywords OpenAPI 3.0 does not have (they only add precision in 3.1)
_DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "$defs",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
        "prefixItems",
        "unevaluatedProperties",
        "unevaluatedItems",
        "dependentRequired",
        "dependentSchemas",
        "propertyNames",
        "if",
        "then",
        "else",
        "$comment",
    }
)
# Members of an OpenAPI object whose values are schemas (or maps / lists of them)
_SCHEMA_KEYS = frozenset({"schema"})
_SCHEMA_MAP_KEYS = frozenset({"properties", "schemas", "patternProperties"})
_SCHEMA_LIST_KEYS = frozenset({"allOf", "anyOf", "oneOf"})
_SUBSCHEMA_KEYS = frozenset({"items", "not", "additionalProperties"})


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null" and len(schema) == 1


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, {type: null}]` → X with `nullable: true` (a `$ref` goes into `allOf`)."""
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if not isinstance(options, list) or not any(_is_null(o) for o in options):
            continue
        rest = [o for o in options if not _is_null(o)]
        outer = {k: v for k, v in schema.items() if k != key}
        if len(rest) == 1:
            inner = rest[0]
            merged = {"allOf": [inner]} if "$ref" in inner else dict(inner)
        else:
            merged = {key: rest}
        return {**merged, **outer, "nullable": True}
    types = schema.get("type")
    if isinstance(types, list):
        named = [t for t in types if t != "null"]
        schema = dict(schema)
        if len(named) == 1:
            schema["type"] = named[0]
        else:
            schema.pop("type")
            schema["anyOf"] = [{"type": t} for t in named]
        if "null" in types:
            schema["nullable"] = True
    return schema


def downgrade_schema(schema: Any) -> Any:
    """A JSON Schema (2020-12, as in OpenAPI 3.1) as an OpenAPI 3.0 Schema Object."""
    if not isinstance(schema, dict):
        return schema
    schema = _nullable(schema)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {name: downgrade_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
            out[key] = [downgrade_schema(sub) for sub in value]
        elif key in _SUBSCHEMA_KEYS:
            out[key] = downgrade_schema(value)
        else:
            out[key] = value
    if "$ref" in out and len(out) > 1:  # 3.0 ignores a $ref's siblings: keep them apart
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


def _walk(node: Any) -> Any:
    """Every part of an OpenAPI document, with the schemas in it downgraded."""
    if isinstance(node, list):
        return [_walk(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_KEYS:
            out[key] = downgrade_schema(value)
        elif key == "schemas" and isinstance(value, dict):
            out[key] = {name: downgrade_schema(sub) for name, sub in value.items()}
        else:
            out[key] = _walk(value)
    return out


def openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document FastAPI made, as OpenAPI 3.0.3."""
    converted = _walk({k: v for k, v in document.items() if k not in ("jsonSchemaDialect",)})
    converted["openapi"] = "3.0.3"
    converted.pop("webhooks", None)
    info = dict(converted.get("info", {}))
    info.pop("summary", None)
    if isinstance(info.get("license"), dict):
        info["license"] = {k: v for k, v in info["license"].items() if k != "identifier"}
    converted["info"] = info
    return converted
