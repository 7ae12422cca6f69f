"""The OpenAPI document may grow, never shrink or change: a comparer, and the baseline's refresh.

`breaking_changes(old, new)` lists what a client written against `old` could trip
over in `new`; `added(old, new)` lists what is new. Breaking:

- a path, a method, a response status, a response header, a content type, a
  component schema, a property, a parameter or a request body removed;
- a type or format changed, an enum value removed, a const changed, a
  security requirement changed, a variant of anyOf/oneOf removed;
- on a request (parameters, bodies): a required parameter, body or property
  that appears, an optional one that becomes required, a limit that tightens
  (minLength, maximum, pattern, ...);
- on a response: a required property that disappears (becomes optional), a
  type that widens (string -> string or null), a variant added to anyOf/oneOf.

Descriptions, titles, examples and operation ids may change; everything else
may be added.

The committed copy is tests/openapi/baseline.json (tests/openapi/test_compatibility.py
compares the served /openapi.json with it). When an addition is intended:

    .venv/bin/python -m tests.support.openapi            # what changed; exit 1 if anything breaks
    .venv/bin/python -m tests.support.openapi --write    # refresh the copy (refused if anything breaks)

`--write --force` refreshes it even then: a deliberate break of the public API,
to be said in the commit message.
"""

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.support.environment import PROJECT_ROOT

BASELINE = PROJECT_ROOT / "tests" / "openapi" / "baseline.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Limits a request may loosen but not tighten: (keyword, True when a larger value is looser).
LIMITS = {
    "maxLength": True,
    "maxItems": True,
    "maxProperties": True,
    "maximum": True,
    "exclusiveMaximum": True,
    "minLength": False,
    "minItems": False,
    "minProperties": False,
    "minimum": False,
    "exclusiveMinimum": False,
}

Direction = Literal["request", "response"]
Document = dict[str, Any]
Schema = dict[str, Any]
Parameters = dict[tuple[str, str], Document]  # by (name, in)


