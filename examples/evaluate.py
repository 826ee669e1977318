"""Score a policy on a held-out task bank, from Python (``trustee eval`` is the same, from the shell).

    python examples/evaluate.py examples/banks/smollm2-heldout.json                 # the bundled SmolLM2 (transformers)
    python examples/evaluate.py BANK.json --policy runs/grpo-cpu/final               # a trained Hugging Face folder
    python examples/evaluate.py BANK.json --policy-base-url http://127.0.0.1:8001/v1 # any served policy

The bank's tasks are replayed exactly (``reset(options={"task": ...})``), so two reports on the same
bank compare policies, not task draws. The simulators default to the embedded llama.cpp server.
"""

from __future__ import annotations

import argparse

from trustee_env.bank import TaskBank
from trustee_env.evaluation import evaluate_endpoint, evaluate_hf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bank")
    parser.add_argument("--policy", help="a Hugging Face folder (default: the bundled SmolLM2)")
    parser.add_argument("--policy-base-url", help="an OpenAI-compatible policy endpoint instead")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=1, help="policy messages per episode (the cpu preset's)")
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args()

    bank = TaskBank.load(args.bank)
    settings = {"reward_mode": "checks", "tool_format": "hermes", "max_steps": args.max_steps}
    if args.policy_base_url:
        report = evaluate_endpoint(bank, repeats=args.repeats, policy={"base_url": args.policy_base_url}, **settings)
    else:
        report = evaluate_hf(args.policy, bank, repeats=args.repeats, temperature=0.7, **settings)
    print(f"{report.policy}: mean reward {report.reward}, success {report.success}")
    print(f"well-formed, schema-valid tool call in {report.valid_call_rate:.0%} of episodes")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(report.model_dump_json(indent=1))


if __name__ == "__main__":
    main()
