"""Table 6 of the CLEAR paper on our data: stage 2 with each query form on one frozen f_par.

    python benchmarks/table6.py --checkpoint runs/peta-lite0/par_best.safetensors --config peta_lite0 \
        --root ../shared/data/peta-trainval --set dataset_kwargs.annotation=../shared/data/annotations/PETA.mat \
        --forms hard+soft hard soft words --seeds 0 --out runs/table6-peta --results benchmarks/results/table6_peta

For each query form (HA = hard, W = words, SP = soft, HA+SP = hard+soft) the project's own
``train_retrieval`` trains the adapters on the checkpoint's cached features (the same f_par for
every form), selects the epoch on val (never a collapsed one), and the selected adapters are scored
on the val split with DESIGN §4's protocol: queries = the unique attribute vectors of val, a gallery
image is a positive when its whole vector equals the query, R-1/5/10 and non-interpolated mAP.
Beside each form, the two scorers that need no embedding, computed as ``AttributeSearcher`` computes
them for a query that names every attribute: ``recognition`` = the sum of the log-likelihoods of the
asked values (log-probabilities clipped at log 1e-6), and ``fused`` = embedding cosine + 0.1 / A x that
sum (3 / asked for a signed bundle, as the searcher). A multi-dataset split (``--split market1501:val``
of ``unified``) leaves some attributes unannotated: they are part of the whole-vector class, not asked
of the recognition scorer, and encoded as not asked in a signed hard query. Writes <results>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from clear_sdk.metrics import known_mask, retrieval_metrics, retrieval_queries
from clear_sdk.paths import RunFiles  # noqa: E402
from clear_sdk.searcher import SIGNED_FUSION_WEIGHT
from clear_sdk.training.config import load_config
from clear_sdk.training.data import create_dataset
from clear_sdk.training.models import load_checkpoint
from clear_sdk.training.trainer import SoftQueries, _feature_cache, _features, _query_inputs, train

LOG_FLOOR = float(np.log(1e-6))  # as clear_sdk.searcher
FUSION_WEIGHT = 0.1  # AttributeSearcher's default for binary bundles


def recognition_scores(probs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """[Q, N]: sum over the query's annotated attributes of log p (asked present) or log(1 - p) (asked
    absent); an attribute the query's dataset does not annotate (``UNKNOWN``) is not asked."""
    p = np.clip(probs.astype(np.float64), 0.0, 1.0)
    logp = np.maximum(np.log(np.maximum(p, 1e-300)), LOG_FLOOR)
    log1m = np.maximum(np.log(np.maximum(1.0 - p, 1e-300)), LOG_FLOOR)
    known = known_mask(queries)
    q = np.where(known, queries, 0).astype(np.float64)
    return q @ logp.T + (known & (queries == 0)).astype(np.float64) @ log1m.T


def score_forms(ckpt: Path, ds, split: str) -> dict[str, dict[str, float]]:
    model, meta = load_checkpoint(ckpt)
    model.eval()
    records = ds.split(split)
    feats = _features(
        model, records, model.cfg.preprocessing, torch.device("cpu"), _feature_cache(ckpt, records, split)
    )
    labels = ds.labels(split)
    queries = retrieval_queries(labels)
    rc = model.retrieval.cfg
    soft = None
    if rc.uses_text:
        soft = SoftQueries(
            meta["text_encoder"], list(ds.attributes), meta.get("description_template"), form=rc.query_form
        )
    with torch.no_grad():
        f = torch.from_numpy(feats)
        probs = torch.sigmoid(model.forward_head(f)).numpy()
        q = model.encode_query(*_query_inputs(model, queries, soft))  # the trainer's own query encoding
        emb = (q @ model.image_embedding(f).t()).numpy().astype(np.float64)
    rec = recognition_scores(probs, queries)
    # AttributeSearcher's default fused scorer: its weight for the encoding, over the query's asked attributes
    weight = SIGNED_FUSION_WEIGHT if rc.query_encoding == "signed" else FUSION_WEIGHT
    asked = known_mask(queries).sum(1, keepdims=True).clip(min=1)
    scores = {"embedding": emb, "recognition": rec, "fused": emb + weight / asked * rec}
    return {k: {m: float(v) for m, v in retrieval_metrics(s, queries, labels).items()} for k, s in scores.items()}


