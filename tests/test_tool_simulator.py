"""The tool simulator's answer schema: patch paths enumerated from the state, bounded and grammar-safe.

The answer schema is what grammar-constrained decoding follows, so a patch it allows should pass
``apply_patch`` (no missing parent, no type change) and a string or list in it should always end.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from trustee_env.catalog import Catalog
from trustee_env.config import EndpointConfig
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.roles.tool_simulator import (
    GENERIC_OBJECT,
    RESULT_MAX_CHARS,
    ToolOutcome,
    ToolSimulator,
    outcome_schema,
    result_answer_schema,
)
from trustee_env.schemas import ToolCall, ToolSpec
from trustee_env.testing import FakeLLMServer, example_for
from trustee_env.world import PatchError, apply_patch, patch_schema, patch_targets

STATE: dict[str, Any] = {
    "orders": [
        {"id": "A", "status": "open", "total": 10, "note": None},
        {"id": "B", "status": "shipped", "total": 4.5, "tags": ["gift"]},
    ],
    "meta": {"count": 2},
    "refunds": [],
}

# Written by hand from STATE: what a patch may name, and nothing else.
EXPECTED_PATHS = {
    *{("replace", f"/orders/{i}/{f}") for i in (0, 1) for f in ("id", "status", "total")},
    ("replace", "/orders/0/note"),
    ("replace", "/orders/1/tags"),
    ("replace", "/meta/count"),
    ("add", "/orders/0/tags"),  # a field the sibling record has
    ("add", "/orders/1/note"),
    ("add", "/orders/-"),
    *{("remove", f"/orders/{i}") for i in (0, 1)},
    *{("remove", f"/orders/{i}/{f}") for i in (0, 1) for f in ("id", "status", "total")},
    ("remove", "/orders/0/note"),
    ("remove", "/orders/1/tags"),
    ("remove", "/meta/count"),
}


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return schema["items"]["anyOf"] if "anyOf" in schema.get("items", {}) else []


def _schema_paths(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (branch["properties"]["op"]["const"], path)
        for branch in _branches(schema)
        for path in branch["properties"]["path"]["enum"]
    }


def test_patch_schema_enumerates_exactly_the_valid_paths() -> None:
    schema = patch_schema(STATE)
    assert patch_targets(STATE).paths() == EXPECTED_PATHS
    assert _schema_paths(schema) == EXPECTED_PATHS
    # An empty collection gets an append only when a record shape is given (there are no siblings).
    shaped = patch_schema(STATE, new_record={"type": "object", "properties": {"id": {"type": "string"}}})
    assert _schema_paths(shaped) == EXPECTED_PATHS | {("add", "/refunds/-")}


def test_every_operation_the_schema_allows_applies_cleanly() -> None:
    """Each branch's every path, with an example of its value schema, passes apply_patch."""
    validator = Draft202012Validator(patch_schema(STATE))
    for branch in _branches(patch_schema(STATE)):
        op = branch["properties"]["op"]["const"]
        for path in branch["properties"]["path"]["enum"]:
            operation = {"op": op, "path": path}
            if "value" in branch["properties"]:
                operation["value"] = example_for(branch["properties"]["value"])
            assert validator.is_valid([operation]), operation
            apply_patch(STATE, [operation])  # raises PatchError if the schema let a bad one through


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "/users/0", "value": {"id": "U"}},  # missing parent
        {"op": "replace", "path": "/orders/2/status", "value": "x"},  # no such record
        {"op": "replace", "path": "/orders/A/status", "value": "x"},  # a key where an index belongs
        {"op": "replace", "path": "/orders/0/total", "value": "ten"},  # number -> string
        {"op": "replace", "path": "/orders/0/status", "value": 3},  # string -> number
        {"op": "add", "path": "/orders/-", "value": {"id": "C", "status": "open", "total": 1, "colour": "red"}},
        {"op": "add", "path": "/orders/-", "value": {"id": "C"}},  # the siblings' required fields are missing
        {"op": "remove", "path": "/orders"},  # a whole collection
        {"op": "replace", "path": "/orders/0/status"},  # no value
        {"op": "move", "from": "/orders/0", "path": "/orders/1"},
    ],
)
def test_patch_schema_rejects_what_apply_patch_would_reject_or_never_needs(operation: dict[str, Any]) -> None:
    assert not Draft202012Validator(patch_schema(STATE)).is_valid([operation])


def test_apply_patch_rules_are_unchanged() -> None:
    """The schema narrows what is written; the rules in code still reject the same things."""
    for operation, message in [
        ({"op": "add", "path": "/users/0", "value": {}}, "parent /users does not exist"),
        ({"op": "replace", "path": "/orders/0/total", "value": "ten"}, "would change a number into a string"),
    ]:
        with pytest.raises(PatchError, match=message):
            apply_patch(STATE, [operation])


