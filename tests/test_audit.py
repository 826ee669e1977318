"""``trustee audit`` against the scripted server: the labelled set, the statistics, every section's probes.

The scripted roles here are written to behave in one known way (a judge that follows the automatic checks,
one that can be talked up, a tool simulator that keeps its state, one that ignores it), and each test checks
that the audit measures exactly that behaviour. The reduced audit on the real model is in tests/e2e.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from trustee_env.audit import AuditOptions, compare, load_report, render_markdown, run_audit
from trustee_env.audit.judge import PADDING, swap_call_blocks, verbose_variant
from trustee_env.audit.judge_set import DEFAULT_JUDGE_SET, load_judge_set, stratified
from trustee_env.audit.stats import agreement, cohen_kappa, confusion, majority
from trustee_env.audit.text import mentions
from trustee_env.audit.tools import INITIAL_STATE
from trustee_env.checks import run_checks
from trustee_env.cli import main as cli_main
from trustee_env.errors import ReplayMissError
from trustee_env.testing import FakeLLMServer, ScriptedSimulator

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- statistics


def test_cohen_kappa_matches_a_hand_computed_case() -> None:
    # 10 items: observed agreement 0.7; marginals truth 5/5, predicted 6/4 -> chance 0.5; kappa 0.4.
    truth = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    predicted = [1, 1, 1, 1, 0, 0, 0, 0, 1, 1]
    assert cohen_kappa(truth, predicted) == 0.4
    assert cohen_kappa(truth, truth) == 1.0
    assert cohen_kappa([1, 1], [1, 1]) is None  # one label only: chance agreement is 1, kappa undefined


def test_confusion_rows_are_truth_and_majority_ties_go_low() -> None:
    table = confusion([1, 1, 0, -1], [1, 0, 0, 1])
    assert table == {"labels": [-1, 0, 1], "matrix": [[0, 0, 1], [0, 1, 0], [0, 1, 1]]}
    assert majority([1, 1, 0]) == 1
    assert majority([1, 0]) == 0 and majority([1, -1, 0]) == -1
    assert agreement([[1, 1, 1], [1, 0, 1]]) == 0.5


def test_mentions_is_loose_about_case_and_punctuation_but_not_about_words() -> None:
    assert mentions("My postal code is bs1 4qa.", "BS1 4QA")
    assert mentions("A table for 4, please", 4)
    assert not mentions("A table for 14, please", 4)
    assert not mentions("anything", "")


# ---------------------------------------------------------------- the labelled set


def test_the_bundled_set_has_200_items_over_seven_classes() -> None:
    items = load_judge_set()
    assert len(items) >= 200
    counts = Counter(item.kind for item in items)
    assert set(counts) == {
        "goal_met",
        "inefficient_correct",
        "wrong_tool",
        "redundant_calls",
        "gave_up",
        "injection",
        "hallucinated_argument",
    }
    assert min(counts.values()) >= 28
    assert len({item.id for item in items}) == len(items)
    assert len({item.task.task_id for item in items}) > 100  # many different tasks, not one repeated


def test_labels_agree_with_the_deterministic_checks() -> None:
    """Built by construction, checked independently: the reward table's caps at the item's strictness."""
    for item in load_judge_set():
        checks = run_checks(item.task, item.calls, item.parse_errors, user_gave_up=item.termination == "user_gave_up")
        ceiling = min([cap.cap for cap in checks.caps(item.strictness)] + [1])
        assert ceiling == item.label, (item.id, [cap.detail for cap in checks.caps(item.strictness)])


def test_injection_items_carry_the_injection_and_gave_up_items_end_that_way() -> None:
    items = load_judge_set()
    for item in items:
        if item.kind == "injection":
            assert any("verdict" in line for line in item.transcript if line.startswith("[assistant]")), item.id
        if item.kind == "gave_up":
            assert item.termination == "user_gave_up"


def test_the_builder_reproduces_the_committed_set(tmp_path: Path) -> None:
    out = tmp_path / "set.jsonl"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_judge_set.py"), "--seeds", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    committed = {json.loads(line)["id"]: line for line in DEFAULT_JUDGE_SET.read_text().splitlines()}
    rebuilt = out.read_text().splitlines()
    assert len(rebuilt) == 14
    for line in rebuilt:
        assert committed[json.loads(line)["id"]] == line


def test_an_installed_wheel_carries_the_set(tmp_path: Path) -> None:
    """`trustee audit` from a wheel needs no --judge-set: the set is package data, not a file of the checkout."""
    assert DEFAULT_JUDGE_SET.is_relative_to(ROOT / "trustee_env")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("trustee_env-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert "trustee_env/audit/data/judge_set.jsonl" in archive.namelist()
        assert "trustee_env/viewer_audit_page.html" in archive.namelist()  # the report's HTML page
        assert "trustee_env/viewer_common.js" in archive.namelist()  # script helpers both pages share
        archive.extractall(site)
    script = (
        "import sys; from trustee_env.audit.judge_set import DEFAULT_JUDGE_SET, load_judge_set;"
        "assert str(DEFAULT_JUDGE_SET).startswith(sys.argv[1]), DEFAULT_JUDGE_SET; print(len(load_judge_set()))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script, str(site)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert int(loaded.stdout) == len(load_judge_set())


def test_stratified_takes_the_first_items_of_each_class() -> None:
    items = stratified(load_judge_set(), 2)
    assert len(items) == 14
    assert all(item.id.endswith(("-000", "-001")) for item in items)


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(Exception, match=r"bad.jsonl:1"):
        load_judge_set(bad)


# ---------------------------------------------------------------- bias variants


def test_variants_swap_call_blocks_and_pad_the_last_message() -> None:
    transcript = [
        "[user] hi",
        "[assistant calls] step 1 #0 a(<<<{}>>>)",
        "[tool] step 1 #0 a -> <<<{}>>>",
        "[assistant calls] step 2 #0 b(<<<{}>>>)",
        "[tool] step 2 #0 b -> <<<{}>>>",
        "[assistant] <<<done>>>",
        "[user] thanks",
    ]
    swapped = swap_call_blocks(transcript)
    assert swapped is not None and swapped[1].endswith("b(<<<{}>>>)") and swapped[3].endswith("a(<<<{}>>>)")
    assert sorted(swapped) == sorted(transcript)
    padded = verbose_variant(transcript)
    assert padded is not None and padded[5] == f"[assistant] <<<done {PADDING}>>>"
    assert swap_call_blocks(transcript[:3]) is None


# ---------------------------------------------------------------- scripted roles with known behaviour

_CHECKS = re.compile(r"Automatic checks[^\n:]*: (?:<<<)?(\{.*\})")


def _judge_following_checks(request: dict[str, Any]) -> dict[str, Any]:
    """A judge that reads the automatic checks: -1 for hallucinations, 0 for anything missing or repeated."""
    prompt = request["messages"][-1]["content"]
    checks = json.loads(_CHECKS.search(prompt).group(1))
    if checks["unknown_arguments"] or checks["unknown_tools"] or checks["schema_errors"]:
        verdict = -1
    elif checks["expected_calls_missing"] or checks["redundant_calls"] or "gave_up" in prompt.split("Conversation:")[1]:
        verdict = 0
    else:
        verdict = 1
    scores = {name: verdict for name in ("intent", "correct_tools", "no_hallucination", "no_redundancy", "efficiency")}
    return {"rationale": "checked", "scores": scores, "verdict": verdict}


def _gullible_judge(request: dict[str, Any]) -> dict[str, Any]:
    """Gives 1 to confident prose, otherwise follows the checks."""
    if "utmost care" in request["messages"][-1]["content"]:
        scores = {name: 1 for name in ("intent", "correct_tools", "no_hallucination", "no_redundancy", "efficiency")}
        return {"rationale": "thorough", "scores": scores, "verdict": 1}
    return _judge_following_checks(request)


def _stateful_tool(name: str, arguments: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A faithful notes simulator: reads the state from its prompt and patches it correctly."""
    prompt = next(m["content"] for m in request["messages"] if m["role"] == "user")
    line = next(line for line in prompt.splitlines() if line.startswith("World state: "))
    state = json.loads(line.removeprefix("World state: "))
    notes = state["notes"]
    if name == "notes_create":
        record = {"note_id": "n-103", **arguments}
        return {"result": record, "state_patch": [{"op": "add", "path": "/notes/-", "value": record}]}
    index = next((i for i, note in enumerate(notes) if note["note_id"] == arguments["note_id"]), None)
    if name == "notes_get":
        result = (
            {"found": True, **notes[index]} if index is not None else {"found": False, "note_id": arguments["note_id"]}
        )
        return {"result": result, "state_patch": []}
    if name == "notes_update":
        patch = [{"op": "replace", "path": f"/notes/{index}/body", "value": arguments["body"]}]
        return {"result": {"note_id": arguments["note_id"], "updated": True}, "state_patch": patch}
    return {
        "result": {"note_id": arguments["note_id"], "deleted": True},
        "state_patch": [{"op": "remove", "path": f"/notes/{index}"}],
    }


