"""The tool catalog: the pool of tools that tasks draw their tools from.

A catalog is an ordered, name-indexed list of :class:`~trustee_env.schemas.ToolSpec`. It loads from
the bundled default pool (:meth:`Catalog.default`), from Trustee catalog files, from OpenAI ``tools``
lists, from ToolBench/RapidAPI tool JSON and from MCP ``tools/list`` results (:meth:`Catalog.load`
tells them apart). Every loader checks each tool against ``ToolSpec`` and each of its schemas against
the JSON Schema Draft 2020-12 meta-schema; a :class:`~trustee_env.errors.CatalogError` names the file,
the JSON pointer of the bad tool and what is wrong with it.

A Trustee catalog file holds one category::

    {"category": "weather", "description": "...", "tools": [
        {"type": "function", "function": {"name": ..., "description": ..., "parameters": {...}},
         "result_schema": {...}, "read_only": true}]}

and :meth:`Catalog.to_json` writes several as ``{"categories": [<one such object per category>]}``.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from trustee_env.errors import CatalogError
from trustee_env.schemas import ToolSpec

__all__ = ["Catalog", "validate_schemas"]

_GENERIC_RESULT: dict[str, Any] = {"type": "object"}
_TOOLBENCH_TYPES = {"STRING": "string", "NUMBER": "number", "INTEGER": "integer", "BOOLEAN": "boolean"}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}
_TRUSTEE_TOOL_KEYS = {"type", "function", "result_schema", "result_schema_inferred", "read_only"}
_FUNCTION_KEYS = {"name", "description", "parameters", "strict"}


def validate_schemas(spec: ToolSpec) -> None:
    """Check a tool's ``parameters`` and ``result_schema`` against the Draft 2020-12 meta-schema.

    Args:
        spec: the tool to check.

    Raises:
        CatalogError: naming the tool, which of its two schemas is invalid, and where in it.
    """
    for which, schema in (("parameters", spec.parameters), ("result_schema", spec.result_schema)):
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as err:
            where = "/" + "/".join(str(part) for part in err.absolute_path)
            raise CatalogError(
                f"tool {spec.name!r}: {which} is not a valid JSON Schema (Draft 2020-12): {err.message} (at {where})"
            ) from None


def _where(source: str | None, pointer: str) -> str:
    return f"{source}: {pointer or '/'}" if source else (pointer or "/")


def _describe(text: Any, name: str) -> Any:
    """The source's description, or the name in words when it is missing or blank."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return re.sub(r"[_.\-]+", " ", name).strip() or name
    return text.strip() if isinstance(text, str) else text


def _snake(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _build(fields: dict[str, Any], source: str | None, pointer: str) -> ToolSpec:
    """Make a ``ToolSpec`` from loader fields and check its schemas, with errors that say where."""
    label = f"tool {fields.get('name')!r}"
    try:
        spec = ToolSpec(**fields)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'tool'}: {e['msg']}" for e in err.errors())
        raise CatalogError(f"{_where(source, pointer)}: {label}: invalid tool spec: {problems}") from None
    try:
        validate_schemas(spec)
    except CatalogError as err:
        raise CatalogError(f"{_where(source, pointer)}: {err}") from None
    return spec


def _mapping(value: Any, source: str | None, pointer: str, what: str = "a tool object") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CatalogError(f"{_where(source, pointer)}: expected {what}, got {type(value).__name__}")
    return value


def _tool_list(value: Any, source: str | None, pointer: str) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise CatalogError(f"{_where(source, pointer)}: expected a list of tools, got {type(value).__name__}")
    return list(value)


