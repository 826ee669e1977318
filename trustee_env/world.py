"""The episode's world state: JSON data changed only by validated patches.

The tool simulator proposes a list of RFC 6902 operations (add / replace / remove);
code checks them and applies them to a copy. A patch is applied whole or not at all.

``patch_schema`` turns the current state into the answer schema of a patch: every path is an
``enum`` of pointers that exist (or, for ``add``, whose parent exists) and every value has the
type of what it replaces, so grammar-constrained decoding cannot write a patch that these rules
would reject for a missing parent or a type change. The rules in ``apply_patch`` stay the judge.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

__all__ = [
    "EMPTY_PATCH_SCHEMA",
    "PATCH_OPERATION_SCHEMA",
    "PATH_SCHEMA",
    "RECORD_SCHEMA",
    "SCALAR_SCHEMA",
    "STATE_SCHEMA",
    "PatchError",
    "PatchTargets",
    "apply_patch",
    "patch_operation_schema",
    "patch_schema",
    "patch_targets",
    "pointer",
    "record_schema",
]

# The shapes of the world state, in one place: collections of flat records,
# {"orders": [{...}, ...], "users": [...]}; the task generator writes the initial state in them.
SCALAR_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "maxLength": 120}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
}
RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "anyOf": [
            *SCALAR_SCHEMA["anyOf"],
            {
                "type": "array",
                "items": {"anyOf": [{"type": "string", "maxLength": 80}, {"type": "number"}]},
                "maxItems": 8,
            },
        ]
    },
}
STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": RECORD_SCHEMA, "maxItems": 6},
}

# A JSON pointer into the state: the grammar itself then writes the leading "/" small models forget.
# The pattern bounds the length on its own (xgrammar rejects ``pattern`` together with ``maxLength``).
PATH_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^(/[A-Za-z0-9_.~-]{1,40}){1,5}(/-)?$"}


def patch_operation_schema(value_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """One patch operation: add/replace *with* a value, or remove without one (so a grammar can't forget it)."""
    value = value_schema if value_schema is not None else {}
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "op": {"type": "string", "enum": ["add", "replace"]},
                    "path": PATH_SCHEMA,
                    "value": value,
                },
                "required": ["op", "path", "value"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"op": {"const": "remove"}, "path": PATH_SCHEMA},
                "required": ["op", "path"],
                "additionalProperties": False,
            },
        ]
    }


PATCH_OPERATION_SCHEMA: dict[str, Any] = patch_operation_schema()