def render(document: Document) -> str:
    """The committed form: pretty-printed, keys sorted, one newline at the end."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def load_baseline() -> Document:
    document: Document = json.loads(BASELINE.read_text())
    return document


def breaking_changes(old: Document, new: Document) -> list[str]:
    return _Comparison(old, new).run().breaking


def added(old: Document, new: Document) -> list[str]:
    return _Comparison(old, new).run().added


@dataclass
class _Comparison:
    old: Document
    new: Document
    breaking: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    _seen: set[tuple[str, str, str]] = field(default_factory=set)

    def run(self) -> "_Comparison":
        old_paths, new_paths = self.old.get("paths", {}), self.new.get("paths", {})
        for path in _added(old_paths, new_paths):
            self.added.append(f"path {path}")
        for path, old_item in old_paths.items():
            if path not in new_paths:
                self.breaking.append(f"path {path} removed")
                continue
            new_item = new_paths[path]
            for method in METHODS:
                where = f"{method.upper()} {path}"
                if method in old_item and method not in new_item:
                    self.breaking.append(f"{where} removed")
                elif method in old_item:
                    self._operation(where, old_item[method], new_item[method], old_item, new_item)
                elif method in new_item:
                    self.added.append(where)
        old_schemas = self.old.get("components", {}).get("schemas", {})
        new_schemas = self.new.get("components", {}).get("schemas", {})
        self.breaking += [f"schema {name} removed" for name in old_schemas if name not in new_schemas]
        self.added += [f"schema {name}" for name in _added(old_schemas, new_schemas)]
        return self

    # ---- operations ----------------------------------------------------------------

    def _operation(self, where: str, old: Document, new: Document, old_item: Document, new_item: Document) -> None:
        if old.get("security", self.old.get("security")) != new.get("security", self.new.get("security")):
            self.breaking.append(f"{where}: security requirements changed")
        self._parameters(where, _parameters(old_item, old), _parameters(new_item, new))
        self._request_body(where, old.get("requestBody"), new.get("requestBody"))
        old_responses, new_responses = old.get("responses", {}), new.get("responses", {})
        for status, old_response in old_responses.items():
            if status not in new_responses:
                self.breaking.append(f"{where}: response {status} removed")
                continue
            self._response(f"{where} -> {status}", old_response, new_responses[status])
        self.added += [f"{where}: response {status}" for status in _added(old_responses, new_responses)]

    def _parameters(
        self, where: str, old: dict[tuple[str, str], Document], new: dict[tuple[str, str], Document]
    ) -> None:
        for key, old_parameter in old.items():
            name = f"{where}: {key[1]} parameter {key[0]}"
            if key not in new:
                self.breaking.append(f"{name} removed")
                continue
            new_parameter = new[key]
            if new_parameter.get("required", False) and not old_parameter.get("required", False):
                self.breaking.append(f"{name} becomes required")
            self._schema(name, old_parameter.get("schema", {}), new_parameter.get("schema", {}), "request")
        for key in _added(old, new):
            name = f"{where}: {key[1]} parameter {key[0]}"
            if new[key].get("required", False):
                self.breaking.append(f"{name} appears, required")
            else:
                self.added.append(name)

    def _request_body(self, where: str, old: Document | None, new: Document | None) -> None:
        name = f"{where}: request body"
        if old is None:
            if new is not None and new.get("required", False):
                self.breaking.append(f"{name} appears, required")
            elif new is not None:
                self.added.append(name)
            return
        if new is None:
            self.breaking.append(f"{name} removed")
            return
        if new.get("required", False) and not old.get("required", False):
            self.breaking.append(f"{name} becomes required")
        self._content(name, old.get("content", {}), new.get("content", {}), "request")

    def _response(self, where: str, old: Document, new: Document) -> None:
        old_headers, new_headers = old.get("headers", {}), new.get("headers", {})
        for header, old_header in old_headers.items():
            if header not in new_headers:
                self.breaking.append(f"{where}: header {header} removed")
            else:
                old_schema, new_schema = old_header.get("schema", {}), new_headers[header].get("schema", {})
                self._schema(f"{where}: header {header}", old_schema, new_schema, "response")
        self.added += [f"{where}: header {header}" for header in _added(old_headers, new_headers)]
        self._content(where, old.get("content", {}), new.get("content", {}), "response")

    def _content(self, where: str, old: Document, new: Document, direction: Direction) -> None:
        for media_type, old_media in old.items():
            if media_type not in new:
                self.breaking.append(f"{where}: {media_type} removed")
            elif "schema" in old_media:
                if "schema" not in new[media_type]:
                    self.breaking.append(f"{where}: {media_type} schema removed")
                else:
                    self._schema(f"{where} {media_type}", old_media["schema"], new[media_type]["schema"], direction)
        self.added += [f"{where}: {media_type}" for media_type in _added(old, new)]

    # ---- schemas -----------------------------------------------------------------------

    def _schema(self, where: str, old: Schema, new: Schema, direction: Direction) -> None:
        old, old_ref = _resolve(self.old, old)
        new, new_ref = _resolve(self.new, new)
        if old_ref and new_ref:  # a named schema: compared once per direction (so cycles end)
            key = (old_ref, new_ref, direction)
            if key in self._seen:
                return
            self._seen.add(key)
            where = old_ref if old_ref == new_ref else f"{old_ref} (now {new_ref})"
        old_variants, new_variants = _variants(self.old, old), _variants(self.new, new)
        if len(old_variants) > 1 or len(new_variants) > 1:
            self._variants(where, old_variants, new_variants, direction)
            return
        self._type(where, old, new, direction)
        self._enum(where, old, new)
        if direction == "request":
            self._limits(where, old, new)
        self._properties(where, old, new, direction)
        if isinstance(old.get("items"), dict):
            self._schema(f"{where}[]", old["items"], new.get("items", {}), direction)
        if isinstance(old.get("additionalProperties"), dict) and isinstance(new.get("additionalProperties"), dict):
            self._schema(f"{where}{{*}}", old["additionalProperties"], new["additionalProperties"], direction)

    def _variants(self, where: str, old: list[Schema], new: list[Schema], direction: Direction) -> None:
        """anyOf/oneOf (or a plain schema as the one variant): matched by their $ref or type."""
        new_by_key = {_variant_key(self.new, variant): variant for variant in new}
        old_keys = set()
        for variant in old:
            key = _variant_key(self.old, variant)
            old_keys.add(key)
            if key not in new_by_key:
                self.breaking.append(f"{where}: no longer accepts or returns {key}")
            else:
                self._schema(where, variant, new_by_key[key], direction)
        for key in new_by_key.keys() - old_keys:
            if direction == "response":
                self.breaking.append(f"{where}: may now be {key}")
            else:
                self.added.append(f"{where}: accepts {key}")

    def _type(self, where: str, old: Schema, new: Schema, direction: Direction) -> None:
        old_types, new_types = _types(old), _types(new)
        if old_types and old_types != new_types:
            widened = direction == "request" and new_types >= old_types
            if not widened:
                self.breaking.append(f"{where}: type {sorted(old_types)} -> {sorted(new_types) or 'any'}")
        if "format" in old and old.get("format") != new.get("format"):
            self.breaking.append(f"{where}: format {old['format']} -> {new.get('format')}")
        if "const" in old and old.get("const") != new.get("const"):
            self.breaking.append(f"{where}: const {old['const']!r} -> {new.get('const')!r}")

    def _enum(self, where: str, old: Schema, new: Schema) -> None:
        if "enum" not in old:
            return
        new_values = new.get("enum")
        if new_values is None:
            self.added.append(f"{where}: any value, not only {old['enum']}")
            return
        for value in old["enum"]:
            if value not in new_values:
                self.breaking.append(f"{where}: enum value {value!r} removed")
        self.added += [f"{where}: enum value {value!r}" for value in new_values if value not in old["enum"]]

    def _limits(self, where: str, old: Schema, new: Schema) -> None:
        for keyword, larger_is_looser in LIMITS.items():
            if keyword not in new or old.get(keyword) == new[keyword]:
                continue
            if keyword not in old or (new[keyword] < old[keyword]) == larger_is_looser:
                self.breaking.append(f"{where}: {keyword} {old.get(keyword)} -> {new[keyword]}")
        if "pattern" in new and old.get("pattern") != new["pattern"]:
            self.breaking.append(f"{where}: pattern {old.get('pattern')!r} -> {new['pattern']!r}")

    def _properties(self, where: str, old: Schema, new: Schema, direction: Direction) -> None:
        old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        for name, old_property in old_properties.items():
            if name not in new_properties:
                self.breaking.append(f"{where}.{name} removed")
                continue
            if direction == "request" and name in new_required - old_required:
                self.breaking.append(f"{where}.{name} becomes required")
            if direction == "response" and name in old_required - new_required:
                self.breaking.append(f"{where}.{name} is no longer always there (not required)")
            self._schema(f"{where}.{name}", old_property, new_properties[name], direction)
        for name in _added(old_properties, new_properties):
            if direction == "request" and name in new_required:
                self.breaking.append(f"{where}.{name} appears, required")
            else:
                self.added.append(f"{where}.{name}")


# ---- pieces -----------------------------------------------------------------------------


def _added(old: Iterable[Any], new: Iterable[Any]) -> list[Any]:
    old_keys = set(old)
    return [key for key in new if key not in old_keys]


def _parameters(path_item: Document, operation: Document) -> Parameters:
    """The operation's parameters by (name, in), the path's own included."""
    parameters = {(p["name"], p["in"]): p for p in path_item.get("parameters", [])}
    parameters.update({(p["name"], p["in"]): p for p in operation.get("parameters", [])})
    return parameters


def _resolve(document: Document, schema: Schema) -> tuple[Schema, str]:
    """The schema a $ref (or a lone allOf around one) points at, and its name ("" if none)."""
    name = ""
    for _ in range(32):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = document.get("components", {}).get("schemas", {}).get(name, {})
        elif len(schema.get("allOf", [])) == 1:
            schema = schema["allOf"][0]
        else:
            break
    return schema, name


def _variants(document: Document, schema: Schema) -> list[Schema]:
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return list(schema[combinator])
    return [schema]


def _variant_key(document: Document, variant: Schema) -> str:
    resolved, name = _resolve(document, variant)
    if name:
        return name
    types = _types(resolved)
    return " or ".join(sorted(types)) if types else json.dumps(resolved, sort_keys=True)


def _types(schema: Schema) -> set[str]:
    declared = schema.get("type")
    if declared is None:
        return set()
    return {declared} if isinstance(declared, str) else set(declared)


# ---- the served document, and the refresh ---------------------------------------------------


def current_document() -> Document:
    """/openapi.json as the app serves it, rendered without a database (the engine
    connects lazily)."""
    from app.core.config import Settings
    from app.main import create_app

    settings = Settings(
        environment="test", log_level="WARNING", database_url="postgresql+psycopg2://nobody@/never-connected"
    )
    document: Document = create_app(settings).openapi()
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare the app's OpenAPI document with tests/openapi/baseline.json; --write refreshes it."
    )
    parser.add_argument("--write", action="store_true", help="write the current document as the baseline")
    parser.add_argument("--force", action="store_true", help="with --write: even when something breaks")
    args = parser.parse_args(argv)
    baseline, current = load_baseline(), current_document()
    comparison = _Comparison(baseline, current).run()
    for line in comparison.added:
        print(f"added:    {line}")
    for line in comparison.breaking:
        print(f"BREAKING: {line}")
    if not args.write:
        return 1 if comparison.breaking else 0
    if comparison.breaking and not args.force:
        print("not written: the changes above break clients (--force writes it anyway)", file=sys.stderr)
        return 1
    BASELINE.write_text(render(current))
    print(f"wrote {BASELINE.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
