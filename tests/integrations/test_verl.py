"""verl adapter: the agent loop's ``run()`` on real Trustee episodes (runs in the verl venv).

``scripts/test-integrations verl`` creates that venv; elsewhere these tests are skipped. verl's
training step needs a GPU rollout engine, so the rollout server here is a tiny random Llama
behind verl's ``generate`` interface, and the simulators are the scripted fake server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl", reason="verl is not installed here; run scripts/test-integrations verl")
torch = pytest.importorskip("torch", reason="torch is not installed here; run scripts/test-integrations verl")

import yaml  # noqa: E402
from helpers import ENV_KWARGS, chatml_tokenizer, check_token_exact, make_tasks, scripted_server  # noqa: E402
from hydra.utils import get_class  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from verl.experimental.agent_loop.agent_loop import AgentLoopOutput, DictConfigWrap  # noqa: E402
from verl.utils.dataset.rl_dataset import RLHFDataset  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

from trustee_env.integrations.verl import AGENT_NAME, TrusteeAgentLoop, write_dataset  # noqa: E402
from trustee_env.testing import Reply  # noqa: E402
from trustee_env.trajectory import read_trajectories  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class TinyRolloutServer:
    """verl's ``server_manager.generate`` played by a tiny random Llama (vLLM needs a GPU)."""

    def __init__(self, tokenizer: Any) -> None:
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
        self.model = LlamaForCausalLM(config).eval()
        self.calls: list[dict[str, Any]] = []

    async def generate(self, *, request_id: str, prompt_ids: list[int], sampling_params: dict[str, Any], **_: Any):
        self.calls.append({"request_id": request_id, "max_tokens": sampling_params["max_tokens"]})
        with torch.no_grad():
            out = self.model.generate(
                torch.tensor([prompt_ids]),
                max_new_tokens=sampling_params["max_tokens"],
                do_sample=True,
                temperature=sampling_params.get("temperature", 1.0),
                return_dict_in_generate=True,
                output_scores=True,
            )
        scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        ids = out.sequences[0, len(prompt_ids) :].tolist()
        return TokenOutput(token_ids=ids, log_probs=scores[0].tolist())


def make_loop(tokenizer: Any, server: TinyRolloutServer, base_url: str, tmp_path: Path, *, response_length: int):
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {"rollout": {"prompt_length": 4096, "response_length": response_length}},
            "data": {"max_prompt_length": 4096, "apply_chat_template_kwargs": {}},
        }
    )
    env_kwargs = {"base_url": base_url, "trajectory_path": str(tmp_path / "episodes.jsonl"), **ENV_KWARGS}
    return TrusteeAgentLoop(
        trainer_config=DictConfigWrap(config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(config.data),
        env_kwargs=env_kwargs,
        max_turn_tokens=24,
    )


def dataset_row(tokenizer: Any, tasks: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    """The first row as verl's own dataset hands it to an agent loop."""
    path = write_dataset(tasks, tmp_path / "train.parquet")
    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 4096, "filter_overlong_prompts": False})
    dataset = RLHFDataset(str(path), tokenizer, config)
    assert len(dataset) == len(tasks)
    row = dataset[0]
    assert row["agent_name"] == AGENT_NAME
    return row


def test_run_plays_a_multi_turn_episode(tmp_path: Path) -> None:
    tokenizer = chatml_tokenizer()
    rollout = TinyRolloutServer(tokenizer)
    with scripted_server() as server:
        tasks = make_tasks(server.base_url, 2)
        row = dataset_row(tokenizer, tasks, tmp_path)
        loop = make_loop(tokenizer, rollout, server.base_url, tmp_path, response_length=256)
        out = loop.loop.run_until_complete(loop.run({"temperature": 1.0}, **row))

    assert isinstance(out, AgentLoopOutput)
    assert len(out.response_ids) == len(out.response_mask) == len(out.response_logprobs) <= 256
    assert out.reward_score in (-1.0, 0.0) and out.extra_fields["trustee_sim_fault"] is None
    assert out.extra_fields["trustee_task_id"] == tasks[0]["task_id"]
    assert len({call["request_id"] for call in rollout.calls}) == 1 and len(rollout.calls) == 2  # two policy turns
    assert all(lp == 0.0 for lp, bit in zip(out.response_logprobs, out.response_mask, strict=True) if not bit)
    assert all(lp < 0.0 for lp, bit in zip(out.response_logprobs, out.response_mask, strict=True) if bit)
    (record,) = read_trajectories(tmp_path / "episodes.jsonl")
    check_token_exact(tokenizer, out.prompt_ids, out.response_ids, out.response_mask, record)
    # verl puts reward_score on the last response token
    tensors = out.as_dict()
    assert tensors["rm_scores"][-1].item() == out.reward_score
    assert torch.count_nonzero(tensors["rm_scores"][:-1]).item() == 0


def test_run_stays_within_response_length(tmp_path: Path) -> None:
    tokenizer = chatml_tokenizer()
    with scripted_server() as server:
        tasks = make_tasks(server.base_url, 1)
        row = dataset_row(tokenizer, tasks, tmp_path)
        loop = make_loop(tokenizer, TinyRolloutServer(tokenizer), server.base_url, tmp_path, response_length=40)
        out = loop.loop.run_until_complete(loop.run({"temperature": 1.0}, **row))
    assert len(out.response_ids) <= 40
    assert out.extra_fields["trustee_termination"] == "agent_budget"
    assert out.reward_score <= 0.0


def test_sim_fault_is_masked_out(tmp_path: Path) -> None:
    tokenizer = chatml_tokenizer()
    with scripted_server() as server:
        tasks = make_tasks(server.base_url, 1)
    faulty = scripted_server(faults={"user": [Reply(content="not json")] * 20})
    with faulty:
        row = dataset_row(tokenizer, tasks, tmp_path)
        loop = make_loop(tokenizer, TinyRolloutServer(tokenizer), faulty.base_url, tmp_path, response_length=256)
        out = loop.loop.run_until_complete(loop.run({"temperature": 1.0}, **row))
    assert out.extra_fields["trustee_sim_fault"] == "user"
    assert out.reward_score == 0.0 and set(out.response_mask) == {0}


def test_example_agent_loop_yaml_names_the_loop() -> None:
    entries = yaml.safe_load((REPO / "examples" / "verl" / "agent_loop.yaml").read_text())
    (entry,) = [e for e in entries if e["name"] == AGENT_NAME]
    assert get_class(entry["_target_"]) is TrusteeAgentLoop


def test_example_launch_overrides_compose_with_verls_config() -> None:
    """Every override in examples/verl/run_grpo.sh names a real key of verl's trainer config."""
    import shlex

    import verl
    from hydra import compose, initialize_config_dir

    script = (REPO / "examples" / "verl" / "run_grpo.sh").read_text()
    body = script.split("python -m verl.trainer.main_ppo", 1)[1].split('"$@"', 1)[0].replace("\\\n", " ")
    values = {"$data": "data/trustee", "$policy": "Qwen/Qwen3-8B", "$gpus": "8", "$here": "examples/verl"}
    overrides = []
    for token in shlex.split(body):
        for name, value in values.items():
            token = token.replace(name, value)
        overrides.append(token)
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    rollout = config.actor_rollout_ref.rollout
    assert rollout.prompt_length >= 4096  # verl cuts longer prompts from the left: the system prompt would go
    assert rollout.agent.agent_loop_config_path.endswith("agent_loop.yaml") and rollout.n == 8
    assert config.algorithm.filter_groups.enable and config.data.train_batch_size == 16
