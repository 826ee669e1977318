"""The task generator's validity gate, alternatives and answer schema.

The gate checks are pure functions, tested on good and bad texts and drafts (the bad texts are
what SmolLM2-135M really wrote). The repair/regenerate loop runs against the scripted fake
server over real HTTP, through the same client as a run against llama.cpp or vLLM.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trustee_env.catalog import Catalog
from trustee_env.checks import match_value
from trustee_env.config import EndpointConfig
from trustee_env.errors import SimulatorOutputError
from trustee_env.llm.cache import ResponseCache
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.roles.task_generator import (
    GateStats,
    TaskDraft,
    TaskGenerator,
    is_identifier_name,
    prose_problems,
    similarity,
    task_schema,
)
from trustee_env.schemas import Aspects, ToolSpec
from trustee_env.testing import FakeLLMServer, Reply, ScriptedSimulator

# What SmolLM2-135M wrote into real tasks.
JUNK_INTENT = '")} { } {"'
CUT_INTENT = "To create the list of hotels,"
DEBRIS_QUERY = "{{guest}}. You will find only the facts you need in the hotel list."

GET_ORDER = ToolSpec(
    name="get_order",
    description="Look an order up by its id.",
    parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    read_only=True,
)
SHIP = ToolSpec(
    name="ship_parcel",
    description="Ship a parcel to a country.",
    parameters={
        "type": "object",
        "properties": {
            "country": {"type": "string"},
            "weight_kg": {"type": "number"},
            "speed": {"type": "string", "enum": ["standard", "express"]},
            "sku": {"type": "string", "pattern": "^[A-Z]{3}-\\d{3}$", "maxLength": 7},
        },
        "required": ["country", "weight_kg"],
    },
)
TOOLS = [GET_ORDER, SHIP]


def aspects(num_calls: int = 1, num_tools: int = 2) -> Aspects:
    return Aspects(
        num_tools=num_tools,
        num_calls=num_calls,
        num_turns=1,
        prompt_specificity="standard",
        persona="beginner",
        ambiguity="clear",
        strictness=2,
    )


def good_draft(**overrides: Any) -> dict[str, Any]:
    """A draft over TOOLS that passes every gate check."""
    draft = {
        "system_prompt": "You are the shop's assistant. Look orders up when asked.",
        "persona": {"name": "Ada", "description": "A careful shopper who writes short messages."},
        "intent": "Find out whether order A-1001 has shipped.",
        "user_facts": {"order_id": "A-1001"},
        "first_query": "Hi, has my order A-1001 shipped yet?",
        "expected_calls": [{"name": "get_order", "arguments": {"order_id": "A-1001"}}],
        "initial_state": {"orders": [{"order_id": "A-1001", "status": "shipped"}]},
        "rubric": ["The assistant reports the order's status."],
    }
    draft.update(copy.deepcopy(overrides))
    return draft


def gate_names(generator: TaskGenerator, draft: dict[str, Any], num_calls: int = 1) -> set[str]:
    return {failure.check for failure in generator.gate(TaskDraft.model_validate(draft), TOOLS, aspects(num_calls))}


# ----------------------------------------------------------------------------- natural language


@pytest.mark.parametrize(
    "text",
    [
        "Hi, has my order A-1001 shipped yet?",
        "What is the weather in Paris",
        "Transfer $1,250.00 from 12345678 to 87654321",
        "A retired teacher who types slowly and politely.",
        "Book two seats on flight AF123 (window, if possible).",
        "Où est ma commande ? Elle devait arriver lundi.",
    ],
)
def test_prose_accepts_natural_language(text: str):
    assert prose_problems(text, min_chars=10, min_words=2) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (JUNK_INTENT, "mostly symbols"),
        (JUNK_INTENT, "too short"),
        (CUT_INTENT, "cut off"),
        (DEBRIS_QUERY, "template syntax {{ }}"),
        ('{"intent": "find the order"}', "is JSON"),
        ("[1, 2, 3]", "is JSON"),
        ("I want to book the", "cut off"),
        ("Please check the order (the one from May", "cut off"),
        ("<|im_start|> assistant says hello there", "template syntax <|"),
        ("Hello {% if x %} there friend", "template syntax {%"),
        ("ok", "too short"),
        ("   ", "empty"),
    ],
)
def test_prose_rejects_junk(text: str, reason: str):
    problems = prose_problems(text, min_chars=10, min_words=2)
    assert any(reason in problem for problem in problems), problems


def test_template_debris_is_not_reported_as_json():
    problems = prose_problems(DEBRIS_QUERY)
    assert not any("JSON" in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("intent", JUNK_INTENT),
        ("intent", CUT_INTENT),
        ("first_query", DEBRIS_QUERY),
        ("system_prompt", "{{system}}"),
    ],
)
def test_gate_rejects_the_real_bad_examples(field: str, value: str):
    generator = TaskGenerator(client=None)  # type: ignore[arg-type]  # the gate needs no LM
    draft = good_draft(**{field: value})
    failures = generator.gate(TaskDraft.model_validate(draft), TOOLS, aspects())
    assert {failure.check for failure in failures} == {"natural_language"}
    assert all(str(failure).startswith(f"[natural_language] {field} ") for failure in failures)


def test_gate_rejects_a_junk_persona_description():
    generator = TaskGenerator(client=None)  # type: ignore[arg-type]
    draft = good_draft(persona={"name": "Ada", "description": "}}} ]]] {{{"})
    assert gate_names(generator, draft) == {"natural_language"}


def test_a_good_draft_passes_every_check():
    generator = TaskGenerator(client=None, require_records=True)  # type: ignore[arg-type]
    assert generator.gate(TaskDraft.model_validate(good_draft()), TOOLS, aspects()) == []


# ----------------------------------------------------------------------------- grounding and records


def test_ungrounded_value_fails_and_an_alternative_can_ground_it():
    generator = TaskGenerator(client=None, ungrounded="reject")  # type: ignore[arg-type]
    call = {"name": "ship_parcel", "arguments": {"country": "DE", "weight_kg": 2}}
    draft = good_draft(
        first_query="Please ship my 2 kg parcel to Germany.",
        user_facts={},
        initial_state={},
        expected_calls=[call],
    )
    assert gate_names(generator, draft) == {"grounded"}
    grounded = dict(call, alternatives={"country": ["Germany"]})
    assert gate_names(generator, {**draft, "expected_calls": [grounded]}) == set()
    relaxed = TaskGenerator(client=None, ungrounded="relax")  # type: ignore[arg-type]
    assert gate_names(relaxed, draft) == set()


@pytest.mark.parametrize(
    ("name", "is_id"),
    [
        ("order_id", True),
        ("orderId", True),
        ("ID", True),
        ("hotelid", True),
        ("flight_number", True),
        ("booking_code", True),
        ("sku", True),
        ("currency_code", False),
        ("zip_code", False),
        ("page_number", False),
        ("max_results", False),
        ("valid", False),
        ("query", False),
        ("number", False),
    ],
)
def test_identifier_names(name: str, is_id: bool):
    assert is_identifier_name(name) is is_id


def test_read_tools_must_find_their_records():
    generator = TaskGenerator(client=None, require_records=True)  # type: ignore[arg-type]
    missing = good_draft(initial_state={"orders": [{"order_id": "B-2002", "status": "open"}]})
    failures = generator.gate(TaskDraft.model_validate(missing), TOOLS, aspects())
    assert [failure.check for failure in failures] == ["records_exist"]
    assert "order_id='A-1001'" in failures[0].message
    assert gate_names(generator, good_draft()) == set()
    # a write tool may create what is not there yet; only read-only tools are checked
    write = good_draft(
        first_query="Ship 2 kg to France, please.",
        expected_calls=[{"name": "ship_parcel", "arguments": {"country": "France", "weight_kg": 2}}],
        initial_state={},
    )
    assert gate_names(generator, write) == set()
    # off unless asked for
    assert gate_names(TaskGenerator(client=None), missing) == set()  # type: ignore[arg-type]


def test_calls_check_counts_and_tools():
    generator = TaskGenerator(client=None)  # type: ignore[arg-type]
    assert gate_names(generator, good_draft(), num_calls=2) == {"calls"}
    unknown = good_draft(expected_calls=[{"name": "delete_everything", "arguments": {}}])
    assert gate_names(generator, unknown) == {"calls"}


# ----------------------------------------------------------------------------- schema and alternatives


def _objects(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            yield path, schema
        for key, value in schema.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _objects(value, f"{path}/{index}")


def test_answer_schema_takes_its_bounds_from_the_draft_model():
    schema = task_schema(TOOLS, aspects())
    model = TaskDraft.model_json_schema()
    for name in ("system_prompt", "intent", "first_query"):
        for bound in ("minLength", "maxLength"):
            assert schema["properties"][name][bound] == model["properties"][name][bound], (name, bound)
    persona = model["$defs"]["DraftPersona"]["properties"]["description"]
    assert schema["properties"]["persona"]["properties"]["description"]["maxLength"] == persona["maxLength"]
    assert schema["properties"]["rubric"]["maxItems"] == model["properties"]["rubric"]["maxItems"]
    assert "gate_repairs" not in schema["properties"], "code fills gate_repairs, never the LM"


def test_answer_schema_closes_every_object_but_free_maps():
    schema = task_schema(TOOLS, aspects())
    free = {"/properties/user_facts", "/properties/initial_state", "/properties/initial_state/additionalProperties"}
    for path, obj in _objects(schema):
        if path in free or (path.endswith("/items") and "initial_state" in path):
            continue
        assert obj.get("additionalProperties") is False, path


def test_answer_schema_never_bounds_a_patterned_string():
    schema = task_schema(TOOLS, aspects())

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    patterned = [node for node in walk(schema) if isinstance(node.get("pattern"), str)]
    assert patterned, "the SKU argument keeps its pattern"
    assert all("maxLength" not in node and "minLength" not in node for node in patterned)


def test_alternatives_are_offered_for_free_scalars_only():
    variants = task_schema(TOOLS, aspects())["properties"]["expected_calls"]["items"]["anyOf"]
    ship = next(v for v in variants if v["properties"]["name"]["const"] == "ship_parcel")
    offered = ship["properties"]["alternatives"]["properties"]
    assert set(offered) == {"country", "weight_kg", "sku"}  # not the enum
    assert offered["country"]["maxItems"] == 3 and offered["country"]["items"]["maxLength"] <= 60
    assert "alternatives" not in ship["required"]


def test_build_turns_valid_alternatives_into_one_of():
    generator = TaskGenerator(client=None)  # type: ignore[arg-type]
    call = {
        "name": "ship_parcel",
        "arguments": {"country": "United States", "weight_kg": 2, "speed": "express"},
        "alternatives": {
            "country": ["US", "USA", "united states", 5],  # a duplicate and a wrong type
            "weight_kg": ["two"],  # wrong type
            "speed": ["standard"],  # enums take no alternatives
            "missing": ["x"],  # not an argument
        },
    }
    draft = good_draft(
        first_query="Ship my 2 kg parcel to the United States, express please.",
        expected_calls=[call],
        initial_state={},
    )
    task = generator.build(TaskDraft.model_validate(draft), TOOLS, aspects(), difficulty=10, seed=1)
    expected = task.expected_calls[0]
    assert expected.matchers == {"country": "one_of", "weight_kg": "normalized", "speed": "exact"}
    assert expected.alternatives == {"country": ["US", "USA"]}
    assert any("dropped 5 unusable alternative" in note for note in task.notes), task.notes
    for actual, ok in [("US", True), ("usa", True), ("United States", True), ("Canada", False)]:
        assert match_value("one_of", "United States", actual, alternatives=expected.alternatives["country"]) is ok


# ----------------------------------------------------------------------------- near-duplicates


def test_similarity_and_near_duplicate_window():
    assert similarity("check my order a1001", "check my order a1001") == 1.0
    assert similarity("check my order a1001", "book a table for two tonight") < 0.5
    generator = TaskGenerator(client=None, dedup_window=2)  # type: ignore[arg-type]
    task = generator.build(TaskDraft.model_validate(good_draft()), TOOLS, aspects(), difficulty=10, seed=1)
    generator._accept(task, [])
    assert not generator.is_near_duplicate(task), "the same seed again is a replay, not a duplicate"
    again = task.model_copy(update={"seed": 2, "first_query": task.first_query + "!"})
    assert generator.is_near_duplicate(again)
    other = task.model_copy(update={"seed": 3, "first_query": "Please cancel my gym membership today."})
    assert not generator.is_near_duplicate(other)


# ----------------------------------------------------------------------------- against the fake server


QUERIES = [
    "Hi, has my order A-1001 shipped yet?",
    "My aunt asked me to find out where parcel A-1001 is; could you look it up?",
    "Quick question about A-1001: is it still in the warehouse or on a truck?",
]


class TaskScript:
    """Answers task requests from a queue of drafts (the last one repeats); counts them."""

    def __init__(self, drafts: list[Any], vary: bool = False) -> None:
        self.drafts = list(drafts)
        self.vary = vary
        self.calls = 0

    def __call__(self, role: str, request: dict[str, Any]) -> Reply | str | dict[str, Any]:
        assert role == "task_generator"
        answer = self.drafts.pop(0) if len(self.drafts) > 1 else self.drafts[0]
        self.calls += 1
        if isinstance(answer, dict):
            answer = copy.deepcopy(answer)
            if self.vary:  # a different task for every request
                answer["first_query"] = QUERIES[(self.calls - 1) % len(QUERIES)]
        return answer


@pytest.fixture
def generator_for(tmp_path: Path) -> Iterator[Callable[..., tuple[TaskGenerator, FakeLLMServer]]]:
    servers: list[FakeLLMServer] = []

    def make(script: Any, cache: bool = False, **kwargs: Any) -> tuple[TaskGenerator, FakeLLMServer]:
        server = FakeLLMServer(script).start()
        servers.append(server)
        endpoint = EndpointConfig(base_url=server.base_url, max_retries=0, max_repairs=2, timeout=10.0)
        store = ResponseCache(tmp_path / "cache.sqlite") if cache else None
        client = LLMClient("task_generator", endpoint, cache=store)
        return TaskGenerator(client, **kwargs), server

    yield make
    for server in servers:
        server.stop()


CATALOG = Catalog([GET_ORDER])


def generate(generator: TaskGenerator, seed: int = 7, attempts: int = 3) -> tuple[Any, Usage]:
    usage = Usage()
    task = asyncio.run(
        generator.generate_with_attempts(CATALOG, seed, 10.0, aspects(num_tools=1), attempts=attempts, usage=usage)
    )
    return task, usage


def repair_prompts(server: FakeLLMServer) -> list[str]:
    return [body["messages"][-1]["content"] for _, body in server.requests if len(body["messages"]) > 2]


def test_scripted_simulator_junk_then_valid(generator_for):
    """The scripted simulator's fault queue serves the junk draft first, then its task."""
    junk = Reply(content=json.dumps(good_draft(intent=JUNK_INTENT)))
    generator, server = generator_for(ScriptedSimulator(task=good_draft(), faults={"task_generator": [junk]}))
    task, _ = generate(generator)
    assert task.intent == good_draft()["intent"] and task.notes == ["gate: repaired natural_language"]
    assert len(server.requests) == 2