def test_appended_records_are_shaped_like_their_siblings() -> None:
    append = next(b for b in _branches(patch_schema(STATE)) if b["properties"]["path"]["enum"] == ["/orders/-"])
    record = append["properties"]["value"]
    assert record["required"] == ["id", "status", "total"] and record["additionalProperties"] is False
    assert set(record["properties"]) == {"id", "status", "total", "note", "tags"}
    assert record["properties"]["total"] == {"type": "number"}


def test_an_empty_state_allows_only_the_empty_patch() -> None:
    schema = patch_schema({})
    validator = Draft202012Validator(schema)
    assert validator.is_valid([]) and not validator.is_valid([{"op": "add", "path": "/x", "value": 1}])
    assert schema["items"], "llama-cpp-python ignores maxItems on an array without items"


def _tool(read_only: bool, result_schema: dict[str, Any] | None = None) -> ToolSpec:
    return ToolSpec(
        name="store_order",
        description="Reads or changes an order.",
        parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        result_schema=result_schema or {"type": "object", "properties": {"status": {"type": "string"}}},
        read_only=read_only,
    )


def test_read_only_tool_schema_allows_only_an_empty_patch() -> None:
    schema = outcome_schema(_tool(read_only=True), STATE, {"order_id": "A"})
    patch = Draft202012Validator(schema["properties"]["state_patch"])
    assert patch.is_valid([])
    for operation in [
        {"op": "replace", "path": "/orders/0/status", "value": "lost"},
        {"op": "remove", "path": "/orders/0"},
        {"op": "add", "path": "/orders/-", "value": {"id": "C", "status": "open", "total": 1}},
    ]:
        assert not patch.is_valid([operation])
    writer = outcome_schema(_tool(read_only=False), STATE, {"order_id": "A"})["properties"]["state_patch"]
    assert _schema_paths(writer) == EXPECTED_PATHS | {("add", "/refunds/-")}


def test_read_only_patch_grammar_is_the_empty_list() -> None:
    grammar = pytest.importorskip("llama_cpp.llama_grammar")
    gbnf = grammar.json_schema_to_gbnf(json.dumps(outcome_schema(_tool(read_only=True), STATE)))
    assert 'state-patch ::= "[" space  "]" space' in gbnf


def test_empty_collection_appends_are_shaped_like_the_call() -> None:
    patch = outcome_schema(_tool(read_only=False), {"refunds": []}, {"order_id": "A", "amount": 3})
    (branch,) = _branches(patch["properties"]["state_patch"])
    assert branch["properties"]["path"]["enum"] == ["/refunds/-"]
    record = branch["properties"]["value"]
    assert set(record["properties"]) == {"id", "order_id", "amount"} and record["additionalProperties"] is False


# ----------------------------------------------------------------------------- every emitted schema


def _walk(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from _walk(item, f"{where}/{index}")
    elif isinstance(schema, dict):
        yield where, schema
        for key, value in schema.items():
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                for name, sub in value.items():
                    yield from _walk(sub, f"{where}/{key}/{name}")
            elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems"):
                yield from _walk(value, f"{where}/{key}")


def schema_problems(schema: dict[str, Any]) -> list[str]:
    """What would make a grammar reject the schema or let an answer run on to max_tokens."""
    problems = []
    for where, node in _walk(schema):
        kinds = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
        fixed = "enum" in node or "const" in node
        if "string" in kinds and not fixed:
            if "pattern" in node and "maxLength" in node:
                problems.append(f"{where}: pattern with maxLength")
            if not any(key in node for key in ("maxLength", "pattern", "format")):
                problems.append(f"{where}: unbounded string")
        if "array" in kinds and "maxItems" not in node:
            problems.append(f"{where}: unbounded array")
        if "object" in kinds or "properties" in node:
            extra = node.get("additionalProperties", True)
            if node.get("properties") and extra is not False:
                problems.append(f"{where}: object with properties is not closed")
            if not node.get("properties") and not isinstance(extra, dict) and extra is not False:
                problems.append(f"{where}: free-form object")
    return problems


@pytest.fixture(scope="module")
def catalog_tools() -> list[ToolSpec]:
    """The bundled catalog's tools (300, about half read-only)."""
    return Catalog.default().tools


STATES = [{}, STATE, {"accounts": [{"account_id": "acc-1", "balance": 120.5, "frozen": False}]}]


@pytest.mark.parametrize("state", STATES, ids=["empty", "orders", "accounts"])
def test_every_emitted_schema_is_bounded_closed_and_grammar_safe(
    catalog_tools: list[ToolSpec], state: dict[str, Any]
) -> None:
    assert len(catalog_tools) > 50
    for tool in catalog_tools:
        arguments = example_for(tool.parameters)
        schema = outcome_schema(tool, state, arguments)
        assert schema["additionalProperties"] is False
        assert schema_problems(schema) == [], tool.name


def test_every_catalog_answer_schema_converts_to_a_llama_cpp_grammar(catalog_tools: list[ToolSpec]) -> None:
    grammar = pytest.importorskip("llama_cpp.llama_grammar")
    for tool in catalog_tools:
        grammar.json_schema_to_gbnf(json.dumps(outcome_schema(tool, STATE, example_for(tool.parameters))))


def test_answers_to_the_bounded_result_schema_are_valid_results(catalog_tools: list[ToolSpec]) -> None:
    """The answer schema narrows the result schema; it never admits a result the tool's schema rejects."""
    for tool in catalog_tools:
        answer = result_answer_schema(tool.result_schema)
        assert Draft202012Validator(tool.result_schema).is_valid(example_for(answer)), tool.name


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"type": "string"}, {"type": "string", "maxLength": 60}),
        ({"type": "string", "maxLength": 500}, {"type": "string", "maxLength": 60}),
        ({"type": "string", "maxLength": 8}, {"type": "string", "maxLength": 8}),
        (
            {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{1,4}$", "maxLength": 8},
            {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{1,4}$"},
        ),
        ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 20}, {"type": "string", "maxLength": 20}),
        ({"type": "string", "format": "email"}, {"type": "string", "maxLength": 60}),
        ({"type": "string", "format": "date"}, {"type": "string", "format": "date"}),
        ({"type": "string", "enum": ["a", "b"]}, {"type": "string", "enum": ["a", "b"]}),
        ({"type": "array", "items": {"type": "number"}}, {"type": "array", "items": {"type": "number"}, "maxItems": 3}),
        ({"type": "object"}, GENERIC_OBJECT),
        (
            {"type": "object", "additionalProperties": {"type": "number"}},
            {"type": "object", "additionalProperties": {"type": "number"}},
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}},
            {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
        ),
    ],
)
def test_result_answer_schema(source: dict[str, Any], expected: dict[str, Any]) -> None:
    original = copy.deepcopy(source)
    assert result_answer_schema(source) == expected
    assert source == original, "the tool's own schema was changed"


