"""A complete GRPO trainer on Trustee-v0, in one file you can read top to bottom.

    pip install -e ".[local,train]"
    python examples/train_grpo.py --preset smoke          # 2 steps, scripted simulators, minutes on a CPU
    python examples/train_grpo.py --preset cpu            # the CPU learning run of docs/training.md (~1 hour)
    python examples/train_grpo.py --preset cpu --steps 40 --lr 2e-5 --out-dir runs/mine   # any field overrides
    python examples/train_grpo.py --config my.yaml        # or a YAML file of fields

What happens each step:

1. **Tasks.** ``tasks_per_step`` tasks are drawn from a stored task bank, among those nearest the
   curriculum's difficulty (``curriculum="paper"``: D += 3 when the batch's mean reward is above 0.5,
   -= 3 below 0; ``"band"`` is selectable). A bank never drifts, and the G members of a group share
   one task by construction.
2. **Rollouts.** ``gym.make_vec("Trustee-v0", num_envs=T*G, group_size=G)`` plays them; the policy's
   turns are sampled in batches with transformers. Every turn is appended as token ids
   (:mod:`trustee_env.tokens`): the sampled tokens are trained on, the environment's tokens (tool
   results, simulated user turns, template glue) are masked out of the loss.
3. **Advantages.** Group-normalised: ``(r - mean_group) / (std_group + eps)``. Groups whose members
   all got the same reward carry no signal and are dropped; so are episodes with a simulator fault
   (the env labels them; they say nothing about the policy). Both counts are logged.
4. **Update.** The clipped-ratio objective of PPO/GRPO on the sampled tokens, with an optional KL
   penalty to a frozen reference (the k3 estimator), AdamW, gradient accumulation over micro-batches
   and gradient-norm clipping.
5. **Book-keeping.** A JSONL line per step (reward mean/std, difficulty, tokens, faults, dropped
   groups, seconds), a PNG of reward and difficulty, and checkpoints (policy, optimiser, curriculum,
   RNG states) at step boundaries: ``--resume`` continues exactly where a run stopped.

The reward: ``reward_mode="checks"`` (default here) pays the deterministic checks alone: every
expected call made with matching, valid arguments, no unknown tool or made-up argument, no repeat.
It needs no judge call (fast on a CPU) and cannot be talked up. ``"ternary"`` asks the LM judge too.

This script favours clarity over speed. At paper scale (Qwen3-8B policy and simulator, 16 tasks x 8
rollouts, 200 steps) use verl or TRL with Trustee's adapters (docs/trainers/): they batch generation
on vLLM and shard the model; ``--preset gpu`` prints those settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import trustee_env  # noqa: F401  (registers Trustee-v0)
from trustee_env.bank import TaskBank, build_bank
from trustee_env.curriculum import make_curriculum
from trustee_env.hf import HFPolicy, load_policy, rollout, save_policy
from trustee_env.schemas import derive_seed
from trustee_env.tokens import TokenEpisode, TurnTokenizer

# ----------------------------------------------------------------------------------------- configuration


@dataclasses.dataclass
class TrainConfig:
    """Every knob of a run. Presets fill some; the command line and a YAML file override any."""

    preset: str = "smoke"
    out_dir: str = "runs/grpo-smoke"
    policy: str | None = None  # a Hugging Face folder; None: the bundled SmolLM2-135M-Instruct (from its GGUF)
    simulator: str = "scripted"  # "scripted" (in-process fake server), "embedded" (llama.cpp), or a base URL
    simulator_model: str | None = None
    train_bank: str | None = None  # a task bank JSON; None builds one of `bank_size` tasks with the simulator
    bank_size: int = 8
    steps: int = 2
    tasks_per_step: int = 2  # T groups per step
    group_size: int = 2  # G rollouts per task
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    kl_coef: float = 0.0  # > 0 keeps a frozen reference model (twice the memory)
    clip: float = 0.2
    epochs: int = 1  # optimisation passes over each batch (the ratio is 1 on the first)
    micro_batch: int = 4  # sequences per backward pass (gradient accumulation over the batch)
    max_grad_norm: float = 1.0
    temperature: float = 0.7  # sampling; the loss scores tokens at the same temperature, so it stays on-policy
    top_p: float = 1.0
    max_turn_tokens: int = 64
    max_completion_tokens: int = 384
    max_episode_steps: int = 2  # policy messages per episode (the env's own budget)
    reward_mode: str = "checks"
    curriculum: str = "paper"
    start_difficulty: float = 10.0
    save_every: int = 1
    keep_checkpoints: int = 2
    seed: int = 0
    max_minutes: float | None = None  # stop at the first step boundary after this much wall time (then save)
    signal_tasks: int = 4  # before training: reference agents on this many bank tasks (0: skip); see reward_signal
    resume: bool = False
    threads: int | None = None


PRESETS: dict[str, dict[str, Any]] = {
    # End to end on a 2-core CPU in minutes: the real bundled policy, scripted simulators.
    "smoke": {
        "out_dir": "runs/grpo-smoke",
        "simulator": "scripted",
        "steps": 2,
        "tasks_per_step": 2,
        "group_size": 2,
        "max_turn_tokens": 32,
    },
    # The learning run of docs/training.md: the embedded llama.cpp server plays the tool and the user,
    # the deterministic checks pay, the stored bank of examples/banks/ gives the tasks.
    "cpu": {
        "out_dir": "runs/grpo-cpu",
        "simulator": "embedded",
        "train_bank": "examples/banks/smollm2-train.json",
        "steps": 40,
        "tasks_per_step": 2,
        "group_size": 4,
        "lr": 2e-5,
        "micro_batch": 4,
        "max_episode_steps": 1,  # one policy turn: call the right tool with the right arguments, or not
        "max_turn_tokens": 48,
        "max_completion_tokens": 64,
        "start_difficulty": 6.0,
        "signal_tasks": 8,
        "max_minutes": 35.0,
    },
    # The paper's settings, for reference (use verl or TRL at this scale: docs/trainers/).
    "gpu": {
        "out_dir": "runs/grpo-gpu",
        "policy": "Qwen/Qwen3-8B",
        "simulator": "http://127.0.0.1:8000/v1",
        "simulator_model": "Qwen/Qwen3-8B",
        "reward_mode": "ternary",
        "steps": 200,
        "tasks_per_step": 16,
        "group_size": 8,
        "lr": 1e-6,
        "kl_coef": 0.001,
        "clip": 0.2,
        "max_turn_tokens": 1024,
        "max_completion_tokens": 8192,
        "max_episode_steps": 12,
        "bank_size": 512,
    },
}


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """Preset, then YAML file, then command-line flags (one ``--field value`` per dataclass field)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--config", help="YAML file of TrainConfig fields")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif field.name == "betas":
            parser.add_argument(flag, type=float, nargs=2, default=None)
        else:
            kind = {"int": int, "float": float}.get(str(field.type).split(" ")[0], str)
            parser.add_argument(flag, type=kind, default=None, help=f"(default: {field.default})")
    args = parser.parse_args(argv)
    preset = args.preset or "smoke"
    if preset not in PRESETS:
        parser.error(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    values: dict[str, Any] = {"preset": preset, **PRESETS[preset]}
    if args.config:
        import yaml

        values.update(yaml.safe_load(Path(args.config).read_text()) or {})
    values.update({k: v for k, v in vars(args).items() if v is not None and k != "config"})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        parser.error(f"unknown config field(s) {sorted(unknown)}")
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    return TrainConfig(**values)


# ----------------------------------------------------------------------------------------- the simulators


def start_simulator(cfg: TrainConfig) -> tuple[dict[str, Any], Any]:
    """Env keyword arguments pointing at the simulator, and a handle to stop (the scripted server)."""
    if cfg.simulator == "scripted":
        # Deterministic stand-ins for the task generator, tool and user (trustee_env.testing): they make the
        # smoke preset fast and reproducible. They are not a learning signal worth reporting.
        from trustee_env.testing import FakeLLMServer, ScriptedSimulator

        server = FakeLLMServer(ScriptedSimulator()).start()
        return {"base_url": server.base_url}, server
    if cfg.simulator == "embedded":
        return {}, None  # the env starts (or reuses) the bundled llama.cpp server
    return {"base_url": cfg.simulator, **({"model": cfg.simulator_model} if cfg.simulator_model else {})}, None


# ----------------------------------------------------------------------------------------- GRPO


@dataclasses.dataclass
class Sample:
    """One trainable sequence: token ids, loss mask, its advantage, and the old policy's log-probs."""

    ids: torch.Tensor  # prompt + completion
    mask: torch.Tensor  # over the completion: 1 = sampled by the policy
    prompt_len: int
    advantage: float
    old_logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None


def group_advantages(episodes: list[TokenEpisode], group_size: int) -> tuple[list[Sample], dict[str, int]]:
    """Group-normalised advantages; zero-variance groups and sim-faulted episodes dropped (and counted)."""
    samples: list[Sample] = []
    counts = {"sim_faults": 0, "dropped_groups": 0, "groups": 0}
    for start in range(0, len(episodes), group_size):
        group = episodes[start : start + group_size]
        counts["groups"] += 1
        valid = [ep for ep in group if not ep.sim_fault]
        counts["sim_faults"] += len(group) - len(valid)
        rewards = np.array([ep.reward for ep in valid], dtype=np.float64)
        if len(valid) < 2 or rewards.std() < 1e-6:
            counts["dropped_groups"] += 1
            continue
        advantages = (rewards - rewards.mean()) / (rewards.std() + 1e-4)
        for ep, advantage in zip(valid, advantages, strict=True):
            if not any(ep.tokens.env_mask):
                continue
            ids = torch.tensor(ep.tokens.prompt_ids + ep.tokens.completion_ids, dtype=torch.long)
            mask = torch.tensor(ep.tokens.env_mask, dtype=torch.float32)
            samples.append(Sample(ids, mask, len(ep.tokens.prompt_ids), float(advantage)))
    return samples, counts


def completion_logprobs(model: Any, samples: list[Sample], temperature: float = 1.0) -> list[torch.Tensor]:
    """Log-probability of each completion token under ``model`` at the sampling temperature (one forward)."""
    width = max(len(s.ids) for s in samples)
    ids = torch.zeros((len(samples), width), dtype=torch.long)
    attention = torch.zeros((len(samples), width), dtype=torch.long)
    for row, sample in enumerate(samples):
        ids[row, : len(sample.ids)] = sample.ids
        attention[row, : len(sample.ids)] = 1
    logits = model(input_ids=ids, attention_mask=attention).logits.float() / max(temperature, 1e-6)
    out = []
    for row, sample in enumerate(samples):
        # logits at position t predict token t + 1: the completion starts at prompt_len
        start, end = sample.prompt_len - 1, len(sample.ids) - 1
        logprobs = torch.log_softmax(logits[row, start:end], dim=-1)
        out.append(logprobs.gather(-1, sample.ids[start + 1 : end + 1].unsqueeze(-1)).squeeze(-1))
    return out


def grpo_loss(cfg: TrainConfig, samples: list[Sample], logprobs: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Clipped-ratio policy loss (+ KL to the reference), mean over each sequence's sampled tokens."""
    losses, kls, clipped = [], [], []
    for sample, new in zip(samples, logprobs, strict=True):
        old = sample.old_logprobs if sample.old_logprobs is not None else new.detach()
        ratio = torch.exp(new - old)
        unclipped = ratio * sample.advantage
        bounded = torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip) * sample.advantage
        per_token = -torch.minimum(unclipped, bounded)
        if cfg.kl_coef > 0 and sample.ref_logprobs is not None:
            delta = sample.ref_logprobs - new
            kl = torch.exp(delta) - delta - 1  # k3: unbiased, always >= 0
            per_token = per_token + cfg.kl_coef * kl
            kls.append(float((kl * sample.mask).sum() / sample.mask.sum()))
        losses.append((per_token * sample.mask).sum() / sample.mask.sum())
        clipped.append(float((((ratio - 1).abs() > cfg.clip).float() * sample.mask).sum() / sample.mask.sum()))
    stats = {"kl": float(np.mean(kls)) if kls else 0.0, "clip_fraction": float(np.mean(clipped))}
    return torch.stack(losses).sum(), stats


def update(cfg: TrainConfig, model: Any, ref: Any, optimizer: Any, samples: list[Sample]) -> dict[str, float]:
    """``epochs`` passes of micro-batched gradient steps over the batch; returns loss and grad-norm stats."""
    model.train()
    with torch.no_grad():  # the behaviour policy's log-probs (and the reference's), before any update
        for start in range(0, len(samples), cfg.micro_batch):
            chunk = samples[start : start + cfg.micro_batch]
            for sample, old in zip(chunk, completion_logprobs(model, chunk, cfg.temperature), strict=True):
                sample.old_logprobs = old
            if ref is not None:
                for sample, reference in zip(chunk, completion_logprobs(ref, chunk, cfg.temperature), strict=True):
                    sample.ref_logprobs = reference
    losses, norms, extras = [], [], []
    for _ in range(cfg.epochs):
        optimizer.zero_grad(set_to_none=True)
        for start in range(0, len(samples), cfg.micro_batch):
            chunk = samples[start : start + cfg.micro_batch]
            loss, stats = grpo_loss(cfg, chunk, completion_logprobs(model, chunk, cfg.temperature))
            (loss / len(samples)).backward()  # accumulate: the step sees the mean over the whole batch
            losses.append(float(loss.detach()) / len(chunk))
            extras.append(stats)
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)))
        optimizer.step()
    return {
        "loss": float(np.mean(losses)),
        "grad_norm": float(np.mean(norms)),
        "kl": float(np.mean([e["kl"] for e in extras])),
        "clip_fraction": float(np.mean([e["clip_fraction"] for e in extras])),
    }