def test_junk_draft_is_repaired_into_a_valid_task(generator_for):
    junk = good_draft(intent=JUNK_INTENT, first_query=DEBRIS_QUERY)
    generator, server = generator_for(TaskScript([junk, good_draft()]))
    task, usage = generate(generator)
    assert task.intent == good_draft()["intent"]
    assert "gate: repaired natural_language" in task.notes
    assert usage.roles["task_generator"].repairs == 1
    prompt = repair_prompts(server)[0]
    assert "[natural_language] intent" in prompt and "[natural_language] first_query" in prompt
    stats = generator.gate_stats
    assert (stats.requests, stats.drafts_checked, stats.drafts_passed) == (1, 2, 1)
    assert (stats.first_draft_passed, stats.passed_after_repair, stats.tasks) == (0, 1, 1)
    assert stats.failed == {"natural_language": 1}


def test_a_request_that_stays_junk_is_regenerated(generator_for):
    junk = good_draft(intent=CUT_INTENT)
    generator, server = generator_for(TaskScript([junk, junk, junk, good_draft()]))
    task, _ = generate(generator)
    assert task.notes[0] == "gate: attempt 0 rejected (natural_language)"
    seeds = [body["seed"] for _, body in server.requests]
    assert len(seeds) == 4 and seeds[3] not in seeds[:3], "the regeneration uses a fresh seed"
    stats = generator.gate_stats
    assert (stats.requests, stats.requests_failed, stats.regenerations, stats.first_draft_passed) == (2, 1, 1, 1)