# ----------------------------------------------------------------------------- the role, against a fake server


def _call(
    handler: Callable[[str, dict[str, Any]], Any], fake_server: Callable[..., FakeLLMServer], tool: ToolSpec
) -> tuple[Any, dict[str, Any], FakeLLMServer]:
    server = fake_server(handler)
    client = LLMClient("tool", EndpointConfig(base_url=server.base_url, model="fake-model", max_repairs=1))
    simulator = ToolSimulator(client)
    call = ToolCall(id="c1", name=tool.name, arguments={"order_id": "A"})

    result, state = asyncio.run(
        simulator.call(tool, call, step=1, index=0, state=STATE, intent="Cancel A.", previous=[], seed=7, usage=Usage())
    )
    return result, state, server


def test_the_state_specific_schema_is_what_the_server_is_asked_for(fake_server: Callable[..., FakeLLMServer]) -> None:
    patch = [{"op": "replace", "path": "/orders/0/status", "value": "cancelled"}]
    result, state, server = _call(
        lambda role, request: {"result": {"status": "cancelled"}, "state_patch": patch}, fake_server, _tool(False)
    )
    assert result == {"status": "cancelled"} and state["orders"][0]["status"] == "cancelled"
    (request,) = [body for role, body in server.requests if role == "tool"]
    fmt = request["response_format"]
    sent = fmt["json_schema"]["schema"] if fmt["type"] == "json_schema" else fmt["schema"]
    assert _schema_paths(sent["properties"]["state_patch"]) == EXPECTED_PATHS | {("add", "/refunds/-")}
    assert STATE["orders"][0]["status"] == "open", "the caller's state was mutated"


def test_a_result_is_held_to_the_tools_own_schema_not_the_narrower_one_asked_for() -> None:
    """A faithful answer to a free-form tool is usable though the LM was asked for ``GENERIC_OBJECT``."""
    simulator = ToolSimulator(LLMClient("tool", EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m")))
    loose = _tool(False, {"type": "object"})
    record = {"note_id": "n-1", "title": "Dentist", "body": "Tuesday 9:30 with Dr. Lee" * 3}
    assert simulator.problems(ToolOutcome(result=record), loose, STATE) == []
    wrong = simulator.problems(ToolOutcome(result={"status": 3}), _tool(False), STATE)
    assert wrong and "status" in wrong[0]


def test_a_result_too_large_to_be_real_is_a_problem_whatever_the_schema() -> None:
    simulator = ToolSimulator(LLMClient("tool", EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m")))
    huge = {"status": "x" * (RESULT_MAX_CHARS + 1)}
    (problem,) = simulator.problems(ToolOutcome(result=huge), _tool(False), STATE)
    assert f"at most {RESULT_MAX_CHARS}" in problem
    assert simulator.problems(ToolOutcome(result={"status": "x" * 100}), _tool(False), STATE) == []
