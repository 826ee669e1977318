"""Tool-simulator probes: scripted write/read sequences whose right outcome is known from the world state.

The world state is the truth (patches are validated and applied by code), so a read that disagrees with the
state after a write is the simulator contradicting itself. Four sequences over a small notes tool set:

==================  ==========================================  ==========================================
sequence            calls                                       known outcome
==================  ==========================================  ==========================================
``create_read``     create a note, then get it by its new id    the write adds the note; the read finds it
``update_read``     change a note's body, then get it           the state and the read show the new body
``delete_read``     delete a note, then get it                  the note leaves the state; the read misses
``idempotent_read`` get a note twice                            both reads agree with each other and state
==================  ==========================================  ==========================================

Each runs twice: with loose result schemas (``{"type": "object"}``, as ToolBench or an MCP server without
``outputSchema`` gives) and with typed ones; the difference is what "tighter answer schemas" buy.
"""

from __future__ import annotations

from typing import Any

from trustee_env.audit.context import AuditContext
from trustee_env.audit.text import mentions
from trustee_env.prompts import fence
from trustee_env.schemas import Role, ToolCall, ToolSpec, canonical_json, derive_seed, schema_errors

__all__ = ["INITIAL_STATE", "SEQUENCES", "notes_tools", "tool_section"]

INITIAL_STATE: dict[str, Any] = {
    "notes": [
        {"note_id": "n-101", "title": "Groceries", "body": "milk, eggs"},
        {"note_id": "n-102", "title": "Trip", "body": "book a hotel in Lyon"},
    ]
}
NEW_NOTE = {"title": "Dentist", "body": "Tuesday 9:30 with Dr. Lee"}
NEW_BODY = "milk, eggs, bread"
INTENT = "Keep my notes up to date."

_STR = {"type": "string"}
_TYPED_RESULTS: dict[str, dict[str, Any]] = {
    "notes_create": {
        "type": "object",
        "properties": {"note_id": _STR, "title": _STR, "body": _STR},
        "required": ["note_id", "title", "body"],
    },
    "notes_get": {
        "type": "object",
        "properties": {"found": {"type": "boolean"}, "note_id": _STR, "title": _STR, "body": _STR},
        "required": ["found", "note_id"],
    },
    "notes_update": {
        "type": "object",
        "properties": {"note_id": _STR, "updated": {"type": "boolean"}, "body": _STR},
        "required": ["note_id", "updated"],
    },
    "notes_delete": {
        "type": "object",
        "properties": {"note_id": _STR, "deleted": {"type": "boolean"}},
        "required": ["note_id", "deleted"],
    },
}
_PARAMETERS: dict[str, dict[str, Any]] = {
    "notes_create": {"type": "object", "properties": {"title": _STR, "body": _STR}, "required": ["title", "body"]},
    "notes_get": {"type": "object", "properties": {"note_id": _STR}, "required": ["note_id"]},
    "notes_update": {
        "type": "object",
        "properties": {"note_id": _STR, "body": _STR},
        "required": ["note_id", "body"],
    },
    "notes_delete": {"type": "object", "properties": {"note_id": _STR}, "required": ["note_id"]},
}
_DESCRIPTIONS = {
    "notes_create": "Create a note with a title and a body; returns the new note with its id.",
    "notes_get": "Get a note by its id (found is false when there is no such note).",
    "notes_update": "Replace the body of an existing note.",
    "notes_delete": "Delete a note by its id.",
}


def notes_tools(typed: bool) -> dict[str, ToolSpec]:
    """The notes tool set, with typed result schemas or loose (inferred) ones."""
    return {
        name: ToolSpec(
            name=name,
            description=_DESCRIPTIONS[name],
            parameters=_PARAMETERS[name],
            result_schema=_TYPED_RESULTS[name] if typed else {"type": "object"},
            result_schema_inferred=not typed,
            category="notes",
            read_only=name == "notes_get",
        )
        for name in _DESCRIPTIONS
    }


SEQUENCES = ("create_read", "update_read", "delete_read", "idempotent_read")


def _note(state: dict[str, Any], note_id: Any = None, title: str | None = None) -> dict[str, Any] | None:
    for note in state.get("notes", []):
        if isinstance(note, dict) and (
            (note_id is not None and note.get("note_id") == note_id) or (title and note.get("title") == title)
        ):
            return note
    return None


def _mentions(result: Any, value: str) -> bool:
    """Does the result's text hold ``value`` (normalised: case, punctuation and spacing aside)?"""
    return mentions(canonical_json(result), value)


def _read_agrees(result: Any, note: dict[str, Any] | None) -> bool:
    """A read agrees with the state: it shows the note's title and body, or, for a missing note, no body."""
    if note is None:
        found = result.get("found") if isinstance(result, dict) else None
        return found is not True and not _mentions(result, "book a hotel in Lyon")
    if isinstance(result, dict) and result.get("found") is False:
        return False
    return _mentions(result, str(note["title"])) and _mentions(result, str(note["body"]))