# ----------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(cfg: TrainConfig, step: int, model: Any, tokenizer: Any, optimizer: Any, curriculum: Any) -> Path:
    """Everything needed to continue exactly: policy, optimiser, curriculum, RNG states (written atomically)."""
    root = Path(cfg.out_dir) / "checkpoints"
    final, tmp = root / f"step-{step:05d}", root / f".step-{step:05d}.tmp"
    save_policy(model, tokenizer, tmp / "policy")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save(rng, tmp / "rng.pt")
    state = {"step": step, "curriculum": curriculum.state_dict(), "config": dataclasses.asdict(cfg)}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    if final.exists():
        import shutil

        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(root.glob("step-*"))[: -cfg.keep_checkpoints]:
        import shutil

        shutil.rmtree(old)
    return final


def latest_checkpoint(cfg: TrainConfig) -> Path | None:
    found = sorted((Path(cfg.out_dir) / "checkpoints").glob("step-*"))
    return found[-1] if found else None


def load_checkpoint(path: Path, optimizer: Any, curriculum: Any) -> int:
    """Restore optimiser, curriculum and RNG states (the policy is loaded from ``path / "policy"``)."""
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    rng = torch.load(path / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    state = json.loads((path / "state.json").read_text())
    curriculum.load_state_dict(state["curriculum"])
    return int(state["step"])


# ----------------------------------------------------------------------------------------- the reward's signal


def reward_signal(cfg: TrainConfig, bank: TaskBank, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Does the reward we train on tell right from wrong, on this simulator and these settings?

    Scripted reference agents (:mod:`trustee_env.probes`) play the first ``signal_tasks`` bank tasks
    with the training env's settings: the oracle makes exactly the expected calls, the null agent
    refuses, the others call the wrong tool or send a wrong argument. A reward that pays the null
    agent would teach refusals; one that does not pay the oracle teaches nothing.
    """
    from trustee_env.probes import make_agent

    env = gym.make(
        "Trustee-v0",
        tool_format="hermes",
        reward_mode=cfg.reward_mode,
        max_steps=cfg.max_episode_steps,
        trajectory_path=str(Path(cfg.out_dir) / "signal-trajectories.jsonl"),
        **env_kwargs,
    )
    table: dict[str, Any] = {}
    try:
        for name in ("oracle", "null", "wrong_tool", "wrong_argument"):
            agent = make_agent(name, "hermes")
            rewards, faults, skipped = [], 0, 0
            for index, task in enumerate(bank.tasks[: cfg.signal_tasks]):
                if not agent.applicable(task):
                    skipped += 1
                    continue
                obs, info = env.reset(seed=derive_seed(cfg.seed, "signal", index), options={"task": task})
                reward, done = 0.0, bool(info.get("sim_fault"))
                while not done:
                    obs, reward, terminated, truncated, info = env.step(agent.act(task, obs))
                    done = terminated or truncated
                if info.get("sim_fault"):
                    faults += 1
                else:
                    rewards.append(float(reward))
            table[name] = {
                "p_reward_1": round(float(np.mean([r == 1 for r in rewards])), 3) if rewards else None,
                "mean_reward": round(float(np.mean(rewards)), 3) if rewards else None,
                "episodes": len(rewards),
                "sim_faults": faults,
                "not_applicable": skipped,
            }
    finally:
        env.close()
    return table


# ----------------------------------------------------------------------------------------- the run


def episode_stats(episodes: list[TokenEpisode]) -> dict[str, float]:
    """What changed in the trajectories: well-formed tool calls, expected calls matched, lengths."""
    valid = [ep for ep in episodes if not ep.sim_fault]
    if not valid:
        return {}

    def checks(ep: TokenEpisode) -> dict[str, Any]:
        return ((ep.info.get("verdict") or {}).get("checks")) or {}

    return {
        "success_rate": float(np.mean([ep.reward > 0 for ep in valid])),
        "valid_call_rate": float(np.mean([_simulated_calls(ep) > 0 for ep in valid])),
        "parse_error_rate": float(np.mean([checks(ep).get("parse_errors", 0) > 0 for ep in valid])),
        "expected_matched": float(np.mean([len(checks(ep).get("matched", {})) for ep in valid])),
        "model_tokens": float(np.mean([ep.tokens.num_model_tokens for ep in valid])),
    }


def _simulated_calls(ep: TokenEpisode) -> int:
    """Tool calls that reached the tool simulator: well-formed, a known tool, arguments valid by its schema."""
    usage = ep.info.get("usage") or {}
    return int((usage.get("tool") or {}).get("calls", 0))


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training; returns the last step's log line."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    checkpoint = latest_checkpoint(cfg) if cfg.resume else None
    model, tokenizer = load_policy(checkpoint / "policy" if checkpoint else cfg.policy)
    ref = None
    if cfg.kl_coef > 0:  # the frozen reference is the starting policy, also after a resume
        ref, _ = load_policy(cfg.policy)
        ref.eval().requires_grad_(False)
    turns = TurnTokenizer(tokenizer)
    policy = HFPolicy(model, tokenizer, turns, cfg.temperature, cfg.top_p, cfg.max_turn_tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    start_at = {"difficulty": cfg.start_difficulty} if cfg.curriculum == "paper" else {}
    curriculum = make_curriculum(cfg.curriculum, **start_at)
    start = load_checkpoint(checkpoint, optimizer, curriculum) if checkpoint else 0

    env_kwargs, server = start_simulator(cfg)
    try:
        if cfg.train_bank:
            bank = TaskBank.load(cfg.train_bank)
        else:
            bank = build_bank(cfg.bank_size, seed=cfg.seed, difficulties=(1, 40), **env_kwargs)
            bank.save(out / "train-bank.json")
        if cfg.signal_tasks > 0 and start == 0:
            signal = reward_signal(cfg, bank, env_kwargs)
            (out / "signal.json").write_text(json.dumps(signal, indent=1))
            print("reward signal (P(reward = 1) per reference agent): " + json.dumps(signal), flush=True)
        env = gym.make_vec(
            "Trustee-v0",
            num_envs=cfg.tasks_per_step * cfg.group_size,
            group_size=cfg.group_size,
            tool_format="hermes",  # SmolLM2's template drops tools=: the env writes them into the system prompt
            reward_mode=cfg.reward_mode,
            max_steps=cfg.max_episode_steps,
            curriculum=curriculum,
            trajectory_path=str(out / "trajectories.jsonl"),
            **env_kwargs,
        )
        log_path = out / "log.jsonl"
        line: dict[str, Any] = {}
        print(f"training {cfg.preset!r} from step {start} to {cfg.steps}; log {log_path}", flush=True)
        run_began = time.perf_counter()
        for step in range(start, cfg.steps):
            began = time.perf_counter()
            rng = np.random.default_rng(derive_seed(cfg.seed, "tasks", step))
            tasks = bank.select(cfg.tasks_per_step, difficulty=curriculum.difficulty, rng=rng)
            difficulty = curriculum.difficulty
            episodes = rollout(
                env,
                policy,
                tasks=tasks,
                seed=derive_seed(cfg.seed, "rollout", step),
                max_completion_tokens=cfg.max_completion_tokens,
            )
            rollout_s = time.perf_counter() - began
            samples, counts = group_advantages(episodes, cfg.group_size)
            stats = update(cfg, model, ref, optimizer, samples) if samples else {"loss": 0.0, "grad_norm": 0.0}
            rewards = [ep.reward for ep in episodes if ep.reward is not None]
            curriculum.update(rewards)  # the paper's rule: one move per training step, from the batch
            line = {
                "step": step + 1,
                "reward_mean": float(np.mean(rewards)) if rewards else 0.0,
                "reward_std": float(np.std(rewards)) if rewards else 0.0,
                "difficulty": difficulty,
                "next_difficulty": curriculum.difficulty,
                "episodes": len(episodes),
                "trained_sequences": len(samples),
                "tokens": int(sum(len(ep.tokens.completion_ids) for ep in episodes)),
                **counts,
                **stats,
                **episode_stats(episodes),
                "rollout_seconds": round(rollout_s, 2),
                "seconds": round(time.perf_counter() - began, 2),
            }
            with log_path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(line) + "\n")
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in line.items()}), flush=True)
            out_of_time = cfg.max_minutes is not None and time.perf_counter() - run_began > 60 * cfg.max_minutes
            if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps or out_of_time:
                save_checkpoint(cfg, step + 1, model, tokenizer, optimizer, curriculum)
            if out_of_time:
                print(f"stopping after step {step + 1}: --max-minutes {cfg.max_minutes} reached", flush=True)
                break
        env.close()
    finally:
        if server is not None:
            server.stop()

    final = save_policy(model, tokenizer, out / "final")
    try:
        from trustee_env.plotting import plot_training_log

        print(f"plot: {plot_training_log(out / 'log.jsonl', out / 'reward_difficulty.png')}")
    except Exception as err:  # a missing plot must not lose a finished run
        print(f"plot skipped: {err}", file=sys.stderr)
    print(f"trained policy: {final}")
    print(f"serve it:  vllm serve {final}   (or evaluate it: trustee eval --policy {final} --bank BANK.json)")
    return line


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv)
    if cfg.preset == "gpu":
        print(
            "The gpu preset records the paper's settings (Qwen3-8B, 16 tasks x 8 rollouts, lr 1e-6, KL 0.001, "
            "clip 0.2, 200 steps). This readable trainer generates with transformers one batch at a time; at "
            "that scale use verl (docs/trainers/verl.md) or TRL with vLLM (docs/trainers/trl.md).",
            file=sys.stderr,
        )
    if math.isnan(cfg.lr) or cfg.lr <= 0:
        raise SystemExit("--lr must be positive")
    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