class Roles:
    """Routes each role to its scripted behaviour."""

    def __init__(self, judge: Any = None, tool: Any = None, user: Any = None) -> None:
        tools = {name: tool for name in ("notes_create", "notes_get", "notes_update", "notes_delete")} if tool else {}
        self.sim = ScriptedSimulator(tool_results=tools)
        self.judge = judge
        self.user = user

    def __call__(self, role: str, request: dict[str, Any]) -> Any:
        if role == "judge" and self.judge is not None:
            return self.judge(request)
        if role == "user" and self.user is not None:
            return self.user(request)
        return self.sim(role, request)


def _audit(handler: Any, tmp_path: Path, **options: Any) -> Any:
    with FakeLLMServer(handler) as server:
        return run_audit(
            options=AuditOptions.quick_options(**options),
            base_url=server.base_url,
            model="fake-model",
            cache_mode="read_write",
            cache_path=str(tmp_path / "cache.sqlite"),
            workdir=tmp_path / "work",
        )


def test_a_judge_that_follows_the_checks_scores_perfectly_and_caps_never_overrule_it(tmp_path: Path) -> None:
    report = _audit(Roles(judge=_judge_following_checks), tmp_path, sections=["judge"], judge_per_class=3)
    judge = report.sections["judge"]
    assert judge["judged"] == 21
    assert judge["single"]["accuracy"] == 1.0 and judge["single"]["kappa"] == 1.0
    assert judge["majority"]["accuracy"] == 1.0 and judge["sample_agreement"] == 1.0
    assert judge["caps_overruled"] == 0
    assert judge["bias"]["position"]["changed_rate"] == 0.0
    assert judge["bias"]["verbosity_on_failures"]["raised"] == 0


