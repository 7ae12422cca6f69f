"""The public API only grows: the served /openapi.json against the committed copy.

tests/openapi/baseline.json is the document as it was served when this test was
written; a removal or a change fails here, an addition passes. When an addition is
intended, refresh the copy and commit it with the change:

    .venv/bin/python -m tests.support.openapi --write

(tests/support/openapi.py says what counts as a break.)
"""

import copy

import pytest

from tests.support.openapi import BASELINE, added, breaking_changes, load_baseline, render


def test_served_document_keeps_everything_the_baseline_has(client):
    served = client.get("/openapi.json").json()
    breaks = breaking_changes(load_baseline(), served)
    assert not breaks, (
        "the public API changed; if this is intended, say so in the commit and refresh "
        "tests/openapi/baseline.json (python -m tests.support.openapi --write --force):\n" + "\n".join(breaks)
    )


def test_baseline_is_committed_pretty_printed_with_sorted_keys():
    assert BASELINE.read_text() == render(load_baseline())


# ---- the comparer, on small hand-made documents -------------------------------------

ITEM = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "maxLength": 50},
        "status": {"$ref": "#/components/schemas/Status"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["id", "name", "status"],
}
NEW_ITEM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 50},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name"],
}
DOCUMENT = {
    "openapi": "3.1.0",
    "paths": {
        "/items/{item_id}": {
            "get": {
                "parameters": [
                    {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    {"name": "verbose", "in": "query", "required": False, "schema": {"type": "boolean"}},
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "headers": {"X-Total-Count": {"schema": {"type": "integer"}}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}},
                    },
                    "404": {"description": "Not found"},
                },
            },
        },
        "/items": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}},
                },
                "responses": {"201": {"description": "Created"}},
            }
        },
    },
    "components": {
        "schemas": {
            "Item": ITEM,
            "NewItem": NEW_ITEM,
            "Status": {"type": "string", "enum": ["OPEN", "CLOSED"]},
        }
    },
}

ITEM_PATH = ("paths", "/items/{item_id}", "get")
POST_PATH = ("paths", "/items", "post")
ITEM_SCHEMA = ("components", "schemas", "Item")
NEW_ITEM_SCHEMA = ("components", "schemas", "NewItem")


def changed(*path, change):
    """DOCUMENT with change(node) applied to the node at path (a copy)."""
    document = copy.deepcopy(DOCUMENT)
    node = document
    for key in path:
        node = node[key]
    change(node)
    return document


BREAKING = {
    "path removed": changed("paths", change=lambda paths: paths.pop("/items")),
    "method removed": changed("paths", "/items", change=lambda item: item.pop("post")),
    "parameter removed": changed(*ITEM_PATH, change=lambda op: op["parameters"].pop(1)),
    "parameter type changed": changed(
        *ITEM_PATH, change=lambda op: op["parameters"][0].update(schema={"type": "string"})
    ),
    "required query parameter appears": changed(
        *ITEM_PATH,
        change=lambda op: op["parameters"].append(
            {"name": "fields", "in": "query", "required": True, "schema": {"type": "string"}}
        ),
    ),
    "optional parameter becomes required": changed(
        *ITEM_PATH, change=lambda op: op["parameters"][1].update(required=True)
    ),
    "response status removed": changed(*ITEM_PATH, "responses", change=lambda responses: responses.pop("404")),
    "response header removed": changed(*ITEM_PATH, "responses", "200", change=lambda r: r.pop("headers")),
    "response content removed": changed(*ITEM_PATH, "responses", "200", change=lambda r: r.pop("content")),
    "schema removed": changed("components", "schemas", change=lambda schemas: schemas.pop("Status")),
    "property removed from a response": changed(*ITEM_SCHEMA, "properties", change=lambda p: p.pop("id")),
    "property type changed": changed(*ITEM_SCHEMA, "properties", "id", change=lambda p: p.update(type="string")),
    "response property no longer required": changed(*ITEM_SCHEMA, change=lambda s: s["required"].remove("id")),
    "response property may now be null": changed(
        *ITEM_SCHEMA, "properties", change=lambda p: p.update(id={"anyOf": [{"type": "integer"}, {"type": "null"}]})
    ),
    "enum value removed": changed("components", "schemas", "Status", change=lambda s: s["enum"].remove("CLOSED")),
    "required request property appears": changed(
        *NEW_ITEM_SCHEMA,
        change=lambda s: (s["properties"].update(owner={"type": "string"}), s["required"].append("owner")),
    ),
    "request property becomes required": changed(*NEW_ITEM_SCHEMA, change=lambda s: s["required"].append("note")),
    "request limit tightened": changed(*NEW_ITEM_SCHEMA, "properties", "name", change=lambda p: p.update(maxLength=20)),
    "request no longer accepts null": changed(
        *NEW_ITEM_SCHEMA, "properties", "note", change=lambda p: p.update(anyOf=[{"type": "string"}])
    ),
    "request body removed": changed(*POST_PATH, change=lambda op: op.pop("requestBody")),
}

ADDITIONS = {
    "path added": changed("paths", change=lambda paths: paths.update({"/tags": {"get": {"responses": {}}}})),
    "method added": changed("paths", "/items", change=lambda item: item.update(get={"responses": {}})),
    "optional parameter added": changed(
        *ITEM_PATH,
        change=lambda op: op["parameters"].append(
            {"name": "fields", "in": "query", "required": False, "schema": {"type": "string"}}
        ),
    ),
    "response status added": changed(
        *ITEM_PATH, "responses", change=lambda responses: responses.update({"429": {"description": "Slow down"}})
    ),
    "response property added, required": changed(
        *ITEM_SCHEMA, change=lambda s: (s["properties"].update(owner={"type": "string"}), s["required"].append("owner"))
    ),
    "optional request property added": changed(
        *NEW_ITEM_SCHEMA, "properties", change=lambda p: p.update(tags={"type": "array", "items": {"type": "string"}})
    ),
    "enum value added": changed("components", "schemas", "Status", change=lambda s: s["enum"].append("ARCHIVED")),
    "schema added": changed("components", "schemas", change=lambda schemas: schemas.update(Tag={"type": "string"})),
    "request limit loosened": changed(*NEW_ITEM_SCHEMA, "properties", "name", change=lambda p: p.update(maxLength=99)),
    "request accepts null too": changed(
        *NEW_ITEM_SCHEMA,
        "properties",
        change=lambda p: p.update(name={"anyOf": [{"type": "string", "maxLength": 50}, {"type": "null"}]}),
    ),
    "description changed": changed(*ITEM_PATH, "responses", "404", change=lambda r: r.update(description="Gone")),
}


def test_a_document_compared_with_itself_has_no_change():
    assert breaking_changes(DOCUMENT, copy.deepcopy(DOCUMENT)) == []
    assert added(DOCUMENT, copy.deepcopy(DOCUMENT)) == []


@pytest.mark.parametrize("new", BREAKING.values(), ids=BREAKING.keys())
def test_comparer_fails_a_removal_or_a_change(new):
    assert breaking_changes(DOCUMENT, new) != []


@pytest.mark.parametrize("new", ADDITIONS.values(), ids=ADDITIONS.keys())
def test_comparer_passes_an_addition(new):
    assert breaking_changes(DOCUMENT, new) == []


def test_comparer_names_what_broke():
    new = changed(*ITEM_SCHEMA, "properties", change=lambda p: p.pop("id"))
    new["paths"].pop("/items")
    assert sorted(breaking_changes(DOCUMENT, new)) == ["Item.id removed", "path /items removed"]
