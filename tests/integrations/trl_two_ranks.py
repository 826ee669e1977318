"""One GRPO step on two CPU processes (run by test_trl.py under torchrun): each rank writes what it saw.

Argv: base_url, bank path, output folder. Each rank writes rank<N>.json: the task ids of its rows, its
rewards and its curriculum's state dict after the step.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from helpers import ENV_KWARGS, chatml_tokenizer
from test_trl import grpo_args, tiny_llama
from trl import GRPOTrainer

from trustee_env.integrations.trl import TrusteeRollout, task_dataset, trustee_reward


def main() -> None:
    base_url, bank, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    rank = int(os.environ["RANK"])
    tokenizer = chatml_tokenizer()
    rollout = TrusteeRollout(
        bank, env_kwargs={"base_url": base_url, **ENV_KWARGS}, curriculum="paper", max_turn_tokens=16, seed=7
    )
    rows: list[dict] = []

    def recording(prompts, trainer):
        result = rollout(prompts, trainer)
        rows.append({"task_ids": result["trustee_task_id"], "rewards": result["trustee_reward"]})
        return result

    trainer = GRPOTrainer(
        model=tiny_llama(tokenizer),
        processing_class=tokenizer,
        reward_funcs=trustee_reward,
        args=grpo_args(out / "trainer", per_device_train_batch_size=2, max_completion_length=128),
        train_dataset=task_dataset(bank),
        rollout_func=recording,
    )
    trainer.train()
    state = rollout.curriculum.state_dict()
    (out / f"rank{rank}.json").write_text(json.dumps({"rows": rows, "curriculum": state}))


if __name__ == "__main__":
    main()
