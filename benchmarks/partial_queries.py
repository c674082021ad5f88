"""Attribute retrieval on the val identities: CLEAR's whole-vector protocol and partial queries, per scorer.

    python benchmarks/partial_queries.py --bundle default [--data ../shared/data] [--queries 500] [--tag default]

For each val split (Market-1501's 75 held-out training identities, PETA partition 0 val) the gallery is its
images, indexed through the runtime (``AttributeSearcher``), and two protocols are scored for every scorer
the bundle has (``embedding``: CLEAR's cos(E^v, E^q); ``recognition``: the sum of the asked attributes'
log-likelihoods; ``fused``):

* **whole vector** (CLEAR's Table 1/3 protocol): the queries are the split's unique attribute vectors, a hit
  is an image whose whole vector equals the query's; R-1/5/10 and non-interpolated mAP;
* **partial** (ours, beyond the paper): ``--queries`` draws of 1-4 attributes of a random image of the split
  (seed 0, duplicates dropped), a hit is an image that satisfies every asked attribute.

Queries are dicts in the bundle's attribute names (a unified-schema bundle: an attribute a dataset does not
annotate is not asked). Writes ``benchmarks/results/partial_queries_<tag>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clear_sdk import AttributeSearcher
from clear_sdk.metrics import (
    UNKNOWN,
    partial_queries,
    partial_query_hits,
    ranking_metrics,
    retrieval_metrics,
    retrieval_queries,
)

REPO = Path(__file__).resolve().parents[1]


def _as_dict(names: list[str], row: np.ndarray) -> dict[str, bool]:
    return {n: bool(v == 1) for n, v in zip(names, row) if v != UNKNOWN}


def run_split(bundle: str, records, labels: np.ndarray, num_queries: int, weights: list[float]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        searcher = AttributeSearcher(bundle, index_dir=tmp)
        names = searcher.attribute_names
        ids = [str(i) for i in range(len(records))]
        t = time.perf_counter()
        searcher.add([r.path for r in records], ids=ids)
        add_s = time.perf_counter() - t
        whole = retrieval_queries(labels)
        whole_q = [_as_dict(names, q) for q in whole]
        part = partial_queries(labels, num_queries, seed=0)
        part_q = [{names[a]: v for a, v in q.items()} for q in part]
        out = {"images": len(records), "add_seconds": add_s, "whole": {}, "partial": {}}
        mats = {}
        for scorer in searcher.layout.scorers:
            scores, order = searcher.score_matrix(whole_q, scorer=scorer)
            gallery = labels[[int(i) for i in order]]
            out["whole"][scorer] = retrieval_metrics(scores, whole, gallery)
            p_scores, p_order = searcher.score_matrix(part_q, scorer=scorer)
            hits = partial_query_hits(part, labels[[int(i) for i in p_order]])
            out["partial"][scorer] = ranking_metrics(p_scores, hits)
            mats[scorer] = (scores, gallery, p_scores, hits)
        if "embedding" in mats and weights:  # the fused scorer's weight: cos + w x mean log-likelihood of the asked
            (we, gallery, pe, hits), (wr, _, pr, _) = mats["embedding"], mats["recognition"]
            n_whole = np.array([max(len(q), 1) for q in whole_q], np.float64)[:, None]
            n_part = np.array([max(len(q), 1) for q in part_q], np.float64)[:, None]
            for w in weights:
                out["whole"][f"fused w={w:g}"] = retrieval_metrics(we + w * wr / n_whole, whole, gallery)
                out["partial"][f"fused w={w:g}"] = ranking_metrics(pe + w * pr / n_part, hits)
        out["partial_sizes"] = {k: sum(len(q) == k for q in part) for k in (1, 2, 3, 4)}
        searcher.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--tag", default=None)
    ap.add_argument("--fusion-weights", type=float, nargs="*", default=[], help="also score fused at these weights")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    from clear_sdk.training.data import create_dataset

    ds = create_dataset("unified", args.data)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "bundle": args.bundle,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "splits": {},
    }
    for split in ("market1501:val", "peta:val"):
        report["splits"][split] = run_split(
            args.bundle, ds.split(split), ds.labels(split), args.queries, args.fusion_weights
        )
    tag = args.tag or Path(args.bundle).name
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"partial_queries_{tag}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report) + "\n")
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"`{report['command']}`", ""]
    lines += [
        "| split | protocol | queries | scorer | R-1 | R-5 | R-10 | mAP |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for split, r in report["splits"].items():
        for proto in ("whole", "partial"):
            for scorer, m in r[proto].items():
                lines.append(
                    f"| {split} ({r['images']} images) | {proto} | {m['num_queries']} | {scorer} | {m['R-1']:.3f} | "
                    f"{m['R-5']:.3f} | {m['R-10']:.3f} | {m['mAP']:.3f} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