def _function_tool(entry: Any, category: str, source: str | None, pointer: str, *, strict: bool = False) -> ToolSpec:
    """One OpenAI-style entry (wrapped ``{"type": "function", ...}`` or bare) with optional Trustee extras."""
    entry = _mapping(entry, source, pointer)
    function = _mapping(entry.get("function", entry), source, f"{pointer}/function", "a function object")
    if strict:
        if "function" in entry:
            unknown = sorted(set(entry) - _TRUSTEE_TOOL_KEYS) + sorted(set(function) - _FUNCTION_KEYS)
        else:
            unknown = sorted(set(entry) - _TRUSTEE_TOOL_KEYS - _FUNCTION_KEYS)
        if unknown:
            raise CatalogError(f"{_where(source, pointer)}: unknown keys {unknown}")
    if entry.get("type", "function") != "function":
        raise CatalogError(f"{_where(source, pointer)}: unsupported tool type {entry.get('type')!r}")
    name = function.get("name")
    if not isinstance(name, str):
        raise CatalogError(f"{_where(source, pointer)}: the tool has no string 'name'")
    fields: dict[str, Any] = {"name": name, "description": _describe(function.get("description"), name)}
    fields["category"] = category
    if "parameters" in function:
        fields["parameters"] = function["parameters"]
    fields["result_schema"] = entry.get("result_schema", dict(_GENERIC_RESULT))
    fields["result_schema_inferred"] = entry.get("result_schema_inferred", "result_schema" not in entry)
    fields["read_only"] = entry.get("read_only", False)
    return _build(fields, source, pointer)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CatalogError(f"{path}: cannot read the catalog file: {err}") from None
    return _parse_json(text, str(path))


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CatalogError(f"{source}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None


@functools.lru_cache(maxsize=1)
def _default_tools() -> tuple[ToolSpec, ...]:
    folder = resources.files("trustee_env") / "data" / "catalog"
    tools: list[ToolSpec] = []
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.name.endswith(".json"):
            source = f"trustee_env/data/catalog/{item.name}"
            tools.extend(Catalog._parse(_parse_json(item.read_text(encoding="utf-8"), source), source))
    if not tools:
        raise CatalogError("the bundled catalog trustee_env/data/catalog holds no tools")
    return tuple(tools)


@functools.lru_cache(maxsize=1)
def _default_catalog() -> Catalog:
    return Catalog(_default_tools())


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, stamp: tuple[tuple[str, int, int], ...]) -> Catalog:
    """One loaded catalog per (path, file stamps); ``stamp`` is only part of the key."""
    del stamp
    return Catalog.load(path)


