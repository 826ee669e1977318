"""The bundled GRPO trainer (examples/train_grpo.py): a tiny real run against a scripted simulator.

The policy is a tiny randomly initialised Llama with the bundled SmolLM2's tokenizer and chat template
(fast on a CPU). The scripted judge's verdict is a deterministic function of the transcript, so the
members of a group get different rewards (a random policy never earns a reward from the checks alone)
and the update has a signal; ``reward_mode="ternary"`` with the floor cap keeps those rewards in {-1, 0}.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the trainer tests need the 'train' extra")
pytest.importorskip("transformers", reason="the trainer tests need the 'train' extra")

from script_modules import load_script  # noqa: E402

from trustee_env.testing import FakeLLMServer, ScriptedSimulator  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_grpo.py"


def _load_trainer() -> Any:
    return load_script(EXAMPLE)  # registered in sys.modules: dataclasses resolve annotations there


@pytest.fixture(scope="module")
def trainer() -> Any:
    return _load_trainer()


@pytest.fixture(scope="module")
def tiny_policy(bundled_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer, saved as a Hugging Face folder."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(bundled_hf_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    folder = tmp_path_factory.mktemp("tiny-policy")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class SplitJudge(ScriptedSimulator):
    """Scripted roles; the judge's verdict (1 or -1) is a hash of the transcript it is shown."""

    def __call__(self, role: str, request: dict[str, Any]) -> Any:
        if role == "judge":
            prompt = json.dumps(request["messages"], sort_keys=True)
            verdict = 1 if hashlib.sha256(prompt.encode()).digest()[0] % 2 else -1
            return {**self.judge, "verdict": verdict}
        return super().__call__(role, request)


@pytest.fixture
def simulator(fake_server: Callable[..., FakeLLMServer]) -> FakeLLMServer:
    return fake_server(SplitJudge())


def _config(trainer: Any, tiny_policy: Path, server: FakeLLMServer, out: Path, **overrides: Any) -> Any:
    values = {
        "preset": "smoke",
        "out_dir": str(out),
        "policy": str(tiny_policy),
        "simulator": server.base_url,
        "bank_size": 4,
        "steps": 2,
        "tasks_per_step": 2,
        "group_size": 2,
        "lr": 1e-2,
        "reward_mode": "ternary",
        "max_turn_tokens": 12,
        "max_completion_tokens": 96,
        "max_episode_steps": 2,
        "micro_batch": 2,
        "seed": 7,
        **overrides,
    }
    return trainer.TrainConfig(**values)


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(next(folder.glob("*.safetensors"))))


def test_a_tiny_run_trains_logs_plots_and_saves(trainer: Any, tiny_policy: Path, simulator: FakeLLMServer, tmp_path):
    cfg = _config(trainer, tiny_policy, simulator, tmp_path / "run")
    trainer.train(cfg)
    lines = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    for line in lines:
        assert math.isfinite(line["loss"]) and math.isfinite(line["reward_mean"])
        assert line["episodes"] == 4 and line["groups"] == 2
        assert line["dropped_groups"] + line["trained_sequences"] // 2 <= 2
    assert sum(line["trained_sequences"] for line in lines) > 0, "no group had reward variance: nothing was trained"
    before, after = _weights(tiny_policy), _weights(tmp_path / "run" / "final")
    assert any(not torch.equal(before[name], after[name]) for name in before), "the update changed no weight"
    assert (tmp_path / "run" / "reward_difficulty.png").stat().st_size > 1000
    signal = json.loads((tmp_path / "run" / "signal.json").read_text())
    assert set(signal) == {"oracle", "null", "wrong_tool", "wrong_argument"}
    assert signal["null"]["mean_reward"] <= 0  # refusing is never paid, whatever the (scripted) judge says
    assert len(list((tmp_path / "run").joinpath("trajectories.jsonl").read_text().splitlines())) >= 8


