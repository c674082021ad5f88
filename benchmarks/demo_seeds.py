"""The demo over several seeds, and the time stage 2 adds to it.

    # every seed end to end through the CLI (`clear-sdk demo --train --json --set seed=S`), then the table
    python benchmarks/demo_seeds.py run --seeds 0 1 2 --out runs/demo-seeds \
        --results benchmarks/results/demo_synthetic_seeds
    # stage 2 alone on a demo's stage-1 checkpoint, by phase (run it through benchmarks/quiet.py)
    python benchmarks/demo_seeds.py time-stage2 --run runs/demo-seeds/seed0 --results runs/stage2_time.json

``run`` reads each seed's ``report.json`` (test split, through the runtime: recognition metrics and
R-1/5/10 + mAP of the embedding, recognition and fused scorers on the 345 full-vector queries) and
``run/summary.json`` (stage 1 and stage 2 seconds), and writes the mean, standard deviation, min and
max over seeds. ``time-stage2`` copies the stage-1 checkpoint to a fresh folder (so no cached
features are reused, as in a fresh demo) and times ``train_retrieval`` with the demo's recipe, split
into the frozen-feature pass, the language model encoding the query sentences, the per-epoch val
evaluation and the adapter updates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clear_sdk.paths import RunFiles

SCORERS = ("embedding", "recognition", "fused")
METRICS = ("R-1", "R-5", "R-10", "mAP")


def _spread(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max())}  # fmt: skip


def grid_hits(demo_out: Path, k: int = 5) -> dict[str, dict[str, int]]:
    """Per scorer: how many of the top-k hits of the demo grid's queries truly match (the grid's green frames).

    The grid's queries name a few attributes each, unlike the full-vector queries of R-1/mAP; read
    through the runtime on the seed's own bundle and index.
    """
    from clear_sdk.cli.demo import DEMO_QUERIES
    from clear_sdk.searcher import AttributeSearcher
    from clear_sdk.training.data import create_dataset

    ds = create_dataset("synthetic", demo_out / "data")
    label_of = {Path(r.path).stem: lab for r, lab in zip(ds.split("test"), ds.labels("test"))}
    searcher = AttributeSearcher(demo_out / "bundle", index_dir=demo_out / "index")
    out = {}
    try:
        for scorer in SCORERS:
            right = 0
            for q in DEMO_QUERIES:
                wanted = searcher.parse(q)
                for h in searcher.search(q, k=k, scorer=scorer):
                    right += all(bool(label_of[h.id][ds.attributes.index(n)]) == v for n, v in wanted.items())
            out[scorer] = {"right": right, "of": k * len(DEMO_QUERIES)}
    finally:
        searcher.close()
    return out


def run_seeds(args: argparse.Namespace) -> None:
    exe = Path(sys.executable).with_name("clear-sdk")
    rows = []
    for seed in args.seeds:
        out = Path(args.out) / f"seed{seed}"
        report = out / "report.json"
        if not (args.reuse and report.is_file()):
            cmd = [str(exe), "demo", "--train", "--out", str(out), "--json", "--set", f"seed={seed}"]
            cmd += [a for s in args.set for a in ("--set", s)]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            print(f"seed {seed}: {time.perf_counter() - t:.0f} s", flush=True)
        rep = json.loads(report.read_text())
        summary = json.loads(RunFiles(out / "run").summary.read_text())
        rows.append(
            {
                "seed": seed,
                "recognition": rep["recognition"],
                "retrieval": rep["retrieval"]["by_scorer"],
                "stage1_s": summary["par"]["seconds"],
                "stage2_s": summary["retrieval"]["seconds"],
                "stage2_best_val": summary["retrieval"]["best_val"],
                "timings": rep["timings"],
                "grid_hits": grid_hits(out),
            }
        )
    agg = {scorer: {m: _spread([r["retrieval"][scorer][m] for r in rows]) for m in METRICS} for scorer in SCORERS}
    agg["grid_hits"] = {s: _spread([r["grid_hits"][s]["right"] for r in rows]) for s in SCORERS}
    agg["recognition_mA"] = _spread([r["recognition"]["mA"] for r in rows])
    agg["embedding_minus_recognition"] = {
        m: _spread([r["retrieval"]["embedding"][m] - r["retrieval"]["recognition"][m] for r in rows])
        for m in ("R-1", "mAP")
    }
    agg["embedding_minus_fused"] = {
        m: _spread([r["retrieval"]["embedding"][m] - r["retrieval"]["fused"][m] for r in rows]) for m in ("R-1", "mAP")
    }
    record = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "note": "test split (360 images, 345 full-vector queries), through the runtime; times are wall-clock "
        "on shared cores (not quiet), see time-stage2 for the quiet stage-2 time",
        "rows": rows,
        "summary": agg,
    }
    if args.stage2_time:  # the quiet stage-2 measurement of time-stage2, kept beside the seeds it is about
        record["stage2_quiet"] = json.loads(Path(args.stage2_time).read_text())
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [
        "| seed | mA | embedding R-1 / mAP | recognition R-1 / mAP | fused R-1 / mAP "
        "| grid hits right (emb / rec / fused) "
        "| stage 1 s | stage 2 s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        e, rc, f = (r["retrieval"][s] for s in SCORERS)
        lines.append(
            f"| {r['seed']} | {r['recognition']['mA']:.3f} | {e['R-1']:.3f} / {e['mAP']:.3f} | "
            f"{rc['R-1']:.3f} / {rc['mAP']:.3f} | {f['R-1']:.3f} / {f['mAP']:.3f} | "
            f"{' / '.join(str(r['grid_hits'][s]['right']) for s in SCORERS)} of {r['grid_hits']['fused']['of']} | "
            f"{r['stage1_s']:.0f} | "
            f"{r['stage2_s']:.0f} |"
        )

    def ms(d: dict[str, float]) -> str:
        return f"{d['mean']:.3f} ± {d['std']:.3f}"

    grid_mean = " / ".join(f"{agg['grid_hits'][s]['mean']:.1f}" for s in SCORERS)
    lines.append(
        f"| mean ± sd | {ms(agg['recognition_mA'])} | {ms(agg['embedding']['R-1'])} / {ms(agg['embedding']['mAP'])} | "
        f"{ms(agg['recognition']['R-1'])} / {ms(agg['recognition']['mAP'])} | "
        f"{ms(agg['fused']['R-1'])} / {ms(agg['fused']['mAP'])} | "
        f"{grid_mean} | | |"
    )
    d = agg["embedding_minus_recognition"]
    lines.append(
        f"\nembedding − recognition: R-1 {ms(d['R-1'])} (min {d['R-1']['min']:+.3f}), "
        f"mAP {ms(d['mAP'])} (min {d['mAP']['min']:+.3f})"
    )
    lines.append(
        "\nR-1/mAP: test split, 345 full-vector queries, through the runtime. Grid: the demo's 4 partial queries, "
        "top 5 each. Stage times: each demo run's wall clock on shared cores (not quiet)."
    )
    if args.stage2_time:
        t = record["stage2_quiet"]
        lines.append(
            f"\nstage 2 alone, quiet machine, {t['threads']} threads: {t['total_s']:.0f} s (frozen features "
            f"{t['features_s']:.0f} s, language model {t['text_encoder_s']:.0f} s, val {t['val_eval_s']:.0f} s, "
            f"adapter updates and setup {t['adapter_updates_s']:.0f} s)"
        )
    table = "\n".join(lines)
    results.with_suffix(".md").write_text(f"`{record['command']}`\n\n{table}\n")
    print(table)


def time_stage2(args: argparse.Namespace) -> None:
    """train_retrieval on a fresh copy of a demo's stage-1 checkpoint, timed by phase."""
    import torch

    from clear_sdk.training import trainer
    from clear_sdk.training.config import load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    run = Path(args.run)
    phases = {"features_s": 0.0, "text_encoder_s": 0.0, "val_eval_s": 0.0}

    def timed(fn, key):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                phases[key] += time.perf_counter() - t

        return wrapper

    trainer._features = timed(trainer._features, "features_s")
    trainer.retrieval_eval = timed(trainer.retrieval_eval, "val_eval_s")
    encode = trainer.SoftQueries.__call__
    trainer.SoftQueries.__call__ = timed(encode, "text_encoder_s")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / RunFiles.PAR_BEST
        shutil.copy(RunFiles(run / "run").par_best, ckpt)
        shutil.copy(run / "run" / "par_best.json", Path(tmp) / "par_best.json")
        cfg = load_config("synthetic_tiny", args.set, dataset="synthetic", root=str(run / "data"),
                          out=str(Path(tmp) / "out"), stage="retrieval")  # fmt: skip
        t = time.perf_counter()
        result = trainer.train_retrieval(cfg, ckpt, progress=False)
        total = time.perf_counter() - t
    # val_eval_s includes the text encoder's val queries on the first epoch; counted once, under text
    updates = total - sum(phases.values())
    record = {
        "command": " ".join(["python", *sys.argv]),
        "threads": torch.get_num_threads(),
        "total_s": total,
        **phases,
        "adapter_updates_s": updates,
        "best_val": result["best_val"],
        "overrides": args.set,
    }
    print(json.dumps(record, indent=2))
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(record, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="clear-sdk demo for every seed, then the table")
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--out", default="runs/demo-seeds")
    r.add_argument("--set", nargs="*", default=[], help="extra training overrides for every seed")
    r.add_argument("--reuse", action="store_true", help="read a seed's report.json when it exists")
    r.add_argument("--results", required=True)
    r.add_argument("--stage2-time", default="", help="a time-stage2 result to record beside the seeds")
    t = sub.add_parser("time-stage2", help="stage 2 alone on a demo's stage-1 checkpoint, by phase")
    t.add_argument("--run", required=True, help="a demo's --out folder (data/ and run/par_best.safetensors)")
    t.add_argument("--set", nargs="*", default=[], help="stage-2 overrides, e.g. retrieval_epochs=6")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    t.add_argument("--results", default="")
    args = ap.parse_args()
    run_seeds(args) if args.cmd == "run" else time_stage2(args)


if __name__ == "__main__":
    main()