class Catalog:
    """An ordered pool of tools, indexed by name and grouped by category.

    Args:
        tools: the tools, in order.

    Raises:
        CatalogError: two tools share a name.
    """

    def __init__(self, tools: Iterable[ToolSpec]) -> None:
        self._tools: list[ToolSpec] = list(tools)
        self._by_name: dict[str, ToolSpec] = {}
        self._by_category: dict[str, list[ToolSpec]] = {}
        for spec in self._tools:
            if spec.name in self._by_name:
                raise CatalogError(
                    f"duplicate tool name {spec.name!r} (categories {self._by_name[spec.name].category!r}"
                    f" and {spec.category!r})"
                )
            self._by_name[spec.name] = spec
            self._by_category.setdefault(spec.category, []).append(spec)

    @property
    def tools(self) -> list[ToolSpec]:
        """All tools, in catalog order (a copy)."""
        return list(self._tools)

    @property
    def categories(self) -> dict[str, list[ToolSpec]]:
        """Category name -> its tools, both in catalog order (a copy)."""
        return {category: list(tools) for category, tools in self._by_category.items()}

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._by_name

    def __repr__(self) -> str:
        return f"Catalog({len(self)} tools, {len(self._by_category)} categories)"

    def get(self, name: str) -> ToolSpec:
        """The tool with this name.

        Raises:
            CatalogError: no such tool; the message suggests close names when there are any.
        """
        try:
            return self._by_name[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._by_name), n=3)
            hint = f" Did you mean {', '.join(repr(match) for match in close)}?" if close else ""
            raise CatalogError(f"unknown tool {name!r}.{hint}") from None

    # ------------------------------------------------------------------ loaders

    @classmethod
    def default(cls) -> Catalog:
        """The bundled pool: every ``*.json`` file in ``trustee_env/data/catalog``.

        Parsed once per process and shared by every env (no copies: constructing an env must stay cheap).
        Treat its tools as read-only; build a new ``Catalog`` to change them.
        """
        return _default_catalog()

    @classmethod
    def shared(cls, source: str | os.PathLike[str]) -> Catalog:
        """``Catalog.load(path)``, loaded once per process and shared while the file(s) stay unchanged.

        The cache key is the resolved path plus each file's size and modification time, so an edited
        catalog is read again. Treat the tools as read-only, like :meth:`default`'s.

        Raises:
            CatalogError: as :meth:`load`.
        """
        if isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
            return cls.load(source)  # JSON text
        path = Path(source)
        if not path.exists():  # load's own error
            return cls.load(source)
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        stamp = tuple((str(file), file.stat().st_mtime_ns, file.stat().st_size) for file in files)
        return _load_cached(str(path.resolve()), stamp)

    @classmethod
    def load(cls, source: str | os.PathLike[str] | Mapping[str, Any] | Sequence[Any]) -> Catalog:
        """Load a catalog, detecting its format.

        Args:
            source: a path to a JSON file or to a directory of them (each file detected on its own), JSON
                text, or already-parsed data. Formats: a Trustee catalog file (``{"category", "tools"}`` or
                ``{"categories": [...]}``), an OpenAI tools list (or ``{"tools": [...]}``), ToolBench tool
                JSON (``{"tool_name", "api_list"}`` or a list of them) and an MCP ``tools/list`` result
                (bare or as a JSON-RPC response).

        Raises:
            CatalogError: unreadable file, unknown format or an invalid tool.
        """
        if isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
            return cls(cls._parse(_parse_json(source, "<json text>"), None))
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                files = sorted(path.glob("*.json"))
                if not files:
                    raise CatalogError(f"{path}: the directory holds no .json catalog files")
                return cls([spec for file in files for spec in cls._parse(_read_json(file), str(file))])
            return cls(cls._parse(_read_json(path), str(path)))
        return cls(cls._parse(source, None))

    @classmethod
    def _parse(cls, data: Any, source: str | None) -> list[ToolSpec]:
        """Detect the format of parsed JSON and convert it."""
        if isinstance(data, Mapping):
            if "result" in data or "error" in data or "jsonrpc" in data:
                return _mcp_tools(data, "mcp", source)
            if "api_list" in data:
                return _toolbench_tools(data, source)
            if "categories" in data or ("category" in data and "tools" in data):
                return _trustee_tools(data, source)
            if "inputSchema" in data:
                return _mcp_tools({"tools": [data]}, "mcp", source)
            tools = data.get("tools")
            if isinstance(tools, list) and any(isinstance(t, Mapping) and "inputSchema" in t for t in tools):
                return _mcp_tools(data, "mcp", source)
            if "tools" in data or "function" in data or "name" in data:
                return _openai_tools(data, "custom", source)
        elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
            first = next((item for item in data if isinstance(item, Mapping)), {})
            if "api_list" in first:
                return _toolbench_tools(data, source)
            if "inputSchema" in first:
                return _mcp_tools({"tools": data}, "mcp", source)
            if "category" in first and "tools" in first:
                return _trustee_tools(data, source)
            return _openai_tools(data, "custom", source)
        raise CatalogError(
            f"{source or '<data>'}: unrecognised catalog format: expected a Trustee catalog, an OpenAI tools list,"
            " ToolBench tool JSON or an MCP tools/list result"
        )

    @classmethod
    def from_openai(cls, data: Sequence[Any] | Mapping[str, Any], category: str = "custom") -> Catalog:
        """Tools from an OpenAI ``tools`` list.

        Args:
            data: a list of ``{"type": "function", "function": {...}}`` or bare ``{"name", "description",
                "parameters"}`` entries (or ``{"tools": [...]}``, or one entry). An entry may also carry
                ``result_schema`` (else a generic object, marked inferred) and ``read_only`` (default false).
            category: the category given to every tool.
        """
        return cls(_openai_tools(data, category, None))

    @classmethod
    def from_toolbench(cls, data: Mapping[str, Any] | Sequence[Any]) -> Catalog:
        """Tools from ToolBench/RapidAPI tool JSON: one tool object with an ``api_list``, or a list of them.

        Each API becomes a tool named ``snake_case(f"{tool_name}_{api name}")`` (at most 64 characters,
        suffixed ``_2``, ``_3``... on a clash); ``GET`` APIs are read-only; results are a generic object.
        """
        return cls(_toolbench_tools(data, None))

    @classmethod
    def from_mcp(cls, data: Mapping[str, Any] | Sequence[Any], category: str = "mcp") -> Catalog:
        """Tools from an MCP ``tools/list`` result (``{"tools": [...]}``, bare or inside a JSON-RPC ``result``).

        ``outputSchema`` becomes the result schema (a generic object, marked inferred, when absent) and
        ``annotations.readOnlyHint`` the read-only flag.
        """
        return cls(_mcp_tools({"tools": data} if isinstance(data, Sequence) else data, category, None))

    # ------------------------------------------------------------------ use

    def sample(self, rng: np.random.Generator, k: int) -> list[ToolSpec]:
        """Draw ``k`` distinct tools, same category first.

        A random category is picked and its tools taken in random order; when it has fewer than ``k``,
        the rest come from further random categories. The result depends only on the rng state.

        Args:
            rng: the random generator (advanced by the draw).
            k: how many tools; clamped to ``[1, len(self)]``.

        Raises:
            CatalogError: the catalog is empty.
        """
        if not self._tools:
            raise CatalogError("cannot sample from an empty catalog")
        k = max(1, min(int(k), len(self._tools)))
        groups = list(self._by_category.values())
        chosen: list[ToolSpec] = []
        for group_index in rng.permutation(len(groups)):
            group = groups[int(group_index)]
            for tool_index in rng.permutation(len(group)):
                chosen.append(group[int(tool_index)])
                if len(chosen) == k:
                    return chosen
        return chosen

    def to_json(self) -> dict[str, Any]:
        """The catalog in Trustee format: ``{"categories": [{"category", "tools"}, ...]}`` (loadable again)."""
        categories = []
        for category, tools in self._by_category.items():
            entries = []
            for spec in tools:
                entry: dict[str, Any] = {
                    **spec.to_openai(),
                    "result_schema": spec.result_schema,
                    "read_only": spec.read_only,
                }
                if spec.result_schema_inferred:
                    entry["result_schema_inferred"] = True
                entries.append(entry)
            categories.append({"category": category, "tools": entries})
        return {"categories": categories}


