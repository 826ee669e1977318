"""TRL adapter: one real ``GRPOTrainer.train()`` step on Trustee episodes (runs in the trl venv).

``scripts/test-integrations trl`` creates that venv; in any other environment these tests are
skipped. The policy is a tiny random Llama, the simulators are the scripted fake server.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl", reason="TRL is not installed here; run scripts/test-integrations trl")
torch = pytest.importorskip("torch", reason="torch is not installed here; run scripts/test-integrations trl")

from helpers import ENV_KWARGS, chatml_tokenizer, check_token_exact, make_tasks, rendered_chat, scripted_server  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from trustee_env.integrations.trl import TrusteeRollout, task_dataset, trustee_reward  # noqa: E402
from trustee_env.trajectory import read_trajectories  # noqa: E402


def tiny_llama(tokenizer: Any) -> Any:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def grpo_args(out: Path, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "output_dir": str(out),
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 192,
        "max_steps": 1,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "bf16": False,
        "seed": 0,
        "dataloader_num_workers": 0,
    }
    settings.update(overrides)
    return GRPOConfig(**settings)


def test_one_grpo_step_plays_multi_turn_episodes(tmp_path: Path) -> None:
    tokenizer = chatml_tokenizer()
    with scripted_server() as server:
        tasks = make_tasks(server.base_url, 2)
        trajectories = tmp_path / "episodes.jsonl"
        rollout = TrusteeRollout(
            tasks,
            env_kwargs={"base_url": server.base_url, "trajectory_path": str(trajectories), **ENV_KWARGS},
            max_turn_tokens=24,
        )
        seen: list[tuple[list[Any], dict[str, Any]]] = []

        def recording(prompts: list[Any], trainer: Any) -> dict[str, Any]:
            out = rollout(prompts, trainer)
            seen.append((prompts, out))
            return out

        model = tiny_llama(tokenizer)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=trustee_reward,
            args=grpo_args(tmp_path / "out"),
            train_dataset=task_dataset(tasks),
            rollout_func=recording,
        )
        trainer.train()

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(math.isfinite(loss) for loss in losses)
    changed = [name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert changed, "no weight changed after one GRPO step"

    ((prompts, out),) = seen
    assert len(prompts) == 4 and len({str(p) for p in prompts}) == 1  # one group: 4 copies of one prompt
    assert out["logprobs"] is None  # generated with the trainer's model: TRL computes them
    assert all(r in (-1.0, 0.0) for r in out["trustee_reward"]) and len(set(out["trustee_reward"])) == 2
    assert set(out["trustee_task_id"]) == {rollout.index.lookup(prompts[0]).task_id}  # the group shares its task
    assert all(n == 2 for n in out["trustee_turns"])  # the scripted user asks once more, then is satisfied
    assert all(len(ids) <= 192 for ids in out["completion_ids"])

    records = list(read_trajectories(trajectories))
    assert len(records) == 4
    for row in range(4):
        rendered = tokenizer.decode(out["prompt_ids"][row] + out["completion_ids"][row])
        (record,) = [r for r in records if rendered_chat(tokenizer, r) == rendered]
        check_token_exact(tokenizer, out["prompt_ids"][row], out["completion_ids"][row], out["env_mask"][row], record)


def test_two_processes_share_tasks_and_curriculum(tmp_path: Path) -> None:
    """Under torchrun with 2 CPU ranks: a prompt's 4 copies (2 per rank) play one task, and both ranks end the
    step with the same curriculum state, updated from the rewards of all 4 episodes."""
    import json
    import os
    import socket
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    with scripted_server() as server:
        bank = tmp_path / "bank.json"
        bank.write_text(json.dumps(make_tasks(server.base_url, 3)))
        env = {**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        env["TRL_EXPERIMENTAL_SILENCE"] = "1"
        with socket.socket() as probe:  # torchrun's --master_port 0 never rendezvouses: pick a free port
            probe.bind(("127.0.0.1", 0))
            port = str(probe.getsockname()[1])
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
        command += [str(here / "trl_two_ranks.py"), server.base_url, str(bank), str(tmp_path)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    (rows0,), (rows1,) = ranks[0]["rows"], ranks[1]["rows"]
    assert len(rows0["task_ids"]) == len(rows1["task_ids"]) == 2
    assert len(set(rows0["task_ids"] + rows1["task_ids"])) == 1  # one group, one task, across processes
    assert ranks[0]["curriculum"] == ranks[1]["curriculum"]
    (entry,) = ranks[0]["curriculum"]["history"]
    faulted = [r for r in rows0["rewards"] + rows1["rewards"] if r is None]
    assert entry["episodes"] == 4 - len(faulted)  # every rank observed every rank's episodes
