"""How a PETA model carries over to other cameras: the shipped bundle on PA-100K images.

    python benchmarks/cross_dataset.py --bundle peta-lite0 --root ../shared/data/pa100k-2k

Runs the runtime only (``Recognizer``, onnxruntime; no torch) on the 2,000 PA-100K images of the
subset and scores the attributes the two schemas share. PETA and PA-100K define some of them
differently, so each pair says how it is mapped:

- exact: the same attribute (hat, backpack, shorts, short sleeve, logo, plaid, over 60);
- complement: PA-100K's Female is "not personalMale"; LongSleeve is "not upperBodyShortSleeve";
- union: PA-100K's Trousers (long trousers of any cloth) is PETA's trousers or jeans (max prob);
- close: the nearest PETA attribute where the definitions differ (Glasses vs sunglasses, ShoulderBag
  vs messenger bag, Skirt&Dress vs short skirt, UpperStride vs thin stripes), reported apart.

mA is (TP/P + TN/N) / 2 per attribute at the bundle's thresholds (eps 1e-20, as DESIGN §4).
Writes benchmarks/results/cross_dataset_<bundle>.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from clear_sdk import Recognizer
from clear_sdk.metrics import attribute_metrics

# PA-100K attribute -> (how, PETA attributes)
MAPPING: dict[str, tuple[str, tuple[str, ...]]] = {
    "Female": ("complement", ("personalMale",)),
    "AgeOver60": ("exact", ("personalLarger60",)),
    "Hat": ("exact", ("accessoryHat",)),
    "Backpack": ("exact", ("carryingBackpack",)),
    "ShortSleeve": ("exact", ("upperBodyShortSleeve",)),
    "LongSleeve": ("complement", ("upperBodyShortSleeve",)),
    "UpperLogo": ("exact", ("upperBodyLogo",)),
    "UpperPlaid": ("exact", ("upperBodyPlaid",)),
    "Shorts": ("exact", ("lowerBodyShorts",)),
    "Trousers": ("union", ("lowerBodyTrousers", "lowerBodyJeans")),
    "Glasses": ("close", ("accessorySunglasses",)),
    "ShoulderBag": ("close", ("carryingMessengerBag",)),
    "Skirt&Dress": ("close", ("lowerBodyShortSkirt",)),
    "UpperStride": ("close", ("upperBodyThinStripes",)),
}


def mapped_predictions(probs: np.ndarray, names: list[str], thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Per PA-100K attribute, the PETA model's decision (bool [N]) under :data:`MAPPING`."""
    col = {n: i for i, n in enumerate(names)}
    out = {}
    for pa, (how, peta) in MAPPING.items():
        idx = [col[p] for p in peta]
        decided = probs[:, idx] > thresholds[idx]
        out[pa] = ~decided[:, 0] if how == "complement" else decided.any(axis=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="peta-lite0")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "pa100k-2k"))
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    root = Path(args.root)
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    # rows 1601-2000 name PA-100K's val/test files, stored here by order (see the subset's README)
    files = sorted((root / "images").glob("*.jpg"))
    labels = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.uint8)
    pa_names = header[1:]
    rec = Recognizer(args.bundle)
    t = time.perf_counter()
    probs = rec.predict_proba([str(p) for p in files])
    seconds = time.perf_counter() - t
    thresholds = np.array(rec.bundle.threshold_vector())
    decisions = mapped_predictions(probs, rec.attribute_names, thresholds)
    per = {}
    for pa, pred in decisions.items():
        y = labels[:, pa_names.index(pa)][:, None]
        m = attribute_metrics(pred[:, None].astype(np.float64), y)
        per[pa] = {"how": MAPPING[pa][0], "peta": list(MAPPING[pa][1]), "mA": float(m["mA"]), "positives": int(y.sum())}
    strict = [v["mA"] for v in per.values() if v["how"] != "close"]
    record = {
        "command": " ".join(["python", *sys.argv]),
        "bundle": args.bundle,
        "images": len(files),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "seconds": seconds,
        "mA_exact_complement_union": float(np.mean(strict)),
        "mA_all_mapped": float(np.mean([v["mA"] for v in per.values()])),
        "per_attribute": per,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / f"cross_dataset_{Path(args.bundle).name}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = ["| PA-100K attribute | mapping | PETA attribute(s) | positives | mA |", "| --- | --- | --- | --- | --- |"]
    for pa, v in per.items():
        lines.append(f"| {pa} | {v['how']} | {', '.join(v['peta'])} | {v['positives']} | {v['mA']:.3f} |")
    lines.append(f"| **mean (exact, complement, union)** | | | | **{record['mA_exact_complement_union']:.3f}** |")
    lines.append(f"| mean (all mapped) | | | | {record['mA_all_mapped']:.3f} |")
    table = "\n".join(lines)
    stem.with_suffix(".md").write_text(f"`{record['command']}`\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
