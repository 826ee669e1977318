"""Write verl's parquet files from a Trustee task bank (built here if it does not exist yet).

    python examples/verl/prepare_data.py --bank trustee_runs/bank.json --out data/trustee \
        --base-url http://127.0.0.1:8001/v1 --model Qwen/Qwen3-8B --tasks 3200

Each row carries its task as JSON (``extra_info["task"]``) and ``agent_name: trustee``, so the
8 rollouts of a prompt replay the same task in whichever worker they land.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trustee_env.bank import TaskBank, build_bank
from trustee_env.integrations.verl import write_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bank", type=Path, required=True, help="task bank JSON (built when missing)")
    parser.add_argument("--out", type=Path, required=True, help="folder for train.parquet and val.parquet")
    parser.add_argument("--tasks", type=int, default=3200, help="tasks to generate when building the bank")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--base-url", default=None, help="task generator endpoint (default: TRUSTEE_BASE_URL)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.bank.exists():
        bank = TaskBank.load(args.bank)
    else:
        endpoint = {k: v for k, v in {"base_url": args.base_url, "model": args.model}.items() if v}
        bank = build_bank(args.tasks, seed=args.seed, difficulties=(1.0, 100.0), **endpoint)
        bank.save(args.bank)
    train, val = bank.split(1.0 - args.val_fraction, seed=args.seed)
    print(write_dataset(train, args.out / "train.parquet"), len(train))
    print(write_dataset(val, args.out / "val.parquet"), len(val))


if __name__ == "__main__":
    main()