def test_environment_tokens_get_no_gradient(trainer: Any, tiny_policy: Path, simulator: FakeLLMServer, tmp_path):
    import gymnasium as gym

    from trustee_env.bank import build_bank
    from trustee_env.hf import HFPolicy, load_policy, rollout
    from trustee_env.tokens import TurnTokenizer

    cfg = _config(trainer, tiny_policy, simulator, tmp_path / "run")
    model, tokenizer = load_policy(tiny_policy)
    policy = HFPolicy(model, tokenizer, TurnTokenizer(tokenizer), max_turn_tokens=12)
    bank = build_bank(2, seed=1, base_url=simulator.base_url)
    env = gym.make_vec(
        "Trustee-v0", num_envs=2, group_size=2, base_url=simulator.base_url, tool_format="hermes", max_steps=2
    )
    try:
        episodes = rollout(env, policy, tasks=bank.tasks[:1], seed=3, max_completion_tokens=96)
    finally:
        env.close()
    # Each sequence has model and environment tokens (tool results or a user turn after the first turn).
    assert all(0 in ep.tokens.env_mask and 1 in ep.tokens.env_mask for ep in episodes)
    sample = trainer.Sample(
        ids=torch.tensor(episodes[0].tokens.prompt_ids + episodes[0].tokens.completion_ids),
        mask=torch.tensor(episodes[0].tokens.env_mask, dtype=torch.float32),
        prompt_len=len(episodes[0].tokens.prompt_ids),
        advantage=1.0,
    )
    captured: dict[str, Any] = {}

    def keep_logits(_module: Any, _inputs: Any, output: Any) -> None:
        output.retain_grad()
        captured["logits"] = output

    handle = model.lm_head.register_forward_hook(keep_logits)
    try:
        model.zero_grad()
        loss, _ = trainer.grpo_loss(cfg, [sample], trainer.completion_logprobs(model, [sample]))
        loss.backward()
    finally:
        handle.remove()
    grad = captured["logits"].grad[0]  # [positions, vocab]; position t predicts token t + 1
    start = sample.prompt_len - 1
    per_position = grad[start : start + len(sample.mask)].abs().sum(-1)
    env_positions = sample.mask == 0
    assert torch.all(per_position[env_positions] == 0), "an environment token got a gradient"
    assert torch.all(per_position[~env_positions] > 0), "a sampled token got no gradient"
    assert torch.all(grad[:start].abs().sum(-1) == 0), "a prompt token got a gradient"


def test_a_checkpoint_resumes_to_the_same_state(trainer: Any, tiny_policy: Path, simulator: FakeLLMServer, tmp_path):
    straight = _config(trainer, tiny_policy, simulator, tmp_path / "straight")
    trainer.train(straight)
    first_half = _config(trainer, tiny_policy, simulator, tmp_path / "resumed", steps=1)
    trainer.train(first_half)
    state = json.loads((tmp_path / "resumed" / "checkpoints" / "step-00001" / "state.json").read_text())
    assert state["step"] == 1 and "difficulty" in json.dumps(state["curriculum"])
    trainer.train(_config(trainer, tiny_policy, simulator, tmp_path / "resumed", steps=2, resume=True))
    a, b = _weights(tmp_path / "straight" / "final"), _weights(tmp_path / "resumed" / "final")
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a), "resuming changed the trajectory"
    log_a = [json.loads(x) for x in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    keys = ("reward_mean", "difficulty", "next_difficulty", "trained_sequences", "tokens")
    assert [[line[k] for k in keys] for line in log_a] == [[line[k] for k in keys] for line in log_b]


def test_presets_and_overrides_parse(trainer: Any, tmp_path: Path):
    cfg = trainer.parse_config(["--preset", "cpu", "--steps", "3", "--lr", "3e-5", "--resume"])
    assert (cfg.preset, cfg.steps, cfg.lr, cfg.resume, cfg.group_size) == ("cpu", 3, 3e-5, True, 4)
    config = tmp_path / "c.yaml"
    config.write_text("steps: 5\ngroup_size: 8\n")
    cfg = trainer.parse_config(["--config", str(config), "--steps", "6"])
    assert (cfg.steps, cfg.group_size) == (6, 8)
    config.write_text("stepz: 5\n")
    with pytest.raises(SystemExit):
        trainer.parse_config(["--config", str(config)])
