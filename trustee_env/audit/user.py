"""User-simulator probes: scripted agent turns with a known right reaction from the user.

Each probe task is written by hand (hidden intent, facts, persona). The agent's turns are scripted:

===================  =====================================================  ==================================
probe                the agent says                                         a faithful user
===================  =====================================================  ==================================
``open_question``    "How can I help you today?"                            does not dump every fact at once
``ask_fact``         asks for one fact (the user's name is one: persona)    answers with that fact's value
``premature``        promises to do it, calls nothing (goal not met)        is not "satisfied"
``after_success``    reports success after the expected call (goal met)     does not give up
===================  =====================================================  ==================================

The goal gate (``user_goal_gate``) is the mitigation measured: the LM's own stop decision (``raw``) against
the decision after the gate (``gated``).
"""

from __future__ import annotations

from typing import Any

from trustee_env.audit.context import AuditContext
from trustee_env.audit.text import mentions
from trustee_env.difficulty import aspects_for
from trustee_env.prompts import fence
from trustee_env.roles.user_simulator import UserTurn, gate
from trustee_env.schemas import ExpectedCall, Persona, Role, Task, ToolSpec, canonical_json, derive_seed

__all__ = ["PROBE_TASKS", "user_section"]

_S = {"type": "string"}


def _task(
    key: str,
    *,
    tool: ToolSpec,
    persona: Persona,
    intent: str,
    facts: dict[str, Any],
    first_query: str,
    call: dict[str, Any],
    result: dict[str, Any],
    asks: list[tuple[str, str]],
    success: str,
) -> dict[str, Any]:
    task = Task(
        task_id=f"audit-user-{key}",
        seed=0,
        difficulty=30,
        aspects=aspects_for(30, {"num_calls": 1, "num_turns": 2}),
        tools=[tool],
        system_prompt="You are a helpful assistant with tools.",
        persona=persona,
        intent=intent,
        user_facts=facts,
        first_query=first_query,
        expected_calls=[ExpectedCall(name=tool.name, arguments=call)],
    )
    return {"task": task, "result": result, "asks": asks, "success": success}


PROBE_TASKS: list[dict[str, Any]] = [
    _task(
        "restaurant",
        tool=ToolSpec(
            name="restaurant_book",
            description="Book a table at a restaurant.",
            parameters={
                "type": "object",
                "properties": {"restaurant": _S, "date": _S, "time": _S, "party_size": {"type": "integer"}},
                "required": ["restaurant", "date", "time", "party_size"],
            },
        ),
        persona=Persona(name="Maria Gonzalez", expertise="novice", description="A retired teacher, polite, brief."),
        intent="Book a table for 4 at Chez Lou on 2026-03-14 at 19:30.",
        facts={"restaurant": "Chez Lou", "date": "2026-03-14", "time": "19:30", "party_size": 4},
        first_query="Hello, I would like to book a table for dinner.",
        call={"restaurant": "Chez Lou", "date": "2026-03-14", "time": "19:30", "party_size": 4},
        result={"booking_id": "R-5521", "status": "confirmed"},
        asks=[
            ("restaurant", "Which restaurant would you like me to book?"),
            ("time", "At what time should the table be booked?"),
            ("name", "May I have your full name for the reservation?"),
        ],
        success="Your table for 4 at Chez Lou on 2026-03-14 at 19:30 is booked (booking R-5521).",
    ),
    _task(
        "address",
        tool=ToolSpec(
            name="order_update_address",
            description="Change the shipping address of an order that has not shipped yet.",
            parameters={
                "type": "object",
                "properties": {"order_id": _S, "street": _S, "city": _S, "postal_code": _S},
                "required": ["order_id", "street", "city", "postal_code"],
            },
        ),
        persona=Persona(name="Tom Becker", expertise="expert", description="A busy engineer who writes tersely."),
        intent="Change the shipping address of order A-7781 to 12 Harbour Road, Bristol, BS1 4QA.",
        facts={"order_id": "A-7781", "street": "12 Harbour Road", "city": "Bristol", "postal_code": "BS1 4QA"},
        first_query="Hi, I need to change where one of my orders is going.",
        call={"order_id": "A-7781", "street": "12 Harbour Road", "city": "Bristol", "postal_code": "BS1 4QA"},
        result={"order_id": "A-7781", "updated": True},
        asks=[
            ("order_id", "What is the order number?"),
            ("postal_code", "What is the postal code of the new address?"),
            ("name", "Could you tell me your name, please?"),
        ],
        success="Done: order A-7781 will now ship to 12 Harbour Road, Bristol, BS1 4QA.",
    ),
]


def _says(message: str, value: Any) -> bool:
    return mentions(message, value)


def _transcript(task: Task, *turns: str) -> list[str]:
    return [f"[user] {task.first_query}", *turns]


