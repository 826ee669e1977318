#!/usr/bin/env bash
# GRPO on Trustee episodes with verl, with the paper's settings: 16 tasks x 8 rollouts per step,
# lr 1e-6, KL loss 0.001, clip 0.2, 200 steps; policy Qwen3-8B on verl's vLLM rollout, simulator
# Qwen3-8B on its own vLLM server (start it first: trustee serve --engine vllm --model Qwen/Qwen3-8B --port 8001).
#
#   bash examples/verl/run_grpo.sh [extra hydra overrides...]
#
# Needs: pip install "trustee-env[verl]" vllm, GPUs (8 here), and data/trustee/{train,val}.parquet
# from examples/verl/prepare_data.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${DATA:-data/trustee}"
policy="${POLICY:-Qwen/Qwen3-8B}"
gpus="${GPUS:-8}"

python -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    algorithm.use_kl_in_reward=False \
    algorithm.filter_groups.enable=True \
    algorithm.filter_groups.metric=reward \
    data.train_files="$data/train.parquet" \
    data.val_files="$data/val.parquet" \
    data.train_batch_size=16 \
    data.max_prompt_length=4096 \
    data.max_response_length=8192 \
    data.filter_overlong_prompts=False \
    data.return_raw_chat=True \
    +data.apply_chat_template_kwargs.enable_thinking=False \
    actor_rollout_ref.model.path="$policy" \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=16 \
    actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef=0.001 \
    actor_rollout_ref.actor.kl_loss_type=low_var_kl \
    actor_rollout_ref.actor.clip_ratio=0.2 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.mode=async \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.rollout.temperature=1.0 \
    actor_rollout_ref.rollout.agent.agent_loop_config_path="$here/agent_loop.yaml" \
    actor_rollout_ref.rollout.agent.default_agent_loop=trustee \
    trainer.total_training_steps=200 \
    trainer.n_gpus_per_node="$gpus" \
    trainer.nnodes=1 \
    trainer.project_name=trustee \
    trainer.experiment_name=grpo-qwen3-8b \
    trainer.logger='[console]' \
    "$@"