def _trustee_tools(data: Mapping[str, Any] | Sequence[Any], source: str | None, prefix: str = "") -> list[ToolSpec]:
    if isinstance(data, Sequence):
        return [spec for i, doc in enumerate(data) for spec in _trustee_tools(doc, source, f"{prefix}/{i}")]
    data = _mapping(data, source, prefix, "a catalog object")
    if "categories" in data:
        docs = _tool_list(data["categories"], source, f"{prefix}/categories")
        return _trustee_tools(docs, source, f"{prefix}/categories")
    category = data.get("category")
    if not isinstance(category, str) or not category:
        raise CatalogError(f"{_where(source, prefix)}: 'category' must be a non-empty string")
    tools = _tool_list(data.get("tools"), source, f"{prefix}/tools")
    return [_function_tool(t, category, source, f"{prefix}/tools/{i}", strict=True) for i, t in enumerate(tools)]


def _openai_tools(data: Any, category: str, source: str | None) -> list[ToolSpec]:
    prefix = ""
    if isinstance(data, Mapping):
        if "tools" in data:
            data, prefix = data["tools"], "/tools"
        else:
            return [_function_tool(data, category, source, "")]
    tools = _tool_list(data, source, prefix)
    return [_function_tool(t, category, source, f"{prefix}/{i}") for i, t in enumerate(tools)]