# Value schemas for patch operations, bounded so the grammar closes every string and list.
_STRING: dict[str, Any] = {"type": "string", "maxLength": 60}
_SCALAR_LIST: dict[str, Any] = {
    "type": "array",
    "items": {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "number"}]},
    "maxItems": 6,
}
_ANY_SCALAR: dict[str, Any] = {"anyOf": [_STRING, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
# A null field may become any type (``apply_patch`` allows it); other fields keep their JSON type.
VALUE_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": _STRING,
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "array": _SCALAR_LIST,
    "null": {"anyOf": [*_ANY_SCALAR["anyOf"], _SCALAR_LIST]},
}
_TYPE_ORDER = ("string", "number", "boolean", "array", "null")
# Only ``[]``. The ``items`` matter: llama-cpp-python's grammar ignores ``maxItems`` on an array without them.
EMPTY_PATCH_SCHEMA: dict[str, Any] = {"type": "array", "items": {"type": "null"}, "maxItems": 0}


def pointer(*parts: str | int) -> str:
    """The JSON pointer (RFC 6901) of a path given as keys and indices."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


@dataclass
class PatchTargets:
    """The paths one patch may name against a given state, grouped by what may be written there.

    ``replace``: JSON type -> existing scalar (or scalar-list) fields of that type.
    ``add``: JSON type -> fields a record lacks but its siblings have (typed like theirs).
    ``remove``: existing records and fields (top-level collections are kept).
    ``append``: ``/<list>/-`` -> the schema of the new element (a closed record shaped like its siblings).
    """

    replace: dict[str, list[str]] = field(default_factory=dict)
    add: dict[str, list[str]] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    append: dict[str, dict[str, Any]] = field(default_factory=dict)

    def paths(self) -> set[tuple[str, str]]:
        """Every ``(op, path)`` these targets allow (appends are ``add`` operations)."""
        out = {("replace", path) for paths in self.replace.values() for path in paths}
        out |= {("add", path) for paths in self.add.values() for path in paths}
        out |= {("add", path) for path in self.append}
        return out | {("remove", path) for path in self.remove}


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _field_type(values: list[Any]) -> str:
    """One JSON type for a field across sibling records ("null" = any: unknown or mixed)."""
    kinds = {_json_type(value) for value in values if value is not None}
    if len(kinds) == 1 and (kind := kinds.pop()) in VALUE_SCHEMAS:
        return kind
    return "null"


def record_schema(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A closed schema for a new record shaped like its siblings: their fields, typed as theirs."""
    names: list[str] = []
    for record in records:
        names += [name for name, value in record.items() if name not in names and not isinstance(value, dict)]
    properties = {name: VALUE_SCHEMAS[_field_type([r.get(name) for r in records])] for name in names}
    required = [name for name in names if all(name in record for record in records)]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _walk_object(
    node: dict[str, Any], parts: tuple[str | int, ...], targets: PatchTargets, siblings: list[Any]
) -> None:
    """Collect targets inside one object; ``siblings`` are the records of its list (for missing fields)."""
    for key, value in node.items():
        path = pointer(*parts, key)
        if parts:  # the state's own top-level keys (collections) are never removed
            targets.remove.append(path)
        if isinstance(value, dict):
            _walk_object(value, (*parts, key), targets, [])
        elif isinstance(value, list) and value and not all(_is_scalar(item) for item in value):
            _walk_list(value, (*parts, key), targets)
        elif value == [] and not parts:
            continue  # an empty collection: see ``new_record`` in patch_targets
        else:
            kind = "array" if isinstance(value, list) else _json_type(value)
            targets.replace.setdefault(kind, []).append(path)
    others = [record for record in siblings if isinstance(record, dict)]
    for name in dict.fromkeys(name for record in others for name in record):
        values = [record[name] for record in others if name in record]
        if name not in node and not any(isinstance(value, dict) for value in values):
            targets.add.setdefault(_field_type(values), []).append(pointer(*parts, name))


def _walk_list(items: list[Any], parts: tuple[str | int, ...], targets: PatchTargets) -> None:
    records = [item for item in items if isinstance(item, dict)]
    if records:
        targets.append[pointer(*parts, "-")] = record_schema(records)
    for index, item in enumerate(items):
        path = pointer(*parts, index)
        targets.remove.append(path)
        if isinstance(item, dict):
            _walk_object(item, (*parts, index), targets, records)


def patch_targets(state: dict[str, Any], *, new_record: dict[str, Any] | None = None) -> PatchTargets:
    """What a patch against ``state`` may touch (see ``PatchTargets``).

    ``new_record`` is the closed record schema for appends to an empty top-level collection, which
    has no records to copy a shape from (the tool simulator builds it from the call's arguments);
    without it such a collection takes no appends.
    """
    targets = PatchTargets()
    _walk_object(state, (), targets, [])
    if new_record is not None:
        for key, value in state.items():
            if value == []:
                targets.append[pointer(key, "-")] = new_record
    return targets


def _operation(op: str, paths: list[str], value: dict[str, Any] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"op": {"const": op}, "path": {"enum": paths}}
    if value is not None:
        properties["value"] = value
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def patch_schema(
    state: dict[str, Any], *, max_ops: int = 3, new_record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The answer schema of a patch against ``state``: only operations that name valid paths, typed values.

    With nothing to touch (an empty state) the only valid patch is the empty list.
    """
    targets = patch_targets(state, new_record=new_record)
    branches = [
        _operation("replace", targets.replace[k], VALUE_SCHEMAS[k]) for k in _TYPE_ORDER if k in targets.replace
    ]
    branches += [_operation("add", targets.add[k], VALUE_SCHEMAS[k]) for k in _TYPE_ORDER if k in targets.add]
    branches += [_operation("add", [path], schema) for path, schema in targets.append.items()]
    if targets.remove:
        branches.append(_operation("remove", targets.remove, None))
    if not branches:
        return copy.deepcopy(EMPTY_PATCH_SCHEMA)
    return {"type": "array", "items": {"anyOf": branches}, "maxItems": max_ops}


class PatchError(ValueError):
    """A proposed state patch is invalid; the message says which operation and why."""


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _resolve(doc: Any, pointer: str) -> tuple[bool, Any]:
    try:
        value = jsonpointer.resolve_pointer(doc, pointer)
    except (jsonpointer.JsonPointerException, TypeError, KeyError, IndexError):
        return False, None
    if isinstance(value, jsonpointer.EndOfList):  # "/-" names no existing element
        return False, None
    return True, value


def _check_operation(doc: Any, index: int, op: Any) -> None:
    if not isinstance(op, dict):
        raise PatchError(f"operation {index} is not an object")
    kind, path = op.get("op"), op.get("path")
    if kind not in ("add", "replace", "remove"):
        raise PatchError(f"operation {index}: op must be add, replace or remove, got {kind!r}")
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"operation {index}: path must be a JSON pointer starting with '/', got {path!r}")
    if path == "":
        raise PatchError(f"operation {index}: the whole state cannot be replaced or removed")
    if kind != "remove" and "value" not in op:
        raise PatchError(f"operation {index} ({kind} {path}): missing 'value'")
    parent_path, _, last = path.rpartition("/")
    parent_found, parent = _resolve(doc, parent_path)
    if not parent_found:
        raise PatchError(f"operation {index} ({kind} {path}): parent {parent_path or '/'} does not exist")
    found, current = _resolve(doc, path) if not (kind == "add" and last == "-") else (False, None)
    if kind in ("replace", "remove") and not found:
        raise PatchError(f"operation {index} ({kind} {path}): path does not exist")
    if kind == "replace" and _json_type(current) != _json_type(op["value"]) and current is not None:
        raise PatchError(
            f"operation {index} (replace {path}): would change a {_json_type(current)} into a {_json_type(op['value'])}"
        )
    if (
        kind == "add"
        and isinstance(parent, dict)
        and found
        and current is not None
        and _json_type(current) != _json_type(op["value"])
    ):
        raise PatchError(
            f"operation {index} (add {path}): would change a {_json_type(current)} into a {_json_type(op['value'])}"
        )
    if not isinstance(parent, (dict, list)):
        raise PatchError(f"operation {index} ({kind} {path}): parent is a {_json_type(parent)}, not a container")


def apply_patch(state: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply ``operations`` to a copy of ``state`` and return it; raise PatchError if any is invalid.

    Each operation is checked against the state the previous ones left, so an ``add``
    followed by a ``replace`` of the same path works.
    """
    doc = copy.deepcopy(state)
    for index, op in enumerate(operations):
        _check_operation(doc, index, op)
        clean = {"op": op["op"], "path": op["path"]}
        if op["op"] != "remove":
            clean["value"] = copy.deepcopy(op["value"])
        try:
            doc = jsonpatch.JsonPatch([clean]).apply(doc, in_place=False)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, IndexError, TypeError) as err:
            raise PatchError(f"operation {index} ({op['op']} {op['path']}): {err}") from None
    return doc
