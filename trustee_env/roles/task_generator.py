"""TaskGenerator: tools + difficulty aspects -> a validated Task, behind a validity gate.

The answer schema is built per request: each expected call must name an offered tool
and its arguments must follow that tool's own parameter schema, so a grammar-constrained
server cannot even write an invalid call. What a schema cannot say is checked in code by
the *gate*, a set of pure checks run on every draft:

- ``calls``: the right number of calls, offered tools, arguments valid for their schema, no repeats;
- ``natural_language``: intent, persona description, first query and system prompt are prose
  (letters and words, long enough, not JSON, no template debris such as ``{{``, not cut off);
- ``grounded``: every exact/normalized expected value can be learnt from the first query,
  the user's facts or the initial state (DESIGN, decision 3);
- ``records_exist``: an identifier a read-only tool looks up is a value of the initial state;
- ``near_duplicate``: (optional) the task is not nearly the same as a recent one.

A failing draft goes back to the LM as a repair (the client's bounded ``validate=`` round trips);
a request that still fails is regenerated with a new seed and a new tool sample, within the
attempt budget (:meth:`TaskGenerator.generate_with_attempts`).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import unicodedata
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field

from trustee_env.catalog import Catalog
from trustee_env.checks import choose_matcher, normalize
from trustee_env.errors import LLMError, SimulatorOutputError
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.prompts import render_messages, render_parts
from trustee_env.schemas import (
    Aspects,
    ExpectedCall,
    Persona,
    Task,
    ToolSpec,
    bounded_schema,
    canonical_json,
    content_hash,
    schema_errors,
)
from trustee_env.world import RECORD_SCHEMA, SCALAR_SCHEMA, STATE_SCHEMA

__all__ = [
    "GATE_CHECKS",
    "RECORD_SCHEMA",
    "GateFailure",
    "GateStats",
    "TaskDraft",
    "TaskGenerator",
    "is_identifier_name",
    "prose_problems",
    "similarity",
    "task_schema",
]

GATE_CHECKS = ("calls", "natural_language", "grounded", "records_exist", "near_duplicate")
MAX_ALTERNATIVES = 3
REPORT_WINDOW = 64  # recent tasks the near-duplicate rate is measured against
ALTERNATIVE_MAX_STRING = 60


class DraftPersona(BaseModel):
    """The persona as the LM writes it (expertise is set by code)."""

    name: str = Field(min_length=1, max_length=40)
    description: str = Field(min_length=10, max_length=200)


class DraftCall(BaseModel):
    """An expected call as the LM writes it."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    alternatives: dict[str, list[Any]] = Field(
        default_factory=dict, description="Argument name -> other acceptable values (abbreviations, synonyms)."
    )


class TaskDraft(BaseModel):
    """What the task-generator LM returns; its field bounds are also the answer schema's bounds."""

    system_prompt: str = Field(min_length=10, max_length=800)
    persona: DraftPersona
    intent: str = Field(min_length=10, max_length=400)
    user_facts: dict[str, Any] = Field(default_factory=dict)
    first_query: str = Field(min_length=5, max_length=400)
    expected_calls: list[DraftCall]
    initial_state: dict[str, Any] = Field(default_factory=dict)
    rubric: list[Annotated[str, Field(max_length=150)]] = Field(default_factory=list, min_length=1, max_length=4)
    # Filled by code, never by the LM (the answer schema has no such field): the gate checks that earlier
    # drafts of this answer failed. The client caches the answer after validating it, so a replay keeps it.
    gate_repairs: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------------- the answer schema

_BOUND_KEYS = ("type", "minLength", "maxLength", "minItems", "maxItems", "items")