def test_never_valid_raises_with_the_failed_checks(generator_for):
    junk = good_draft(intent=JUNK_INTENT, initial_state={"orders": []})
    generator, server = generator_for(TaskScript([junk]), require_records=True)
    with pytest.raises(SimulatorOutputError) as caught:
        generate(generator)
    message = str(caught.value)
    assert "no task passed the gate in 3 attempt(s)" in message
    # the missing order record is added by code (see the next test), so only the junk intent remains
    assert "failed checks (attempts): natural_language x3" in message and "records_exist" not in message
    assert caught.value.role == "task_generator"
    assert len(server.requests) == 9  # 3 attempts x (1 draft + 2 repairs)
    assert generator.gate_stats.gave_up == 1 and generator.gate_stats.failed["natural_language"] == 9


def test_unparseable_answers_name_the_output_failure(generator_for):
    generator, _ = generator_for(TaskScript([Reply(content="not json at all")]))
    with pytest.raises(SimulatorOutputError, match=r"failed checks \(attempts\): invalid_output x3"):
        generate(generator)


def test_notes_survive_a_replay_from_the_cache(generator_for):
    junk = good_draft(first_query=DEBRIS_QUERY)
    generator, server = generator_for(TaskScript([junk, good_draft()]), cache=True)
    first, _ = generate(generator)
    replayed, _ = generate(generator)
    assert len(server.requests) == 2, "the second run is served from the cache"
    assert replayed == first and "gate: repaired natural_language" in replayed.notes
    assert generator.gate_stats.cache_hits == 1