def _recorded_seconds(out: Path) -> float:
    """Stage-2 seconds of an earlier run, from its summary.json (nan when it has none)."""
    try:
        return float(json.loads(RunFiles(out).summary.read_text())["retrieval"]["seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="stage-1 checkpoint (f_par)")
    ap.add_argument("--config", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--forms", nargs="+", default=["hard+soft", "hard", "soft", "words"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--split", default="val")
    ap.add_argument("--out", default="runs/table6")
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--score-only", action="store_true", help="score the runs already in --out, train nothing")
    ap.add_argument("--reuse", action="store_true", help="score a form already trained in --out, train the others")
    args = ap.parse_args()
    rows = []
    for form in args.forms:
        for seed in args.seeds:
            out = Path(args.out) / f"{form}-seed{seed}"
            cfg = load_config(
                args.config,
                [*args.set, f"query_form={form}", f"seed={seed}"],
                root=args.root,
                out=str(out),
                stage="retrieval",
                pretrained=args.checkpoint,
            )
            t = time.perf_counter()
            reused = args.score_only or (args.reuse and (out / "best.json").is_file())
            if reused:  # the selected epoch, as train_retrieval recorded it in the checkpoint
                meta = json.loads((out / "best.json").read_text())
                val = meta["val"]
                summary = {"best_val": {"epoch": meta["epoch"], **meta.get("collapse", {}),
                                        "max_mean_cosine": val.get("retrieval_max_mean_cosine")}}  # fmt: skip
            else:
                summary = train(cfg, progress=False)["retrieval"]
            seconds = time.perf_counter() - t if not reused else _recorded_seconds(out)
            ds = create_dataset(cfg.dataset, cfg.root, **cfg.dataset_kwargs)
            scored = score_forms(RunFiles(out).best, ds, args.split)
            history = json.loads(RunFiles(out).history("retrieval").read_text())
            rows.append(
                {
                    "form": form,
                    "seed": seed,
                    "seconds": seconds,
                    "best_epoch": summary["best_val"].get("epoch"),
                    "collapsed": summary["best_val"].get("collapsed"),
                    "max_mean_cosine": summary["best_val"].get("max_mean_cosine"),
                    "scores": scored,
                    "history": history,
                }
            )
            print(form, seed, {k: round(v["mAP"], 4) for k, v in scored.items()}, f"{seconds:.0f} s", flush=True)
    record = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()},
        "protocol": f"{args.split} split; queries = unique attribute vectors; exact-vector positives; "
        "non-interpolated mAP",
        "rows": rows,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [
        "| query form | seed | R-1 | R-5 | R-10 | mAP | recognition R-1 / mAP | fused R-1 / mAP | stage 2 s "
        "| collapsed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    label = {"hard": "HA", "words": "W", "soft": "SP", "hard+soft": "HA+SP"}
    for r in rows:
        e, rec, fu = (r["scores"][k] for k in ("embedding", "recognition", "fused"))
        lines.append(
            f"| {label[r['form']]} | {r['seed']} | {e['R-1']:.3f} | {e['R-5']:.3f} | {e['R-10']:.3f} "
            f"| {e['mAP']:.3f} | "
            f"{rec['R-1']:.3f} / {rec['mAP']:.3f} | {fu['R-1']:.3f} / {fu['mAP']:.3f} | {r['seconds']:.0f} | "
            f"{r['collapsed']} |"
        )
    table = "\n".join(lines)
    args.results.with_suffix(".md").write_text(f"`{record['command']}`\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