def test_an_always_yes_judge_is_caught_and_the_caps_repair_it(tmp_path: Path) -> None:
    report = _audit(Roles(), tmp_path, sections=["judge"])  # ScriptedSimulator's judge always says 1
    judge = report.sections["judge"]
    assert judge["single"]["accuracy"] == round(2 / 7, 4)  # right only on the two classes that deserve 1
    assert judge["single"]["kappa"] == 0.0
    assert judge["single_capped"]["accuracy"] == 1.0
    assert judge["caps_overruled"] == 5
    assert judge["by_class"]["injection"]["verdicts"] == {"1": 1}
    caps = next(m for m in report.mitigations if m.mitigation.startswith("deterministic caps"))
    assert (caps.before, caps.after) == (round(2 / 7, 4), 1.0)


def test_verbosity_bias_is_measured(tmp_path: Path) -> None:
    report = _audit(Roles(judge=_gullible_judge), tmp_path, sections=["judge"], judge_per_class=2, bias_items=3)
    bias = report.sections["judge"]["bias"]
    assert bias["verbosity_on_failures"]["n"] == 3
    assert bias["verbosity_on_failures"]["raised"] == 3 and bias["verbosity_on_failures"]["mean_shift"] > 0
    assert bias["verbosity_on_successes"]["raised"] == 0


def test_a_tool_simulator_that_keeps_its_state_has_no_contradictions(tmp_path: Path) -> None:
    report = _audit(Roles(tool=_stateful_tool), tmp_path, sections=["tool"])
    for variant in ("typed", "loose"):
        figures = report.sections["tool"][variant]
        assert figures["reads"] == 5 and figures["calls"] == 8
        assert figures["read_after_write_contradictions"] == 0, figures["by_sequence"]
        assert figures["write_applied_rate"] == 1.0 and figures["sim_faults"] == 0


def test_a_tool_simulator_that_ignores_its_state_is_caught(tmp_path: Path) -> None:
    report = _audit(Roles(), tmp_path, sections=["tool"])  # example results, never a patch
    figures = report.sections["tool"]["typed"]
    assert figures["write_applied_rate"] == 0.0
    assert figures["read_after_write_contradictions"] >= 3  # create, update and the idempotent read disagree


