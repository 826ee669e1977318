"""The episode's world state: JSON data changed only by validated patches.

The tool simulator proposes a list of RFC 6902 operations (add / replace / remove);
code checks them and applies them to a copy. A patch is applied whole or not at all.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

__all__ = ["PATCH_OPERATION_SCHEMA", "PATH_SCHEMA", "PatchError", "apply_patch", "patch_operation_schema"]

# A JSON pointer into the state: the grammar itself then writes the leading "/" small models forget.
PATH_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^(/[A-Za-z0-9_.~-]{1,40}){1,5}(/-)?$", "maxLength": 160}


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
            },
            {
                "type": "object",
                "properties": {"op": {"const": "remove"}, "path": PATH_SCHEMA},
                "required": ["op", "path"],
            },
        ]
    }


PATCH_OPERATION_SCHEMA: dict[str, Any] = patch_operation_schema()


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
