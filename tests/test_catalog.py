"""Tests for the tool catalog: the bundled pool, the loaders, sampling and error messages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from trustee_env.catalog import Catalog, validate_schemas
from trustee_env.errors import CatalogError
from trustee_env.schemas import TOOL_NAME_PATTERN, ToolSpec

DATA = Path(__file__).parent / "data"
DEFAULT = Catalog.default()


def _spec(name: str, category: str = "test", read_only: bool = False) -> ToolSpec:
    return ToolSpec(name=name, description=f"{name} tool", category=category, read_only=read_only)


# ---------------------------------------------------------------- the bundled pool


def test_default_catalog_size() -> None:
    assert len(DEFAULT) >= 200
    assert len(DEFAULT.categories) >= 20
    assert all(len(tools) >= 5 for tools in DEFAULT.categories.values())


def test_default_names_unique_and_well_formed() -> None:
    names = [spec.name for spec in DEFAULT]
    assert len(names) == len(set(names))
    for spec in DEFAULT:
        assert re.fullmatch(TOOL_NAME_PATTERN, spec.name)
        assert spec.name.startswith(spec.category.split("_")[0]), spec.name
        assert 0 < len(spec.description) < 160, spec.name


@pytest.mark.parametrize("spec", DEFAULT.tools, ids=lambda spec: spec.name)
def test_default_tool_schemas(spec: ToolSpec) -> None:
    Draft202012Validator.check_schema(spec.parameters)
    Draft202012Validator.check_schema(spec.result_schema)
    validate_schemas(spec)
    properties = spec.parameters["properties"]
    assert spec.parameters["type"] == "object"
    assert set(spec.required) <= set(properties), spec.name
    assert 1 <= len(spec.required) <= 3
    assert len(properties) <= 5
    assert all(prop.get("description") and ("type" in prop or "enum" in prop) for prop in properties.values())
    assert spec.result_schema["type"] == "object"
    assert not spec.result_schema_inferred
    assert set(spec.result_schema.get("required", [])) <= set(spec.result_schema["properties"])
    assert len(spec.result_schema["properties"]) <= 6


@pytest.mark.parametrize("category", sorted(DEFAULT.categories))
def test_every_category_mixes_read_only_and_writes(category: str) -> None:
    flags = {spec.read_only for spec in DEFAULT.categories[category]}
    assert flags == {True, False}


def test_default_is_parsed_once_and_shared() -> None:
    # Immutable by contract and shared by every env (constructing an env must not copy 300 tools).
    assert Catalog.default() is Catalog.default()
    assert Catalog.default().get("weather_get_forecast") is DEFAULT.get("weather_get_forecast")


def test_mock_catalog_loads() -> None:
    catalog = Catalog.load(DATA / "mock_catalog.json")
    assert [spec.name for spec in catalog] == ["mock_get_order", "mock_cancel_order", "mock_search_products"]
    assert list(catalog.categories) == ["mock"]
    assert catalog.get("mock_get_order").read_only
    assert not catalog.get("mock_cancel_order").read_only
    assert catalog.get("mock_cancel_order").required == ["order_id"]
    products = catalog.get("mock_search_products").result_schema["properties"]["products"]
    assert set(products["items"]["properties"]) == {"product_id", "name", "price"}


# ---------------------------------------------------------------- container behaviour


def test_container_protocol_and_get() -> None:
    catalog = Catalog([_spec("a_one", "a"), _spec("b_one", "b"), _spec("a_two", "a")])
    assert len(catalog) == 3
    assert [spec.name for spec in catalog] == ["a_one", "b_one", "a_two"]
    assert "a_two" in catalog and "nope" not in catalog and 3 not in catalog
    assert {name: [s.name for s in tools] for name, tools in catalog.categories.items()} == {
        "a": ["a_one", "a_two"],
        "b": ["b_one"],
    }
    assert catalog.get("b_one").category == "b"


def test_duplicate_names_rejected() -> None:
    with pytest.raises(CatalogError, match="duplicate tool name 'x_tool'"):
        Catalog([_spec("x_tool"), _spec("x_tool", "other")])


def test_get_unknown_suggests_close_names() -> None:
    with pytest.raises(CatalogError, match=r"Did you mean 'weather_get_forecast'"):
        DEFAULT.get("weather_get_forcast")
    with pytest.raises(CatalogError) as info:
        DEFAULT.get("zzzzzzzz")
    assert "Did you mean" not in str(info.value)


# ---------------------------------------------------------------- sampling


def test_sample_is_deterministic() -> None:
    first = DEFAULT.sample(np.random.default_rng(123), 6)
    second = DEFAULT.sample(np.random.default_rng(123), 6)
    assert [s.name for s in first] == [s.name for s in second]
    draws = {tuple(s.name for s in DEFAULT.sample(np.random.default_rng(seed), 6)) for seed in range(20)}
    assert len(draws) > 1


@pytest.mark.parametrize("k", [1, 3, 10])
def test_sample_same_category_when_it_fits(k: int) -> None:
    for seed in range(10):
        tools = DEFAULT.sample(np.random.default_rng(seed), k)
        assert len(tools) == k
        assert len({s.name for s in tools}) == k
        assert len({s.category for s in tools}) == 1


def test_sample_fills_from_other_categories() -> None:
    tools = DEFAULT.sample(np.random.default_rng(7), 25)
    names = [s.name for s in tools]
    assert len(names) == len(set(names)) == 25
    first = tools[0].category
    assert all(s.category == first for s in tools[: len(DEFAULT.categories[first])])
    assert len({s.category for s in tools}) >= 3


def test_sample_clamps_k() -> None:
    catalog = Catalog([_spec("a_one", "a"), _spec("b_one", "b")])
    assert len(catalog.sample(np.random.default_rng(0), 0)) == 1
    assert {s.name for s in catalog.sample(np.random.default_rng(0), 99)} == {"a_one", "b_one"}
    with pytest.raises(CatalogError):
        Catalog([]).sample(np.random.default_rng(0), 1)


# ---------------------------------------------------------------- loaders

OPENAI_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
        "read_only": True,
        "result_schema": {"type": "object", "properties": {"temp": {"type": "number"}}, "required": ["temp"]},
    },
    {
        "name": "send_note",
        "description": "",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
]

TOOLBENCH_TOOL: dict[str, Any] = {
    "tool_name": "Open Weather Map",
    "tool_description": "Current weather and forecasts.",
    "category_name": "Weather",
    "home_url": "https://rapidapi.com/x/api/open-weather-map",
    "api_list": [
        {
            "name": "current weather data",
            "url": "https://open-weather-map.p.rapidapi.com/weather",
            "description": "Current weather for a city.",
            "method": "GET",
            "required_parameters": [{"name": "q", "type": "STRING", "description": "City name", "default": "London"}],
            "optional_parameters": [
                {"name": "units", "type": "STRING", "description": "", "default": ""},
                {"name": "cnt", "type": "NUMBER", "description": "Count", "default": 5},
                {"name": "start", "type": "DATE (YYYY-MM-DD)", "description": "Start day", "default": ""},
                {"name": "geo", "type": "GEOPOINT (latitude, longitude)", "description": "Point", "default": ""},
            ],
        },
        {
            "name": "SubscribeAlerts",
            "url": "https://open-weather-map.p.rapidapi.com/alerts",
            "description": "",
            "method": "POST",
            "required_parameters": [{"name": "email", "type": "STRING", "description": "Email", "default": ""}],
            "optional_parameters": [
                {"name": "daily", "type": "BOOLEAN", "description": "Daily digest", "default": True}
            ],
        },
    ],
}

MCP_RESULT: dict[str, Any] = {
    "tools": [
        {
            "name": "read_file",
            "description": "Read a file.",
            "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
            "outputSchema": {"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]},
            "annotations": {"readOnlyHint": True},
        },
        {
            "name": "write_file",
            "inputSchema": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            },
        },
    ]
}


def test_from_openai() -> None:
    catalog = Catalog.from_openai(OPENAI_TOOLS, category="assist")
    weather, note = catalog.tools
    assert weather.read_only and not weather.result_schema_inferred and weather.category == "assist"
    assert weather.required == ["city"]
    assert not note.read_only and note.result_schema_inferred and note.result_schema == {"type": "object"}
    assert note.description == "send note"
    assert Catalog.load(OPENAI_TOOLS).get("get_weather").category == "custom"
    assert len(Catalog.load({"tools": OPENAI_TOOLS})) == 2


def test_from_toolbench() -> None:
    catalog = Catalog.from_toolbench(TOOLBENCH_TOOL)
    current, alerts = catalog.tools
    assert current.name == "open_weather_map_current_weather_data"
    assert alerts.name == "open_weather_map_subscribe_alerts"
    assert current.category == alerts.category == "weather"
    assert current.read_only and not alerts.read_only
    assert current.result_schema_inferred and current.result_schema == {"type": "object"}
    props = current.parameters["properties"]
    assert current.required == ["q"]
    assert props["q"] == {"type": "string", "description": "City name", "default": "London"}
    assert props["units"]["description"] == "units" and "default" not in props["units"]
    assert props["cnt"]["type"] == "number" and props["cnt"]["default"] == 5
    assert props["start"] == {"type": "string", "description": "Start day", "format": "date"}
    assert props["geo"]["type"] == "string"
    assert alerts.parameters["properties"]["daily"]["type"] == "boolean"
    assert alerts.description == "open weather map subscribe alerts"
    assert [s.name for s in Catalog.load([TOOLBENCH_TOOL])] == [current.name, alerts.name]


def test_toolbench_long_and_clashing_names() -> None:
    api = {"name": "Get " + "very long " * 10, "method": "GET", "required_parameters": [], "optional_parameters": []}
    catalog = Catalog.from_toolbench({"tool_name": "9Tool", "api_list": [api, dict(api)]})
    first, second = catalog.tools
    assert len(first.name) == len(second.name) == 64
    assert re.fullmatch(TOOL_NAME_PATTERN, first.name) and first.name.startswith("_9_tool_get_very_long")
    assert second.name.endswith("_2") and first.category == "toolbench"


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "jsonrpc"])
def test_from_mcp(wrapped: bool) -> None:
    data = {"jsonrpc": "2.0", "id": 1, "result": MCP_RESULT} if wrapped else MCP_RESULT
    for catalog in (Catalog.from_mcp(data), Catalog.load(data)):
        read, write = catalog.tools
        assert read.read_only and not read.result_schema_inferred
        assert read.result_schema["required"] == ["content"]
        assert not write.read_only and write.result_schema_inferred and write.result_schema == {"type": "object"}
        assert write.description == "write file" and write.category == "mcp"


def test_mcp_errors_name_the_pointer() -> None:
    with pytest.raises(CatalogError, match="JSON-RPC response is an error"):
        Catalog.load({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "nope"}})
    bad = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [MCP_RESULT["tools"][0], {"name": "x", "inputSchema": 3}]}}
    with pytest.raises(CatalogError, match=r"/result/tools/1"):
        Catalog.from_mcp(bad)


def test_to_json_round_trip() -> None:
    catalog = Catalog(list(DEFAULT.categories["weather"]) + Catalog.from_mcp(MCP_RESULT).tools)
    again = Catalog.load(json.loads(json.dumps(catalog.to_json())))
    assert again.tools == catalog.tools
    assert [c["category"] for c in catalog.to_json()["categories"]] == ["weather", "mcp"]


# ---------------------------------------------------------------- files and errors


def _catalog_doc(tools: list[Any], category: str = "demo") -> dict[str, Any]:
    return {"category": category, "description": "Demo tools.", "tools": tools}


def _tool(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": "A tool.", "parameters": {"type": "object", "properties": {}}},
        **extra,
    }


def test_load_file_and_directory(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(_catalog_doc([_tool("demo_a", read_only=True)])))
    (tmp_path / "b.json").write_text(json.dumps(OPENAI_TOOLS))
    (tmp_path / "notes.txt").write_text("not a catalog")
    single = Catalog.load(tmp_path / "a.json")
    assert [s.name for s in single] == ["demo_a"] and single.get("demo_a").read_only
    assert Catalog.load(str(tmp_path / "a.json")).tools == single.tools
    both = Catalog.load(tmp_path)
    assert [s.name for s in both] == ["demo_a", "get_weather", "send_note"]
    assert set(both.categories) == {"demo", "custom"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CatalogError, match=r"no \.json"):
        Catalog.load(empty)


def test_bad_tool_error_names_file_and_pointer(tmp_path: Path) -> None:
    bad_result = {"type": "object", "properties": {"x": {"type": "strin"}}}
    tools = [_tool(f"demo_{i}") for i in range(3)] + [_tool("demo_bad", result_schema=bad_result)]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_catalog_doc(tools)))
    with pytest.raises(CatalogError) as info:
        Catalog.load(path)
    message = str(info.value)
    assert str(path) in message and "/tools/3" in message
    assert "demo_bad" in message and "result_schema" in message and "/properties/x/type" in message


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        (_tool("bad name!"), "name"),
        (_tool("demo_x", readonly=True), "unknown keys"),
        ({"type": "function", "function": {"description": "no name"}}, "no string 'name'"),
        (
            {"type": "function", "function": {"name": "demo_p", "parameters": {"type": "array"}}},
            "parameters must be a JSON Schema of type 'object'",
        ),
        (
            {"type": "function", "function": {"name": "demo_q", "parameters": {"type": "object", "required": 5}}},
            "parameters is not a valid JSON Schema",
        ),
        ("not a tool", "expected a tool object"),
    ],
)
def test_invalid_tools_rejected(tmp_path: Path, tool: Any, expected: str) -> None:
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(_catalog_doc([_tool("demo_ok"), tool])))
    with pytest.raises(CatalogError, match=re.escape(expected)) as info:
        Catalog.load(path)
    assert f"{path}: /tools/1" in str(info.value)


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "category": "demo",\n  "tools": [,]\n}\n')
    with pytest.raises(CatalogError, match=r"broken\.json: invalid JSON at line 3"):
        Catalog.load(path)
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.load(tmp_path / "missing.json")


def test_unknown_format_rejected() -> None:
    with pytest.raises(CatalogError, match="unrecognised catalog format"):
        Catalog.load({"hello": "world"})


def test_validate_schemas_names_tool_and_schema() -> None:
    spec = ToolSpec(name="demo_v", description="d", parameters={"type": "object", "properties": {"a": {"type": 1}}})
    with pytest.raises(CatalogError, match=r"tool 'demo_v': parameters is not a valid JSON Schema.*/properties/a/type"):
        validate_schemas(spec)
    validate_schemas(_spec("demo_ok"))