@functools.lru_cache(maxsize=8)
def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _bounds_of(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The JSON schema of one field of ``model``, reduced to its type and length bounds."""
    prop = _model_schema(model)["properties"][name]
    return {key: prop[key] for key in _BOUND_KEYS if key in prop}


def _grammar_safe(schema: Any) -> Any:
    """Drop string length bounds next to a ``pattern`` (xgrammar rejects strings with both)."""
    if isinstance(schema, list):
        return [_grammar_safe(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _grammar_safe(value) for key, value in schema.items()}
    if "pattern" in out and isinstance(out["pattern"], str):
        out.pop("maxLength", None)
        out.pop("minLength", None)
    return out


def _alternative_arguments(tool: ToolSpec) -> dict[str, dict[str, Any]]:
    """Arguments that may carry alternative values: free strings and numbers (not enums, booleans, arrays)."""
    out = {}
    for arg, schema in tool.parameters.get("properties", {}).items():
        if not isinstance(schema, dict) or any(key in schema for key in ("enum", "const")):
            continue
        if schema.get("type") in ("string", "number", "integer"):
            out[arg] = schema
    return out


def _call_variant(tool: ToolSpec) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "name": {"const": tool.name},
        "arguments": bounded_schema(tool.parameters, max_string=120),
    }
    candidates = _alternative_arguments(tool)
    if candidates:
        properties["alternatives"] = {
            "type": "object",
            "properties": {
                arg: {
                    "type": "array",
                    "items": bounded_schema(schema, max_string=ALTERNATIVE_MAX_STRING),
                    "maxItems": MAX_ALTERNATIVES,
                }
                for arg, schema in candidates.items()
            },
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "properties": properties,
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def task_schema(tools: list[ToolSpec], aspects: Aspects) -> dict[str, Any]:
    """The JSON schema the task generator must answer in, for these tools and aspects.

    Length bounds come from :class:`TaskDraft`; every object is closed except the free-form maps
    (``user_facts``, world-state records) and the tools' own argument schemas.
    """
    persona = {
        "type": "object",
        "properties": {name: _bounds_of(DraftPersona, name) for name in ("name", "description")},
        "required": ["name", "description"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {
            "system_prompt": _bounds_of(TaskDraft, "system_prompt"),
            "persona": persona,
            "intent": _bounds_of(TaskDraft, "intent"),
            "user_facts": {"type": "object", "additionalProperties": SCALAR_SCHEMA},
            "first_query": _bounds_of(TaskDraft, "first_query"),
            "expected_calls": {
                "type": "array",
                "items": {"anyOf": [_call_variant(tool) for tool in tools]},
                "minItems": aspects.num_calls,
                "maxItems": aspects.num_calls,
            },
            "initial_state": STATE_SCHEMA,
            "rubric": _bounds_of(TaskDraft, "rubric"),
        },
        "required": [
            "system_prompt",
            "persona",
            "intent",
            "user_facts",
            "first_query",
            "expected_calls",
            "initial_state",
            "rubric",
        ],
        "additionalProperties": False,
    }
    return _grammar_safe(schema)


# ---------------------------------------------------------------------- gate checks (pure functions)


@dataclass(frozen=True)
class GateFailure:
    """One failed gate check: its name (a key of :data:`GATE_CHECKS`) and a message the LM can act on."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


_TEMPLATE_DEBRIS = ("{{", "}}", "{%", "%}", "{#", "#}", "<|", "|>")
_WORD = re.compile(r"[^\W\d_]{2,}")
# Characters that belong to code or markup rather than to a sentence.
_CODE_SYMBOLS = frozenset("{}[]<>|\\^~`=_")
_CODE_SYMBOL = re.compile("[" + re.escape("".join(sorted(_CODE_SYMBOLS))) + "]")
# A sentence that stops on one of these was cut off (a user may well end without a full stop).
_DANGLING_END = tuple(",;:([{-–—/&+=")
_DANGLING_WORDS = frozenset({"the", "a", "an", "and", "or", "but", "because", "my", "your", "our", "their", "than"})


def prose_problems(text: str, *, min_chars: int = 10, min_words: int = 2) -> list[str]:
    """Why ``text`` is not natural language (empty list = it reads as prose).

    Catches what weak models write into free-text fields: JSON or brace soup (``")} { } {"``),
    unrendered template syntax (``{{guest}}``), text cut off mid-sentence (``"To create the list
    of hotels,"``), and fragments too short to carry a goal.
    """
    stripped = unicodedata.normalize("NFKC", text or "").strip()
    if not stripped:
        return ["is empty"]
    out: list[str] = []
    debris = [token for token in _TEMPLATE_DEBRIS if token in stripped]
    if debris:
        out.append(f"contains template syntax {' '.join(debris)}; write the actual words, not placeholders")
    if _is_json_container(stripped) or (stripped[0] in "{[" and not debris):
        out.append("is JSON; write plain sentences")
    # Counted with C-level loops: this runs on every free-text field of every task (~15% of the client's CPU
    # per LM call when counted a character at a time in Python).
    visible = len(stripped) - sum(map(str.isspace, stripped))
    letters = sum(map(str.isalpha, stripped))  # a letter is never a space
    symbols = len(_CODE_SYMBOL.findall(stripped))
    if letters < 0.3 * visible or symbols > 0.2 * visible:
        out.append("is mostly symbols, not words")
    words = _WORD.findall(stripped)
    if len(stripped) < min_chars or len(words) < min_words:
        out.append(f"is too short: write at least {min_words} words and {min_chars} characters")
    last_word = words[-1].casefold() if words else ""
    unbalanced = stripped.count("(") > stripped.count(")") or stripped.count("[") > stripped.count("]")
    dangling_word = last_word in _DANGLING_WORDS and stripped.casefold().endswith(last_word)
    if stripped.endswith(_DANGLING_END) or unbalanced or dangling_word:
        out.append("is cut off mid-sentence; finish the sentence")
    return out


def _is_json_container(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


# Field -> (minimum characters, minimum words) of the natural-language check.
PROSE_FIELDS: dict[str, tuple[int, int]] = {
    "system_prompt": (10, 3),
    "persona.description": (10, 2),
    "intent": (15, 3),
    "first_query": (10, 2),
}


def _prose_failures(draft: TaskDraft) -> list[GateFailure]:
    texts = {
        "system_prompt": draft.system_prompt,
        "persona.description": draft.persona.description,
        "intent": draft.intent,
        "first_query": draft.first_query,
    }
    out = []
    for name, (min_chars, min_words) in PROSE_FIELDS.items():
        for problem in prose_problems(texts[name], min_chars=min_chars, min_words=min_words):
            out.append(GateFailure("natural_language", f"{name} {problem} (got {texts[name][:60]!r})"))
    return out


_ID_SUFFIXES = frozenset({"id", "ids", "number", "num", "no", "code", "uuid", "sku", "isbn", "ref", "reference"})
_ID_WORDS = frozenset({"id", "ids", "uuid", "sku", "isbn"})
_NOT_IDS = frozenset({"valid", "paid", "grid", "hybrid", "liquid", "android", "avoid", "void", "acid", "rapid"})


# Codes and numbers that name a value of the open world or a setting, not a record of the state.
_NOT_RECORD_PREFIXES = frozenset(
    {"currency", "country", "language", "lang", "locale", "zip", "postal", "area", "region", "state", "page"}
    | {"max", "min", "limit", "count", "total", "results", "status", "error", "color", "colour", "tax"}
)


def is_identifier_name(name: str) -> bool:
    """Does an argument name a record to look up (``order_id``, ``orderId``, ``flight_number``, ``booking_code``)?

    Open-world codes (``currency_code``, ``zip_code``) and settings (``page_number``) do not.
    """
    tokens = [token.casefold() for token in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]
    if not tokens:
        return False
    if len(tokens) == 1:
        word = tokens[0]
        return word in _ID_WORDS or (word.endswith("id") and len(word) > 3 and word not in _NOT_IDS)
    return tokens[-1] in _ID_SUFFIXES and tokens[-2] not in _NOT_RECORD_PREFIXES


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _grounded(value: Any, texts: list[str], leaves: list[Any]) -> bool:
    """Could the agent learn ``value`` from the query, the user's facts or the world state?"""
    target = normalize(value)
    if any(normalize(leaf) == target for leaf in leaves):
        return True
    if isinstance(target, float):
        numbers = [float(n.replace(",", "")) for text in texts for n in re.findall(r"-?\d[\d,]*\.?\d*", text)]
        return any(abs(n - target) < 1e-9 for n in numbers)
    needle = str(target)
    return any(needle in str(normalize(text)) for text in texts)


def _valid_alternatives(call: DraftCall, tool: ToolSpec) -> dict[str, list[Any]]:
    """The draft's alternatives that can be used: for a scalar argument of the call, valid for its schema,
    different from the expected value and from each other; at most :data:`MAX_ALTERNATIVES` each."""
    candidates = _alternative_arguments(tool)
    out: dict[str, list[Any]] = {}
    for arg, values in call.alternatives.items():
        if arg not in candidates or arg not in call.arguments or not isinstance(values, list):
            continue
        seen = [canonical_json(normalize(call.arguments[arg]))]
        kept = []
        for value in values:
            if isinstance(value, (dict, list, bool)) or value is None:
                continue
            key = canonical_json(normalize(value))
            if key in seen or schema_errors(candidates[arg], value, root=arg, strict_integers=True):
                continue
            seen.append(key)
            kept.append(value)
        if kept:
            out[arg] = kept[:MAX_ALTERNATIVES]
    return out


def _ungrounded_arguments(draft: TaskDraft, by_name: dict[str, ToolSpec]) -> set[tuple[int, str]]:
    """(call index, argument) of every exact/normalized expected value the agent could not learn.

    Booleans are exempt: they follow from the intent rather than being stated. A value is grounded
    when it or one of its valid alternatives is ("AU" expected, "Australia" in the query).
    """
    texts = [draft.first_query, *(str(v) for v in draft.user_facts.values())]
    leaves = _leaves(draft.user_facts) + _leaves(draft.initial_state)
    out: set[tuple[int, str]] = set()
    for index, call in enumerate(draft.expected_calls):
        tool = by_name.get(call.name)
        if tool is None:
            continue
        properties = tool.parameters.get("properties", {})
        alternatives = _valid_alternatives(call, tool)
        for arg, value in call.arguments.items():
            matcher = choose_matcher(arg, properties.get(arg, {}), value)
            if matcher not in ("exact", "normalized") or isinstance(value, bool):
                continue
            if not any(_grounded(option, texts, leaves) for option in [value, *alternatives.get(arg, [])]):
                out.add((index, arg))
    return out


def _missing_records(draft: TaskDraft, by_name: dict[str, ToolSpec]) -> list[GateFailure]:
    """Identifiers that read-only expected calls look up but the initial state does not hold."""
    state = {canonical_json(normalize(leaf)) for leaf in _leaves(draft.initial_state)}
    out = []
    for index, call in enumerate(draft.expected_calls):
        tool = by_name.get(call.name)
        if tool is None or not tool.read_only:
            continue
        alternatives = _valid_alternatives(call, tool)
        for arg, value in call.arguments.items():
            if not is_identifier_name(arg) or isinstance(value, (bool, dict)) or value is None:
                continue
            wanted = value if isinstance(value, list) else [value]
            options = [*wanted, *alternatives.get(arg, [])]
            if isinstance(value, list):
                found = all(canonical_json(normalize(v)) in state for v in wanted)
            else:
                found = any(canonical_json(normalize(v)) in state for v in options)
            if not found:
                out.append(
                    GateFailure(
                        "records_exist",
                        f"expected_calls/{index} ({call.name}) looks up {arg}={value!r}, which is not in "
                        "initial_state; add the record it finds to initial_state",
                    )
                )
    return out


def _add_missing_records(draft: TaskDraft, by_name: dict[str, ToolSpec]) -> list[str]:
    """Deterministic repair of ``records_exist``: put each record a read-only expected call looks up into the state.

    The record holds the looked-up identifiers (and the call's other scalar arguments), in the state's
    first collection, or in one named after the tool's category when the state is empty; the tool
    simulator fills in the rest when it is read. Returns what was added, for ``Task.notes``.
    """
    added = []
    for index, call in enumerate(draft.expected_calls):
        tool = by_name.get(call.name)
        if tool is None or not tool.read_only:
            continue
        probe = TaskDraft.model_construct(expected_calls=[call], initial_state=draft.initial_state)
        if not _missing_records(probe, by_name):
            continue
        record = {
            arg: value
            for arg, value in call.arguments.items()
            if isinstance(value, (str, int, float)) and not isinstance(value, bool)
        }
        collections = [name for name, value in draft.initial_state.items() if isinstance(value, list)]
        collection = collections[0] if collections else re.sub(r"\W+", "_", tool.category.casefold()) or "records"
        draft.initial_state.setdefault(collection, []).append(record)
        added.append(f"record for expected_calls/{index} added to initial_state/{collection} by code")
    return added


def _normalized_text(task: Task) -> str:
    return " ".join(_WORD.findall(f"{task.first_query} {task.intent}".casefold()))


def similarity(a: str, b: str) -> float:
    """difflib's ratio of two normalised texts, word by word (characters cost ~40 ms a pair; words, microseconds)."""
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def _similar(a: str, b: str, threshold: float) -> bool:
    """``similarity(a, b) >= threshold``, ruling most pairs out with difflib's cheap upper bounds first."""
    matcher = difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False)
    return (
        matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold and matcher.ratio() >= threshold
    )


# ---------------------------------------------------------------------- statistics


@dataclass
class GateStats:
    """What the gate saw, for ``env.stats``: drafts are LM answers, requests are structured calls.

    A cache hit is counted as a request and a task but not as a draft (the gate did not see it again).
    """

    requests: int = 0
    drafts_checked: int = 0
    drafts_passed: int = 0
    first_draft_passed: int = 0
    passed_after_repair: int = 0
    requests_failed: int = 0
    regenerations: int = 0
    near_duplicates: int = 0
    near_duplicates_seen: int = 0  # accepted tasks close to one of the last REPORT_WINDOW (measured, not rejected)
    tasks: int = 0
    gave_up: int = 0
    cache_hits: int = 0
    failed: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able copy."""
        return asdict(self)


# ---------------------------------------------------------------------- the role


def _task_seed(seed: int, attempt: int) -> int:
    """The seed of one generation attempt; the same formula as ``episode.derive_seed(seed, "task", attempt)``."""
    return int(content_hash([seed, "task", attempt], length=8), 16) & 0x7FFFFFFF


def _checks_in(errors: Sequence[str]) -> list[str]:
    """Gate check names in a failed request's error messages (``"[records_exist] ..."``)."""
    names = {match.group(1) for error in errors if (match := re.match(r"\[(\w+)\]", error))}
    return sorted(names)


class TaskGenerator:
    """Asks the LM for a task and turns a draft that passes the gate into a validated :class:`Task`.

    Args:
        client: the task generator's LM client.
        ungrounded: what happens to an expected value the user could not know (in none of the first
            query, the user's facts, the initial state): ``"ground"`` adds it to the user's facts (a
            deterministic repair: the user can give it when asked); ``"reject"`` sends it back to the
            LM for repair; ``"relax"`` matches it as ``any``.
        prompt_dir: folder searched before the bundled prompts.
        require_records: run the ``records_exist`` check. Off by default until every scripted test
            task holds the records its read tools look up (``ScriptedSimulator``'s default task does not).
        dedup_window: how many recent tasks the near-duplicate check compares with (0 = off).
            Off by default: it makes a seed's task depend on the tasks generated before it, so a
            seeded episode is reproducible only from the cache.
        dedup_ratio: difflib ratio of normalised ``first_query + intent`` at or above which two
            tasks are near-duplicates.
    """

    def __init__(
        self,
        client: LLMClient,
        *,
        ungrounded: str = "ground",
        prompt_dir: str | None = None,
        require_records: bool = False,
        dedup_window: int = 0,
        dedup_ratio: float = 0.9,
    ) -> None:
        self.client = client
        self.ungrounded = ungrounded
        self.prompt_dir = prompt_dir
        self.require_records = require_records
        self.dedup_ratio = dedup_ratio
        self.gate_stats = GateStats()
        self._recent: deque[tuple[int, str]] = deque(maxlen=max(0, dedup_window))
        # Always measured (gate_stats.near_duplicates_seen), whether or not duplicates are regenerated.
        self._seen: deque[tuple[int, str]] = deque(maxlen=REPORT_WINDOW)

    # ------------------------------------------------------------------ the gate

    def gate(self, draft: TaskDraft, tools: list[ToolSpec], aspects: Aspects) -> list[GateFailure]:
        """Every gate check a draft fails (empty list = it may become a task). Near-duplicates are separate."""
        by_name = {tool.name: tool for tool in tools}
        failures: list[GateFailure] = []
        if len(draft.expected_calls) != aspects.num_calls:
            failures.append(GateFailure("calls", f"expected_calls must hold exactly {aspects.num_calls} call(s)"))
        seen: set[str] = set()
        ungrounded = _ungrounded_arguments(draft, by_name) if self.ungrounded == "reject" else set()
        for index, call in enumerate(draft.expected_calls):
            tool = by_name.get(call.name)
            if tool is None:
                failures.append(
                    GateFailure(
                        "calls", f"expected_calls/{index}: {call.name!r} is not one of the tools: {', '.join(by_name)}"
                    )
                )
                continue
            for error in schema_errors(tool.parameters, call.arguments, root="arguments"):
                failures.append(GateFailure("calls", f"expected_calls/{index} ({call.name}) {error}"))
            key = call.name + canonical_json(call.arguments)
            if key in seen:
                failures.append(
                    GateFailure(
                        "calls", f"expected_calls/{index}: repeats an earlier call; each expected call must differ"
                    )
                )
            seen.add(key)
            for arg, value in call.arguments.items():
                if (index, arg) in ungrounded:
                    failures.append(
                        GateFailure(
                            "grounded",
                            f"expected_calls/{index} ({call.name}) argument {arg}={value!r} appears nowhere in "
                            "first_query, user_facts or initial_state; add it to user_facts",
                        )
                    )
        if self.require_records:
            failures.extend(_missing_records(draft, by_name))
        failures.extend(_prose_failures(draft))
        return failures

    def _rewrite_framing(self, draft: TaskDraft, tools: list[ToolSpec], aspects: Aspects) -> list[str]:
        """Replace an unusable system prompt or persona description with code-written text (deterministic repair).

        These two frame the task but carry none of it (the intent, query and calls do), so a fixed text
        from ``task_fallbacks.j2`` is a better answer than another round-trip to a model that writes them
        as JSON. Returns what was rewritten, for ``Task.notes``.
        """
        fallbacks: dict[str, str] | None = None
        rewritten = []
        texts = {"system_prompt": draft.system_prompt, "persona.description": draft.persona.description}
        for name, current in texts.items():
            min_chars, min_words = PROSE_FIELDS[name]
            if not prose_problems(current, min_chars=min_chars, min_words=min_words):
                continue
            if fallbacks is None:
                fallbacks = render_parts(
                    "task_fallbacks.j2",
                    self.prompt_dir,
                    tools=[tool.model_dump() for tool in tools],
                    aspects=aspects.model_dump(),
                )
            if name == "system_prompt":
                draft.system_prompt = fallbacks["system_prompt"]
            else:
                draft.persona.description = fallbacks["persona_description"]
            rewritten.append(f"{name} written by code")
        return rewritten

    def problems(self, draft: TaskDraft, tools: list[ToolSpec], aspects: Aspects) -> list[str]:
        """The gate's failures as repair messages, each tagged with its check (empty list = fine)."""
        return [str(failure) for failure in self.gate(draft, tools, aspects)][:10]

    def is_near_duplicate(self, task: Task) -> bool:
        """Is ``task`` nearly the same as a recent task from another seed? (A same-seed repeat is a replay.)"""
        text = _normalized_text(task)
        return any(seed != task.seed and _similar(text, other, self.dedup_ratio) for seed, other in self._recent)

    # ------------------------------------------------------------------ generation

    async def generate(
        self, tools: list[ToolSpec], aspects: Aspects, *, difficulty: float, seed: int, usage: Usage
    ) -> Task:
        """One request for a task over these tools, with the client's bounded repairs.

        Raises an LLMError subclass if no draft passes the gate; its ``errors`` carry the tagged checks.
        """
        messages = render_messages(
            "task_generator.j2",
            self.prompt_dir,
            tools=[tool.model_dump() for tool in tools],
            aspects=aspects.model_dump(),
            difficulty=difficulty,
        )
        stats = self.gate_stats
        stats.requests += 1
        failed_here: set[str] = set()
        checked = 0

        def check(draft: TaskDraft) -> list[str]:
            nonlocal checked
            checked += 1
            stats.drafts_checked += 1
            rewritten = self._rewrite_framing(draft, tools, aspects)
            if self.require_records:
                rewritten += _add_missing_records(draft, {tool.name: tool for tool in tools})
            failures = self.gate(draft, tools, aspects)
            names = {failure.check for failure in failures}
            for name in names:
                stats.failed[name] = stats.failed.get(name, 0) + 1
            failed_here.update(names)
            if failures:
                return [str(failure) for failure in failures][:10]
            stats.drafts_passed += 1
            draft.gate_repairs = sorted(failed_here) + rewritten  # cached with the answer (see TaskDraft)
            return []

        role = self.client.role
        repairs_before = usage.roles[role].repairs if role in usage.roles else 0
        try:
            draft = await self.client.structured(
                messages, TaskDraft, seed=seed, usage=usage, schema=task_schema(tools, aspects), validate=check
            )
        except LLMError:
            stats.requests_failed += 1
            raise
        if checked == 0:
            stats.cache_hits += 1
        elif usage.roles[role].repairs == repairs_before:
            stats.first_draft_passed += 1
        else:
            stats.passed_after_repair += 1
        notes = [f"gate: repaired {', '.join(draft.gate_repairs)}"] if draft.gate_repairs else []
        return self.build(draft, tools, aspects, difficulty=difficulty, seed=seed, notes=notes)

    async def generate_with_attempts(
        self,
        catalog: Catalog,
        seed: int,
        difficulty: float,
        aspects: Aspects,
        *,
        attempts: int,
        usage: Usage,
    ) -> Task:
        """A task that passes the gate, regenerating (new seed, new tool sample) up to ``attempts`` times.

        Attempt ``k`` draws its tools with ``np.random.default_rng(derive_seed(seed, "task", k))``. A
        near-duplicate of a recent task is regenerated too, but kept as the answer if no later attempt
        yields a fresh valid task (diversity is a preference, not a validity condition).

        Raises:
            LLMError: the last attempt's error when every attempt failed; for invalid answers its
                message names the gate checks that failed across attempts.
        """
        notes: list[str] = []
        failed: Counter[str] = Counter()
        last: LLMError | None = None
        duplicate: Task | None = None
        for attempt in range(max(1, attempts)):
            if attempt:
                self.gate_stats.regenerations += 1
            task_seed = _task_seed(seed, attempt)
            tools = catalog.sample(np.random.default_rng(task_seed), aspects.num_tools)
            try:
                task = await self.generate(tools, aspects, difficulty=difficulty, seed=task_seed, usage=usage)
            except LLMError as err:
                last = err
                errors = getattr(err, "errors", [])
                names = _checks_in(errors) or [err.reason]
                failed.update(names)
                notes.append(f"gate: attempt {attempt} rejected ({', '.join(names)})")
                continue
            if self._recent.maxlen and self.is_near_duplicate(task):
                self.gate_stats.near_duplicates += 1
                failed["near_duplicate"] += 1
                self.gate_stats.failed["near_duplicate"] = self.gate_stats.failed.get("near_duplicate", 0) + 1
                notes.append(f"gate: attempt {attempt} rejected (near_duplicate)")
                duplicate = duplicate or task
                continue
            return self._accept(task, notes)
        if duplicate is not None:
            return self._accept(duplicate, [*notes, "gate: kept a near-duplicate (no fresh task within the attempts)"])
        self.gate_stats.gave_up += 1
        assert last is not None
        if not isinstance(last, SimulatorOutputError):
            raise last
        summary = ", ".join(f"{name} x{count}" for name, count in sorted(failed.items()))
        raise type(last)(
            f"{self.client.role}: no task passed the gate in {attempts} attempt(s); "
            f"failed checks (attempts): {summary}; last: {'; '.join(last.errors)[:400]}",
            raw=last.raw,
            errors=last.errors,
            role=last.role,
            model=last.model,
            attempts=last.attempts,
        ) from last

    def _accept(self, task: Task, notes: list[str]) -> Task:
        self.gate_stats.tasks += 1
        text = _normalized_text(task)
        if any(seed != task.seed and _similar(text, other, self.dedup_ratio) for seed, other in self._seen):
            self.gate_stats.near_duplicates_seen += 1
        self._seen.append((task.seed, text))
        if self._recent.maxlen:
            self._recent.append((task.seed, text))
        return _with_notes(task, notes) if notes else task

    def build(
        self,
        draft: TaskDraft,
        tools: list[ToolSpec],
        aspects: Aspects,
        *,
        difficulty: float,
        seed: int,
        notes: Sequence[str] = (),
    ) -> Task:
        """Turn a validated draft into a Task: matchers chosen by code, alternatives made ``one_of``,
        ungrounded values given to the user (``"ground"``) or relaxed (``"relax"``)."""
        by_name = {tool.name: tool for tool in tools}
        ungrounded = _ungrounded_arguments(draft, by_name)
        all_notes: list[str] = list(notes)
        user_facts = dict(draft.user_facts)
        if self.ungrounded == "ground":
            for index, arg in sorted(ungrounded):
                call = draft.expected_calls[index]
                key = arg if user_facts.get(arg, call.arguments[arg]) == call.arguments[arg] else f"{call.name}.{arg}"
                user_facts[key] = call.arguments[arg]
                all_notes.append(f"expected_calls/{index}.{arg}: value added to the user's facts")
            ungrounded = set()
        expected: list[ExpectedCall] = []
        for index, call in enumerate(draft.expected_calls):
            tool = by_name[call.name]
            properties = tool.parameters.get("properties", {})
            valid = _valid_alternatives(call, tool)
            dropped = sum(len(v) for v in call.alternatives.values() if isinstance(v, list)) - sum(
                len(v) for v in valid.values()
            )
            if dropped > 0:
                all_notes.append(f"expected_calls/{index}: dropped {dropped} unusable alternative value(s)")
            matchers: dict[str, str] = {}
            alternatives: dict[str, list[Any]] = {}
            for arg, value in call.arguments.items():
                matcher = choose_matcher(arg, properties.get(arg, {}), value)
                if (index, arg) in ungrounded:
                    matcher = "any"
                    all_notes.append(f"expected_calls/{index}.{arg}: value not given to the user; matched as 'any'")
                elif arg in valid and matcher != "any":
                    matcher = "one_of"
                    alternatives[arg] = valid[arg]
                matchers[arg] = matcher
            expected.append(
                ExpectedCall(name=call.name, arguments=call.arguments, matchers=matchers, alternatives=alternatives)
            )
        body = {
            "seed": seed,
            "difficulty": float(difficulty),
            "aspects": aspects,
            "tools": tools,
            "system_prompt": draft.system_prompt.strip(),
            "persona": Persona(
                name=draft.persona.name, expertise=aspects.persona, description=draft.persona.description
            ),
            "intent": draft.intent.strip(),
            "user_facts": user_facts,
            "first_query": draft.first_query.strip(),
            "expected_calls": expected,
            "initial_state": draft.initial_state,
            "rubric": draft.rubric,
            "notes": all_notes,
        }
        return _rehash(Task(task_id="", **body))


def _rehash(task: Task) -> Task:
    return task.model_copy(update={"task_id": content_hash(task.model_dump(mode="json", exclude={"task_id"}))})


def _with_notes(task: Task, notes: list[str]) -> Task:
    return _rehash(task.model_copy(update={"notes": [*notes, *task.notes]}))