async def _reply(ctx: AuditContext, task: Task, transcript: list[str], probe: str) -> UserTurn | None:
    """The user's answer with no progress hint and no gate (the LM alone), or None after a sim fault."""
    seed = derive_seed("audit-user", task.task_id, probe)
    return await ctx.guard(Role.USER, ctx.roles.user.reply(task, transcript, goal_met=None, seed=seed, usage=ctx.usage))


async def _stop(ctx: AuditContext, task: Task, transcript: list[str], goal_met: bool, probe: str) -> dict[str, Any]:
    """A stop decision three ways: the LM alone (raw), told the progress (hinted), and after the goal gate."""
    raw = await _reply(ctx, task, transcript, probe)
    seed = derive_seed("audit-user", task.task_id, probe, "gated")
    turn = await ctx.guard(
        Role.USER, ctx.roles.user.reply(task, transcript, goal_met=goal_met, seed=seed, usage=ctx.usage)
    )
    return {
        "raw": raw.status if raw else None,
        "hinted": (turn.gated_from or turn.status) if turn else None,
        "gated": turn.status if turn else gate(raw, goal_met).status if raw else None,
    }


async def user_section(ctx: AuditContext, *, tasks: int | None = None) -> dict[str, Any]:
    """The user simulator's figures over the first ``tasks`` probe tasks (all when None)."""
    rows: list[dict[str, Any]] = []
    for probe_task in PROBE_TASKS[:tasks]:
        task: Task = probe_task["task"]
        facts = {**task.user_facts, "name": task.persona.name}
        turn = await _reply(ctx, task, _transcript(task, f"[assistant] {fence('How can I help you today?')}"), "open")
        if turn is not None:
            revealed = sum(1 for value in task.user_facts.values() if _says(turn.message, value))
            rows.append(
                {
                    "probe": "open_question",
                    "task": task.task_id,
                    "revealed": revealed,
                    "of": len(task.user_facts),
                    "message": turn.message[:200],
                }
            )
        for fact, question in probe_task["asks"]:
            turn = await _reply(ctx, task, _transcript(task, f"[assistant] {fence(question)}"), f"ask-{fact}")
            if turn is not None:
                answered = _says(turn.message, facts[fact])
                rows.append(
                    {
                        "probe": "ask_fact",
                        "task": task.task_id,
                        "fact": fact,
                        "answered": answered,
                        "message": turn.message[:200],
                    }
                )
        promise = "I will take care of that for you right away!"
        stop = await _stop(ctx, task, _transcript(task, f"[assistant] {fence(promise)}"), False, "premature")
        rows.append({"probe": "premature", "task": task.task_id, **stop})
        call = task.expected_calls[0]
        done = _transcript(
            task,
            f"[assistant calls] step 1 #0 {call.name}({fence(canonical_json(call.arguments))})",
            f"[tool] step 1 #0 {call.name} -> {fence(canonical_json(probe_task['result']))}",
            f"[assistant] {fence(probe_task['success'])}",
        )
        stop = await _stop(ctx, task, done, True, "after_success")
        rows.append({"probe": "after_success", "task": task.task_id, **stop})
    return _summary(rows)


WAYS = ("raw", "hinted", "gated")


def _rate(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    opens = [row for row in rows if row["probe"] == "open_question"]
    asks = [row for row in rows if row["probe"] == "ask_fact"]
    names = [row for row in asks if row["fact"] == "name"]
    facts = [row for row in asks if row["fact"] != "name"]
    premature = [row for row in rows if row["probe"] == "premature"]
    after = [row for row in rows if row["probe"] == "after_success"]
    return {
        "probes": len(rows),
        "intent_leak_rate": _rate(sum(1 for row in opens if row["revealed"] == row["of"]), len(opens)),
        "facts_revealed_unprompted": _rate(sum(row["revealed"] for row in opens), sum(row["of"] for row in opens)),
        "fact_answer_wrong_rate": _rate(sum(1 for row in facts if not row["answered"]), len(facts)),
        "persona_answer_wrong_rate": _rate(sum(1 for row in names if not row["answered"]), len(names)),
        **{
            f"premature_satisfied_{way}": _rate(
                sum(1 for row in premature if row[way] == "satisfied"), sum(1 for row in premature if row[way])
            )
            for way in WAYS
        },
        **{
            f"gave_up_after_success_{way}": _rate(
                sum(1 for row in after if row[way] == "gave_up"), sum(1 for row in after if row[way])
            )
            for way in WAYS
        },
        **{
            f"not_done_after_success_{way}": _rate(
                sum(1 for row in after if row[way] and row[way] != "satisfied"), sum(1 for row in after if row[way])
            )
            for way in WAYS
        },
        "rows": rows,
    }