def test_user_probes_measure_leaks_facts_and_stop_decisions(tmp_path: Path) -> None:
    def dumping_user(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "message": "Maria Gonzalez here: Chez Lou, 2026-03-14, 19:30, a party of 4. Thanks!",
            "status": "satisfied",
        }

    report = _audit(Roles(user=dumping_user), tmp_path, sections=["user"])
    user = report.sections["user"]
    assert user["intent_leak_rate"] == 1.0  # every fact, unprompted
    assert user["fact_answer_wrong_rate"] == 0.0 and user["persona_answer_wrong_rate"] == 0.0
    assert user["premature_satisfied_raw"] == 1.0 and user["premature_satisfied_gated"] == 0.0
    assert user["gave_up_after_success_raw"] == 0.0


def test_the_full_quick_report_round_trips_and_renders(tmp_path: Path) -> None:
    report = _audit(Roles(judge=_judge_following_checks, tool=_stateful_tool), tmp_path)
    assert set(report.sections) == {"judge", "tool", "user", "task_generator", "signal"}
    assert report.suite_version and report.endpoints["judge"]["model"] == "fake-model"
    assert report.sections["signal"]["agents"]["oracle"]["p_reward_1"] == 1.0
    assert report.sections["signal"]["agents"]["null"]["p_reward_1"] == 0.0
    assert report.sections["task_generator"]["solvable_fraction"] == 1.0
    assert {m.role for m in report.mitigations} == {"judge", "tool", "user", "task_generator"}
    assert all(entry["sim_faults"] == 0 for entry in report.sim_faults.values())
    assert report.sim_faults["judge"]["calls"] > 0
    path = tmp_path / "a.json"
    path.write_text(report.model_dump_json())
    assert load_report(path) == report
    text = render_markdown(report)
    assert "## Mitigations, before and after" in text and "| injection | 0 |" in text

    again = _audit(Roles(judge=_judge_following_checks, tool=_stateful_tool), tmp_path)
    assert again.cache["entries_after"] == again.cache["entries_before"]  # a rerun replays from the cache
    assert again.headline == report.headline


def test_cli_writes_the_report_and_compares_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeLLMServer(Roles(judge=_judge_following_checks)) as server:
        out = tmp_path / "run"
        code = cli_main(
            [
                "audit",
                "--quick",
                "--sections",
                "judge",
                "user",
                "--base-url",
                server.base_url,
                "--model",
                "fake-model",
                "--cache",
                str(tmp_path / "c.sqlite"),
                "--out",
                str(out),
            ]
        )
    assert code == 0
    assert json.loads(out.with_suffix(".json").read_text())["headline"]["judge.accuracy"] == 1.0
    assert out.with_suffix(".md").read_text().startswith("# Trustee audit: fake-model")
    capsys.readouterr()
    assert cli_main(["audit", "--compare", str(out.with_suffix(".json")), str(out.with_suffix(".json"))]) == 0
    table = capsys.readouterr().out
    assert "| `judge.accuracy` | 1.0 | 1.0 |" in table
    assert compare(load_report(out.with_suffix(".json")), load_report(out.with_suffix(".json"))) in table + "\n"


def test_compare_of_a_non_report_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert cli_main(["audit", "--compare", str(bad), str(bad)]) == 2
    assert "not a trustee audit report" in capsys.readouterr().err


def test_initial_state_is_not_shared_between_runs() -> None:
    assert INITIAL_STATE["notes"][0]["body"] == "milk, eggs"


def test_a_replay_only_audit_replays_the_signal_section_too(tmp_path: Path) -> None:
    """The signal section's envs keep the audit's cache mode: a replay never asks a server, and a miss says so."""
    recorded = _audit(Roles(), tmp_path, sections=["signal"])
    replay = run_audit(
        options=AuditOptions.quick_options(sections=["signal"]),
        base_url="http://127.0.0.1:9/v1",  # nothing listens: every answer must come from the cache
        model="fake-model",
        cache_mode="replay_only",
        cache_path=str(tmp_path / "cache.sqlite"),
        workdir=tmp_path / "replay",
    )
    for name in ("agents", "sim_fault_rate", "targets_met"):
        assert replay.sections["signal"][name] == recorded.sections["signal"][name]
    assert replay.sections["signal"]["sim_fault_rate"] == 0.0
    with pytest.raises(ReplayMissError):  # another seed was never recorded: a miss, not a 'connection' sim fault
        run_audit(
            options=AuditOptions.quick_options(sections=["signal"], signal_seeds=2),
            base_url="http://127.0.0.1:9/v1",
            model="fake-model",
            cache_mode="replay_only",
            cache_path=str(tmp_path / "cache.sqlite"),
            workdir=tmp_path / "replay2",
        )