def _mcp_tools(data: Mapping[str, Any], category: str, source: str | None) -> list[ToolSpec]:
    prefix = ""
    if "error" in data:
        raise CatalogError(f"{source or '<data>'}: the JSON-RPC response is an error: {data['error']}")
    if "result" in data:
        data, prefix = _mapping(data["result"], source, "/result", "a tools/list result"), "/result"
    specs = []
    for i, tool in enumerate(_tool_list(data.get("tools"), source, f"{prefix}/tools")):
        pointer = f"{prefix}/tools/{i}"
        tool = _mapping(tool, source, pointer)
        name = tool.get("name")
        if not isinstance(name, str):
            raise CatalogError(f"{_where(source, pointer)}: the tool has no string 'name'")
        annotations = tool.get("annotations") or {}
        fields = {
            "name": name,
            "description": _describe(tool.get("description") or tool.get("title"), name),
            "parameters": tool.get("inputSchema", {"type": "object", "properties": {}}),
            "result_schema": tool.get("outputSchema", dict(_GENERIC_RESULT)),
            "result_schema_inferred": "outputSchema" not in tool,
            "category": category,
            "read_only": isinstance(annotations, Mapping) and annotations.get("readOnlyHint") is True,
        }
        specs.append(_build(fields, source, pointer))
    return specs


def _toolbench_property(param: Mapping[str, Any]) -> dict[str, Any]:
    raw_type = str(param.get("type", "STRING")).upper()
    json_type = _TOOLBENCH_TYPES.get(raw_type, "string")
    prop: dict[str, Any] = {"type": json_type, "description": _describe(param.get("description"), str(param["name"]))}
    if raw_type.startswith("DATE"):
        prop["format"] = "date"
    default = param.get("default")
    if isinstance(default, _PY_TYPES[json_type]) and not (isinstance(default, bool) and json_type != "boolean"):
        if default != "":
            prop["default"] = default
    return prop


def _toolbench_tools(data: Mapping[str, Any] | Sequence[Any], source: str | None, prefix: str = "") -> list[ToolSpec]:
    if isinstance(data, Sequence):
        return [spec for i, tool in enumerate(data) for spec in _toolbench_tools(tool, source, f"{prefix}/{i}")]
    data = _mapping(data, source, prefix, "a ToolBench tool object")
    tool_name = str(data.get("tool_name") or data.get("name") or "tool")
    category = _snake(str(data.get("category_name") or "toolbench")) or "toolbench"
    specs: list[ToolSpec] = []
    seen: set[str] = set()
    for i, api in enumerate(_tool_list(data.get("api_list"), source, f"{prefix}/api_list")):
        pointer = f"{prefix}/api_list/{i}"
        api = _mapping(api, source, pointer, "an API object")
        base = _snake(f"{tool_name}_{api.get('name', i)}") or f"api_{i}"
        base = (base if re.match(r"[a-z_]", base) else f"_{base}")[:64]
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base[: 64 - len(str(n)) - 1]}_{n}"
        seen.add(name)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for group in ("required_parameters", "optional_parameters"):
            for j, param in enumerate(api.get(group) or []):
                param = _mapping(param, source, f"{pointer}/{group}/{j}", "a parameter object")
                if "name" not in param:
                    raise CatalogError(f"{_where(source, f'{pointer}/{group}/{j}')}: the parameter has no 'name'")
                properties[str(param["name"])] = _toolbench_property(param)
                if group == "required_parameters" and str(param["name"]) not in required:
                    required.append(str(param["name"]))
        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            parameters["required"] = required
        fields = {
            "name": name,
            "description": _describe(api.get("description"), name),
            "parameters": parameters,
            "result_schema": dict(_GENERIC_RESULT),
            "result_schema_inferred": True,
            "category": category,
            "read_only": str(api.get("method", "")).upper() == "GET",
        }
        specs.append(_build(fields, source, pointer))
    return specs
