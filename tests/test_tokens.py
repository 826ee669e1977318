"""Token-exact turns (trustee_env.tokens) on three chat-template families.

SmolLM2's own template (prefix-preserving ChatML), a Llama-3.1-style template (header tokens,
``<|eot_id|>``, ``ipython`` tool turns) and a Qwen3-style template, which is *not* prefix-preserving
(earlier turns lose their ``<think>`` block). The tokenizer is the bundled SmolLM2's, with the
Llama header tokens added as special tokens for that template.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers", reason="the token helper tests need the 'train' extra (transformers)")

from trustee_env.errors import ConfigError
from trustee_env.tokens import TokenSequence, TurnTokenizer

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
LLAMA_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a store assistant. Tools: get_order(order_id)."},
    {"role": "user", "content": "Where is my order A-1234?"},
    {
        "role": "assistant",
        "content": '<think>\nThe user wants an order.\n</think>\n\n<tool_call>\n{"name": "get_order", '
        '"arguments": {"order_id": "A-1234"}}\n</tool_call>',
    },
    {"role": "tool", "content": '{"order_id": "A-1234", "status": "shipped"}', "tool_call_id": "call_1_0"},
    {"role": "tool", "content": '{"note": "second result"}', "tool_call_id": "call_1_1"},
    {"role": "assistant", "content": "<think>\nShipped.\n</think>\n\nIt shipped yesterday."},
    {"role": "user", "content": "Thanks! And <|im_start|> is just text here."},
    {"role": "assistant", "content": "You're welcome."},
]


@pytest.fixture(scope="module")
def smol_tokenizer(bundled_hf_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_hf_dir)


def _turns(kind: str, tokenizer: Any) -> TurnTokenizer:
    if kind == "smollm2":
        return TurnTokenizer(tokenizer)
    if kind == "qwen3":
        template = (TEMPLATES / "qwen3_style.jinja").read_text()
        return TurnTokenizer(tokenizer, chat_template=template, template_kwargs={"enable_thinking": False})
    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"additional_special_tokens": LLAMA_SPECIALS})
    tok.bos_token = "<|begin_of_text|>"
    return TurnTokenizer(tok, chat_template=(TEMPLATES / "llama3_1_style.jinja").read_text())


def _play(turns: TurnTokenizer, conversation: list[dict[str, Any]]) -> tuple[TokenSequence, list[str]]:
    """Build the sequence turn by turn as a trainer would: assistant turns are 'sampled' ids."""
    first_assistant = next(i for i, m in enumerate(conversation) if m["role"] == "assistant")
    tokens = TokenSequence(prompt_ids=turns.prompt_ids(conversation[:first_assistant]))
    sampled: list[str] = []
    index = first_assistant
    while index < len(conversation):
        message = conversation[index]
        assert message["role"] == "assistant"
        ids = turns.encode(message["content"]) + turns.eot_ids  # what the policy sampled, ending the turn
        tokens.add_model(ids)
        tokens.add_env(turns.close_ids(ids))
        sampled.append(message["content"])
        index += 1
        env: list[dict[str, Any]] = []
        while index < len(conversation) and conversation[index]["role"] != "assistant":
            env.append(conversation[index])
            index += 1
        if env:
            tokens.add_env(turns.env_ids(env))
    return tokens, sampled


@pytest.mark.parametrize("kind", ["smollm2", "llama3_1"])
def test_prefix_preserving_templates_round_trip(kind: str, smol_tokenizer: Any):
    turns = _turns(kind, smol_tokenizer)
    tokens, _ = _play(turns, CONVERSATION)
    text = turns.decode(tokens.prompt_ids + tokens.completion_ids)
    rendered = turns.render(CONVERSATION, generation_prompt=False)
    # The sequence decodes to the whole conversation as the template renders it; what is left is only
    # the template's trailer after the last end-of-turn (ChatML's newline).
    assert rendered.startswith(text)
    assert rendered[len(text) :].strip() == ""
    # Token for token, each turn's context is what the model was given at that turn (not a re-tokenisation
    # of the finished chat, which can merge tokens across a turn boundary: e.g. "\n\n" + "<think>").
    assert tokens.prompt_ids == turns.encode(turns.render(CONVERSATION[:2], generation_prompt=True))


@pytest.mark.parametrize("kind", ["smollm2", "llama3_1", "qwen3"])
def test_mask_marks_exactly_the_sampled_tokens(kind: str, smol_tokenizer: Any):
    turns = _turns(kind, smol_tokenizer)
    tokens, sampled = _play(turns, CONVERSATION)
    assert len(tokens.completion_ids) == len(tokens.env_mask) == len(tokens.logprobs)
    model_ids = [t for t, m in zip(tokens.completion_ids, tokens.env_mask, strict=True) if m == 1]
    assert model_ids == [t for text in sampled for t in turns.encode(text) + turns.eot_ids]
    env_text = turns.decode([t for t, m in zip(tokens.completion_ids, tokens.env_mask, strict=True) if m == 0])
    for message in CONVERSATION:
        if message["role"] in ("tool", "user") and message is not CONVERSATION[1]:
            assert message["content"].strip() in env_text  # every env message is in the masked-out tokens
    assert "get_order" not in env_text  # and no policy text is


def test_qwen3_keeps_what_the_model_saw_where_re_rendering_would_not(smol_tokenizer: Any):
    turns = _turns("qwen3", smol_tokenizer)
    assert turns.end_of_turn == "<|im_end|>"
    tokens, _ = _play(turns, CONVERSATION)
    text = turns.decode(tokens.prompt_ids + tokens.completion_ids)
    re_rendered = turns.render(CONVERSATION, generation_prompt=False)
    # The template is not prefix-preserving: re-rendering drops the first turn's reasoning...
    assert "The user wants an order." not in re_rendered
    # ...while the token-exact sequence keeps every sampled turn verbatim.
    assert "The user wants an order." in text and "Shipped." in text
    # Each environment turn is what the template writes between turns, generation prompt included:
    # tool results grouped in one user turn, then the empty think block of enable_thinking=False.
    env = turns.env_text(CONVERSATION[3:5])
    assert env == (
        "\n<|im_start|>user\n<tool_response>\n"
        + CONVERSATION[3]["content"]
        + "\n</tool_response>\n<tool_response>\n"
        + CONVERSATION[4]["content"]
        + "\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    # And every turn's context is what the template gives the model for a fresh generation at that point
    # when that turn is the last: the first prompt matches exactly.
    first = turns.render(CONVERSATION[:2], generation_prompt=True)
    assert turns.decode(tokens.prompt_ids) == first


def test_end_of_turn_is_found_per_template(smol_tokenizer: Any):
    assert _turns("smollm2", smol_tokenizer).end_of_turn == "<|im_end|>"
    assert _turns("llama3_1", smol_tokenizer).end_of_turn == "<|eot_id|>"


def test_truncated_turn_is_closed_by_env_tokens(smol_tokenizer: Any):
    turns = _turns("smollm2", smol_tokenizer)
    cut = turns.encode('<tool_call>\n{"name": "get_')  # generation hit max tokens mid-call
    assert turns.close_ids(cut) == turns.eot_ids
    assert turns.close_ids(cut + turns.eot_ids) == []
    assert turns.strip_end(cut + turns.eot_ids) == cut
    tokens = TokenSequence(prompt_ids=[1, 2])
    tokens.add_model(cut)
    tokens.add_env(turns.close_ids(cut))
    assert tokens.env_mask == [1] * len(cut) + [0] * len(turns.eot_ids)
    assert tokens.num_model_tokens == len(cut)


def test_a_template_without_an_end_of_turn_token_is_a_clear_error(smol_tokenizer: Any):
    plain = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    with pytest.raises(ConfigError, match="end_of_turn"):
        TurnTokenizer(smol_tokenizer, chat_template=plain)


def test_mismatched_logprobs_are_rejected():
    tokens = TokenSequence(prompt_ids=[0])
    with pytest.raises(ValueError, match="logprobs"):
        tokens.add_model([1, 2], [0.0])


def test_run_token_episode_builds_the_sequence_the_env_played(
    smol_tokenizer: Any, fake_server: Any, mock_catalog: Any
) -> None:
    import asyncio

    import gymnasium as gym

    from trustee_env.testing import ScriptedSimulator
    from trustee_env.tokens import run_token_episode

    server = fake_server(ScriptedSimulator())
    env = gym.make("Trustee-v0", base_url=server.base_url, catalog=mock_catalog, tool_format="hermes", max_steps=2)
    turns = TurnTokenizer(smol_tokenizer)
    replies = iter(["Let me check that for you.", "Anything else?"])
    contexts: list[list[int]] = []

    async def generate(context: list[int], max_new: int) -> tuple[list[int], list[float] | None]:
        contexts.append(list(context))
        ids = turns.encode(next(replies)) + turns.eot_ids
        return ids[:max_new], [-0.5] * min(len(ids), max_new)

    try:
        episode = asyncio.run(run_token_episode(env.unwrapped, generate, turns, max_completion_tokens=512, seed=3))
        messages = env.unwrapped.episode.messages
    finally:
        env.close()
    assert episode.turns == 2 and episode.reward is not None and not episode.sim_fault
    tokens = episode.tokens
    # The first context is the prompt; the second is everything so far, ending in the next generation prompt.
    assert contexts[0] == tokens.prompt_ids
    assert turns.decode(contexts[1]).endswith("<|im_start|>assistant\n")
    assert [lp for lp, m in zip(tokens.logprobs, tokens.env_mask, strict=True) if m] == [-0.5] * tokens.num_model_tokens
    # The sequence decodes to the conversation the env holds (the user's reply after the first turn included).
    text = turns.decode(tokens.prompt_ids + tokens.completion_ids)
    assert text == turns.render(messages[:4], generation_prompt=True).rsplit("<|im_start|>assistant\n", 1)[0] + (
        "<|im_start|>assistant\nAnything else?<|im_end|>"
    )


def test_run_token_episode_finishes_at_the_token_budget(smol_tokenizer: Any, fake_server: Any, mock_catalog: Any):
    import asyncio

    import gymnasium as gym

    from trustee_env.testing import ScriptedSimulator
    from trustee_env.tokens import run_token_episode

    server = fake_server(ScriptedSimulator())
    env = gym.make("Trustee-v0", base_url=server.base_url, catalog=mock_catalog, tool_format="hermes", max_steps=8)
    turns = TurnTokenizer(smol_tokenizer)

    async def chatty(context: list[int], max_new: int) -> tuple[list[int], list[float] | None]:
        return turns.encode("word " * 200)[:max_new], None  # never ends its turn by itself

    try:
        episode = asyncio.run(run_token_episode(env.unwrapped, chatty, turns, max_completion_tokens=64, seed=4))
    finally:
        env.close()
    assert episode.truncated_by_budget and len(episode.tokens.completion_ids) <= 64
    assert episode.info["termination"] == "agent_budget"


def test_cut_turn_stops_at_the_first_end_of_turn_and_the_limit():
    from trustee_env.tokens import cut_turn

    assert cut_turn([5, 6, 9, 7, 9], [9], 10) == 3
    assert cut_turn([5, 8, 9, 7], [8, 9], 10) == 3  # a two-token marker
    assert cut_turn([5, 6, 7, 8], [9], 2) == 2  # no marker: the budget
    assert cut_turn([5, 9], [9], 1) == 1  # the marker past the budget does not count
