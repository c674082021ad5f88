"""A unified-schema bundle measured in each dataset's own protocol, through the runtime's views.

    python benchmarks/unified_eval.py --bundle default [--data ../shared/data] [--tag default]

Runs the runtime (``Recognizer``, onnxruntime) over

* PETA partition 0 val (1,900 images) in the ``peta`` view: the standard 35 (the papers' protocol) and the 22
  colours;
* Market-1501 val (the 75 held-out training identities, 1,219 images) in the ``market1501`` view: its 30;
* PA-100K 2k (never trained on) in the ``pa100k`` view: every attribute the unified schema covers;

and scores each at thresholds 0.5 (the papers' protocol) and at calibrated thresholds. The bundle's own
thresholds were chosen on these val splits, so reporting them there is optimistic: ``calibrated (cross-fit)``
instead fits the thresholds (balanced accuracy per attribute, export's ``best_thresholds``) on one half of
the val images (PETA: by image, Market-1501: by identity; seed 0) and scores the other half, both ways.
PA-100K is never used for fitting: it gets the bundle's thresholds. mA is (TP/P + TN/N) / 2 per attribute;
F1 is the instance-based F1 of the papers. Writes ``benchmarks/results/unified_eval_<tag>.json`` and ``.md``.
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

from clear_sdk import Recognizer
from clear_sdk.metrics import attribute_metrics
from clear_sdk.schema import load_view
from clear_sdk.views import covered, from_unified, to_unified

REPO = Path(__file__).resolve().parents[1]


def _sets(data: Path) -> dict[str, tuple[str, list, np.ndarray, list[str], np.ndarray | None]]:
    """name -> (view, records, native labels [N, V] in the view's order, view names, fold of each image or None)."""
    from clear_sdk.training.data import create_dataset

    peta = create_dataset("peta", data / "peta-trainval", colours=True, annotation=data / "annotations" / "PETA.mat")
    market = create_dataset(
        "market1501", data / "market1501-train", annotation=data / "annotations" / "market_attribute.mat"
    )
    pa = create_dataset("csv", data / "pa100k-2k", fractions=(0.0, 0.0, 1.0))
    rng = np.random.default_rng(0)
    out = {}
    for name, ds, split in (("peta", peta, "val"), ("market1501", market, "val"), ("pa100k", pa, "test")):
        recs = ds.split(split)
        view = load_view(name)
        cols = [list(ds.attributes).index(n) for n in view.names]
        labels = ds.labels(split)[:, cols]
        if name == "peta":
            fold = rng.permutation(len(recs)) % 2
        elif name == "market1501":
            pids = sorted({r.pid for r in recs})
            half = set(rng.permutation(pids)[: len(pids) // 2].tolist())
            fold = np.array([int(r.pid in half) for r in recs])
        else:
            fold = None
        out[name] = (name, recs, labels, view.names, fold)
    return out


def _scores(decisions: np.ndarray, labels: np.ndarray) -> dict:
    m = attribute_metrics(decisions.astype(np.float64), labels, 0.5)
    return {"mA": m["mA"], "f1": m["f1"], "accuracy": m["accuracy"], "per_attribute_mA": m["per_attribute_mA"].tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--tag", default=None)
    ap.add_argument(
        "--criterion", default="balanced_accuracy", help="the threshold criterion of the main cross-fit column"
    )
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    from clear_sdk.export.bundle_writer import THRESHOLD_CRITERIA, best_thresholds

    rec = Recognizer(args.bundle)
    if rec.bundle.dataset != "unified":
        sys.exit(f"{args.bundle} answers in {rec.bundle.dataset} names; this benchmark needs a unified-schema bundle")
    names = rec.attribute_names
    thr = np.array(rec.bundle.threshold_vector())
    criterion = args.criterion
    sets = _sets(args.data)
    probs, seconds = {}, {}
    for name, (_, recs, *_rest) in sets.items():
        t = time.perf_counter()
        probs[name] = rec.predict_proba([r.path for r in recs])
        seconds[name] = time.perf_counter() - t

    # cross-fitted thresholds: fit on fold f of PETA val + Market val (unified labels), score fold 1 - f
    fitted: dict[str, dict[int, np.ndarray]] = {c: {} for c in THRESHOLD_CRITERIA}
    for f in (0, 1):
        p_fit, y_fit = [], []
        for name in ("peta", "market1501"):
            _, recs, labels, vnames, fold = sets[name]
            view = load_view(name)
            p_fit.append(probs[name][fold == f])
            y_fit.append(to_unified(view, list(vnames), labels[fold == f]))
        for c in THRESHOLD_CRITERIA:
            fitted[c][f] = best_thresholds(np.concatenate(p_fit), np.concatenate(y_fit), criterion=c)

    report = {
        "command": " ".join(["python", *sys.argv]),
        "bundle": args.bundle,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "sets": {},
    }
    for name, (_, recs, labels, vnames, fold) in sets.items():
        view = covered(load_view(name), names)
        p = probs[name]
        _, d05 = from_unified(view, names, p, p > 0.5)
        _, dcal = from_unified(view, names, p, p > thr)
        entry = {"images": len(recs), "seconds": seconds[name], "attributes": list(vnames)}
        groups = {"all": slice(None)}
        if name == "peta":
            groups = {"standard35": slice(0, 35), "colours22": slice(35, 57), "all": slice(None)}
        if name == "pa100k":
            entry["not_covered"] = view.not_covered
        for g, sl in groups.items():
            entry[g] = {
                "at_0.5": _scores(d05[:, sl], labels[:, sl]),
                "calibrated_bundle": _scores(dcal[:, sl], labels[:, sl]),
            }
            if fold is not None:
                for c in THRESHOLD_CRITERIA:
                    dcf = np.empty_like(d05)
                    for f in (0, 1):
                        rows = fold == 1 - f
                        dcf[rows] = from_unified(view, names, p[rows], p[rows] > fitted[c][f])[1]
                    key = "calibrated_cross_fit" + ("" if c == criterion else f"_{c}")
                    entry[g][key] = _scores(dcf[:, sl], labels[:, sl])
        report["sets"][name] = entry
    tag = args.tag or Path(args.bundle).name
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"unified_eval_{tag}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report) + "\n")
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        f"`{report['command']}`",
        "",
        "| set | attributes | images | mA @0.5 | F1 @0.5 | mA calibrated | F1 calibrated |",
    ]
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for name, e in report["sets"].items():
        for g, v in e.items():
            if not isinstance(v, dict) or "at_0.5" not in v:
                continue
            cal = v.get("calibrated_cross_fit", v["calibrated_bundle"])
            how = "cross-fit" if "calibrated_cross_fit" in v else "bundle"
            lines.append(
                f"| {name} | {g} ({len(v['at_0.5']['per_attribute_mA'])}) | {e['images']} | {v['at_0.5']['mA']:.3f} | "
                f"{v['at_0.5']['f1']:.3f} | {cal['mA']:.3f} ({how}) | {cal['f1']:.3f} |"
            )
    lines += ["", "Cross-fitted calibration by criterion (mA / F1):", ""]
    for name, e in report["sets"].items():
        for g, v in e.items():
            if isinstance(v, dict) and "at_0.5" in v:
                cells = [f"{k.removeprefix('calibrated_cross_fit') or '(main)'} {m['mA']:.3f}/{m['f1']:.3f}"
                         for k, m in v.items() if k.startswith("calibrated_cross_fit")]  # fmt: skip
                if cells:
                    lines.append(f"- {name} {g}: " + ", ".join(cells))
    lines += ["", "Per attribute (mA at 0.5 / calibrated):", ""]
    for name, e in report["sets"].items():
        v = e["all"]
        cal = v.get("calibrated_cross_fit", v["calibrated_bundle"])
        cells = [
            f"{a} {x:.2f}/{y:.2f}"
            for a, x, y in zip(e["attributes"], v["at_0.5"]["per_attribute_mA"], cal["per_attribute_mA"])
        ]
        lines.append(f"- **{name}**: " + ", ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
