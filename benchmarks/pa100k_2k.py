"""CLEAR (clear-tiny) vs the ResNet-50 baseline vs PromptPAR on the 2,000-image PA-100K subset, same CPU budget.

    python benchmarks/pa100k_2k.py --root ../shared/data/pa100k-2k --budget-minutes 5 \
        --models clear-tiny resnet50 promptpar-tiny

All models train from scratch (no pretrained weights can be downloaded here) with the same
recipe (training/configs/pa100k_2k.yaml), the same stage-1 time budget and the same stage-2
settings, on the 1600/200/200 split by file order; the checkpoint is chosen on val and the
numbers are on test. PromptPAR without CLIP weights trains with ``tune=full`` (prompt tuning of a
random frozen tower would measure nothing); give ``--clip-weights FILE`` to run the paper's
prompt tuning instead. Writes benchmarks/results/pa100k_2k.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from clear_sdk.training.config import load_config
from clear_sdk.training.trainer import evaluate, train


def run(model: str, args: argparse.Namespace) -> dict:
    out = Path(args.out) / model
    overrides = list(args.set)
    if model.startswith("promptpar"):
        overrides.append(f"model_kwargs.tune={'prompt' if args.clip_weights else 'full'}")
        if args.clip_weights:
            overrides.append(f"pretrained={args.clip_weights}")
    cfg = load_config(
        "pa100k_2k",
        overrides,
        dataset="csv",
        root=args.root,
        model=model,
        out=str(out),
        time_budget_s=args.budget_minutes * 60,
        epochs=args.max_epochs,
    )
    t = time.perf_counter()
    summary = train(cfg, progress=not args.quiet)
    wall = time.perf_counter() - t
    result = evaluate(out, "csv", args.root, split="test")
    return {
        "model": model,
        "tune": cfg.model_kwargs.get("tune"),
        "parameters": summary["par"]["parameters"],
        "trainable_parameters": summary["par"]["trainable_parameters"],
        "test": {"recognition": result["recognition"], "retrieval": result.get("retrieval")},
        "best_val_epoch": summary["par"]["best_val"].get("epoch"),
        "train_images_per_s": summary["par"]["train_images_per_s"],
        "stage1_seconds": summary["par"]["seconds"],
        "wall_seconds": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "pa100k-2k"))
    ap.add_argument("--models", nargs="+", default=["clear-tiny", "resnet50"])
    ap.add_argument("--budget-minutes", type=float, default=8.0, help="stage-1 training time per model")
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--out", default="runs/pa100k_2k")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    ap.add_argument("--clip-weights", help="local CLIP checkpoint for promptpar-* (then tune=prompt)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "pa100k_2k")
    args = ap.parse_args()
    rows = [run(m, args) for m in args.models]
    record = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {"torch": torch.__version__},
        "protocol": "PA-100K 2k subset, 1600/200/200 by file order; from scratch; best checkpoint on val; test split",
        "results": rows,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [
        "| model | mA | F1 | R-1 | mAP | train img/s | stage-1 s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        rec, ret = r["test"]["recognition"], r["test"]["retrieval"] or {}
        lines.append(
            f"| {r['model']} | {rec['mA']:.4f} | {rec['f1']:.4f} | {ret.get('R-1', float('nan')):.4f} | "
            f"{ret.get('mAP', float('nan')):.4f} | {r['train_images_per_s']:.1f} | {r['stage1_seconds']:.0f} |"
        )
    table = "\n".join(lines)
    args.results.with_suffix(".md").write_text(f"`{record['command']}`\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