def test_near_duplicates_are_regenerated_then_kept(generator_for):
    generator, server = generator_for(TaskScript([good_draft()]), dedup_window=8)
    generate(generator, seed=1)
    task, _ = generate(generator, seed=2)  # the script writes the same task for every seed
    assert len(server.requests) == 1 + 3
    assert task.notes[-1] == "gate: kept a near-duplicate (no fresh task within the attempts)"
    assert generator.gate_stats.near_duplicates == 3

    fresh, server = generator_for(TaskScript([good_draft()], vary=True), dedup_window=8)
    generate(fresh, seed=1)
    generate(fresh, seed=2)
    assert fresh.gate_stats.near_duplicates == 0 and len(server.requests) == 2


def test_gate_stats_are_json_able():
    stats = GateStats(failed={"grounded": 2})
    assert stats.as_dict()["failed"] == {"grounded": 2}


def test_attempt_seeds_match_the_episode_formula():
    from trustee_env.episode import derive_seed
    from trustee_env.roles.task_generator import _task_seed

    assert [_task_seed(42, k) for k in range(3)] == [derive_seed(42, "task", k) for k in range(3)]


def test_gate_options_come_from_the_config_and_the_duplicate_rate_is_measured(fake_server, mock_catalog) -> None:
    import gymnasium as gym

    from trustee_env.testing import ScriptedSimulator

    server = fake_server(ScriptedSimulator())
    env = gym.make("Trustee-v0", base_url=server.base_url, catalog=mock_catalog, task_dedup_window=5, difficulty=10)
    generator = env.unwrapped.roles.task_generator
    assert generator.require_records is True and generator._recent.maxlen == 5
    for seed in range(3):  # the scripted generator writes near-identical tasks for every seed
        env.reset(seed=seed)
        env.unwrapped.finish("test")
    gate = env.unwrapped.stats["task_gate"]
    assert gate["near_duplicates"] >= 1, gate  # regenerated at least once
    assert gate["tasks"] == 3 and gate["near_duplicates_seen"] >= 1
    env.close()
    off = gym.make("Trustee-v0", base_url=server.base_url, catalog=mock_catalog, task_require_records=False)
    assert off.unwrapped.roles.task_generator.require_records is False
    off.close()