class _Runner:
    """Plays one sequence against the tool simulator, call by call, like an episode does."""

    def __init__(self, ctx: AuditContext, tools: dict[str, ToolSpec], label: str) -> None:
        self.ctx = ctx
        self.tools = tools
        self.label = label
        self.state: dict[str, Any] = {key: [dict(r) for r in value] for key, value in INITIAL_STATE.items()}
        self.previous: list[str] = []
        self.calls = 0
        self.repaired = 0
        self.faulted = False

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """The result, or None after a sim fault (the state stays as it was)."""
        self.calls += 1
        tool = self.tools[name]
        call = ToolCall(id=f"audit_{self.calls}", name=name, arguments=arguments)
        role = self.ctx.usage.roles.get(Role.TOOL.value)
        before = role.repairs if role else 0
        seed = derive_seed("audit-tool", self.label, self.calls)
        outcome = await self.ctx.guard(
            Role.TOOL,
            self.ctx.roles.tool.call(
                tool,
                call,
                step=self.calls,
                index=0,
                state=self.state,
                intent=INTENT,
                previous=self.previous[-12:],
                seed=seed,
                usage=self.ctx.usage,
            ),
        )
        role = self.ctx.usage.roles.get(Role.TOOL.value)
        self.repaired += int((role.repairs if role else 0) > before)
        if outcome is None:
            self.faulted = True
            return None
        result, self.state = outcome
        line = f"step {self.calls} #0 {name}"
        self.previous.append(f"[assistant calls] {line}({fence(canonical_json(arguments))})")
        self.previous.append(f"[tool] {line} -> {fence(canonical_json(result))}")
        return result


async def _sequence(ctx: AuditContext, kind: str, tools: dict[str, ToolSpec], label: str) -> dict[str, Any]:
    """One sequence: did the write land in the state, and does the read agree with the state?"""
    run = _Runner(ctx, tools, label)
    write_applied: bool | None = None
    reads: list[Any] = []
    if kind == "create_read":
        created = await run.call("notes_create", dict(NEW_NOTE))
        note = _note(run.state, title=NEW_NOTE["title"])
        write_applied = note is not None and note.get("body") == NEW_NOTE["body"]
        note_id = (note or {}).get("note_id")
        if note_id is None and isinstance(created, dict):
            note_id = created.get("note_id")
        if note_id is not None and not run.faulted:
            reads.append(await run.call("notes_get", {"note_id": str(note_id)}))
        target = _note(run.state, note_id=note_id) if note_id is not None else None
    elif kind == "update_read":
        await run.call("notes_update", {"note_id": "n-101", "body": NEW_BODY})
        target = _note(run.state, note_id="n-101")
        write_applied = target is not None and target.get("body") == NEW_BODY
        if not run.faulted:
            reads.append(await run.call("notes_get", {"note_id": "n-101"}))
    elif kind == "delete_read":
        await run.call("notes_delete", {"note_id": "n-102"})
        write_applied = _note(run.state, note_id="n-102") is None
        target = _note(run.state, note_id="n-102")
        if not run.faulted:
            reads.append(await run.call("notes_get", {"note_id": "n-102"}))
    else:
        target = _note(run.state, note_id="n-101")
        for _ in range(2):
            if not run.faulted:
                reads.append(await run.call("notes_get", {"note_id": "n-101"}))
    done = [read for read in reads if read is not None]
    # One check per read (does it agree with the state?), plus, for the idempotent pair, do the two reads agree?
    contradictions = sum(1 for read in done if not _read_agrees(read, target))
    checks = len(done)
    if kind == "idempotent_read" and len(done) == 2:
        checks += 1
        contradictions += int(canonical_json(done[0]) != canonical_json(done[1]))
    schema_violations = sum(
        1
        for read in done
        if schema_errors(_TYPED_RESULTS["notes_get"], read, root="(root)")  # typed view, also for loose answers
    )
    return {
        "sequence": kind,
        "calls": run.calls,
        "sim_faults": int(run.faulted),
        "repaired_calls": run.repaired,
        "write_applied": write_applied,
        "reads": len(done),
        "consistency_checks": checks,
        "contradictions": contradictions,
        "typed_view_violations": schema_violations,
    }


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    calls = sum(row["calls"] for row in rows)
    reads = sum(row["reads"] for row in rows)
    checks = sum(row["consistency_checks"] for row in rows)
    writes = [row["write_applied"] for row in rows if row["write_applied"] is not None]
    repaired = sum(row["repaired_calls"] for row in rows)
    faults = sum(row["sim_faults"] for row in rows)
    return {
        "sequences": len(rows),
        "calls": calls,
        "reads": reads,
        "read_after_write_contradictions": sum(row["contradictions"] for row in rows),
        "consistency_checks": checks,
        "contradiction_rate": round(sum(row["contradictions"] for row in rows) / checks, 4) if checks else None,
        "writes_not_applied": sum(1 for ok in writes if not ok),
        "write_applied_rate": round(sum(writes) / len(writes), 4) if writes else None,
        "schema_violation_rate": round(repaired / calls, 4) if calls else None,
        "repair_rate": round((repaired - faults) / repaired, 4) if repaired else None,
        "sim_faults": faults,
        "typed_view_violations": sum(row["typed_view_violations"] for row in rows),
        "by_sequence": {row["sequence"]: row for row in rows} if len(rows) == len(SEQUENCES) else None,
    }


async def tool_section(ctx: AuditContext, *, rounds: int = 1) -> dict[str, Any]:
    """Every sequence ``rounds`` times, with loose and with typed result schemas.

    ``schema_violation_rate``: calls whose first answer broke the result schema or the patch rules (they
    needed a re-ask); ``repair_rate``: the share of those the re-ask fixed (the rest are sim faults).
    """
    out: dict[str, Any] = {"rounds": rounds, "sequences": list(SEQUENCES)}
    for typed in (False, True):
        tools = notes_tools(typed)
        rows = [
            await _sequence(ctx, kind, tools, f"{'typed' if typed else 'loose'}-{kind}-{r}")
            for r in range(rounds)
            for kind in SEQUENCES
        ]
        out["typed" if typed else "loose"] = _summary(rows)
    return out