def test_ground_mode_gives_ungrounded_values_to_the_user(fake_server, mock_catalog) -> None:
    """The default: an expected value the user could not know becomes one of the user's facts (no LM round-trip)."""
    import gymnasium as gym

    from trustee_env.testing import ScriptedSimulator

    draft = {
        "system_prompt": "You are the store's assistant.",
        "persona": {"name": "Sam", "description": "A busy professional."},
        "intent": "Cancel the order that arrives too late.",
        "user_facts": {},
        "first_query": "Please cancel my order, it arrives too late.",
        "expected_calls": [{"name": "mock_cancel_order", "arguments": {"order_id": "A-100"}}],
        "initial_state": {"orders": [{"id": "B-7", "status": "open"}]},
        "rubric": ["The order is cancelled."],
    }
    server = fake_server(ScriptedSimulator(task=draft))
    aspects = {"num_tools": 3, "num_calls": 1, "num_turns": 1, "strictness": 2}
    for mode, matcher in (("ground", "normalized"), ("relax", "any")):
        env = gym.make("Trustee-v0", base_url=server.base_url, catalog=mock_catalog, aspects=aspects,
                       ungrounded_arguments=mode)  # fmt: skip
        env.reset(seed=1)
        task = env.unwrapped.episode.task
        assert task.expected_calls[0].matchers["order_id"] == matcher, mode
        assert (task.user_facts.get("order_id") == "A-100") is (mode == "ground"), mode
        assert any("order_id" in note for note in task.notes), task.notes
        env.close()
    assert [role for role in server.roles() if role == "task_generator"] == ["task_generator"] * 2  # no repairs


def test_an_unusable_system_prompt_and_persona_are_rewritten_by_code(fake_server, mock_catalog) -> None:
    """They frame the task but carry none of it: code writes them instead of another LM round-trip."""
    import gymnasium as gym

    from trustee_env.testing import ScriptedSimulator

    draft = {
        "system_prompt": '["You are", {"role": "agent"}]',
        "persona": {"name": "Sam", "description": "{{persona}}"},
        "intent": "Cancel order A-100 because it arrives too late.",
        "user_facts": {"order": "A-100"},
        "first_query": "Please cancel my order A-100, it arrives too late.",
        "expected_calls": [{"name": "mock_cancel_order", "arguments": {"order_id": "A-100"}}],
        "initial_state": {"orders": [{"id": "A-100", "status": "open"}]},
        "rubric": ["The order is cancelled."],
    }
    server = fake_server(ScriptedSimulator(task=draft))
    aspects = {"num_tools": 3, "num_calls": 1, "num_turns": 1, "strictness": 2, "prompt_specificity": "detailed"}
    env = gym.make("Trustee-v0", base_url=server.base_url, catalog=mock_catalog, aspects=aspects)
    env.reset(seed=1)
    task = env.unwrapped.episode.task
    assert "mock_cancel_order" in task.system_prompt and "{" not in task.system_prompt
    assert task.persona.description == "Expert user who writes short, plain messages."
    assert any("system_prompt written by code" in note for note in task.notes), task.notes
    assert [role for role in server.roles() if role == "task_generator"] == ["task_generator"]  # no LM repair
    env.close()


def test_a_missing_record_is_added_to_the_state_by_code(generator_for):
    """records_exist is repaired deterministically: the looked-up record goes into the world state."""
    draft = good_draft(initial_state={"orders": [{"id": "Z-9", "status": "open"}]})
    generator, server = generator_for(TaskScript([draft]), require_records=True)
    task, _ = generate(generator)
    looked_up = [call.arguments for call in task.expected_calls if task.tool(call.name).read_only]
    for arguments in looked_up:
        assert any(all(record.get(k) == v for k, v in arguments.items()) for record in task.initial_state["orders"]), (
            task.initial_state
        )
    assert any("added to initial_state/orders by code" in note for note in task.notes) == bool(looked_up)
    assert len(server.requests) == 1  # no LM repair
