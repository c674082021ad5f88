"""Static int8 (QDQ) for the shipped peta-lite0 trunk: export it beside fp32 and dynamic int8, with the
accuracy of both graphs recorded in the manifest (PETA val, and PA-100K 2k through the PETA -> PA-100K
mapping of benchmarks/cross_dataset.py).

    python benchmarks/int8_static.py --checkpoint runs/table6-peta-lite0base/hard-seed0 \\
        --peta ../shared/data/peta-trainval --annotation ../shared/data/annotations/PETA.mat \\
        --pa100k ../shared/data/pa100k-2k --out runs/bundle-peta-lite0-int8

Calibration: 256 PETA train images (seed 0), MinMax, per-channel int8 weights, uint8 activations.
Writes the bundle and benchmarks/results/int8_static_peta-lite0.json (speed: ``clear-sdk bench OUT
--backends onnxruntime,onnxruntime-int8,onnxruntime-int8-static``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cross_dataset import MAPPING, mapped_predictions  # noqa: E402

from clear_sdk.bundle import Bundle  # noqa: E402
from clear_sdk.export.bundle_writer import export_bundle  # noqa: E402
from clear_sdk.metrics import attribute_metrics  # noqa: E402
from clear_sdk.paths import RunFiles  # noqa: E402
from clear_sdk.preprocess import preprocess_batch  # noqa: E402
from clear_sdk.training.models import load_checkpoint  # noqa: E402


def pa100k_evaluator(root: Path, checkpoint: Path):
    """mA over the exact / complement / union PA-100K attributes of a PETA graph at thresholds 0.5."""
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    files = sorted((root / "images").glob("*.jpg"))
    labels = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.uint8)
    model, _ = load_checkpoint(checkpoint)
    names, pp = list(model.cfg.attribute_names), model.cfg.preprocessing
    images = preprocess_batch([str(p) for p in files], pp)[0]

    def evaluate(graph: Path) -> dict[str, float]:
        sess = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        probs = np.concatenate(
            [sess.run(["probs"], {"image": images[i : i + 64]})[0] for i in range(0, len(images), 64)]
        )
        decisions = mapped_predictions(probs, names, np.full(len(names), 0.5))
        strict = []
        for pa, pred in decisions.items():
            if MAPPING[pa][0] == "close":
                continue
            y = labels[:, header[1:].index(pa)][:, None]
            strict.append(attribute_metrics(pred[:, None].astype(np.float64), y)["mA"])
        return {"mA": float(np.mean(strict)), "attributes": len(strict), "images": len(files)}

    return evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=Path("runs/table6-peta-lite0base/hard-seed0"))
    ap.add_argument("--peta", default="../shared/data/peta-trainval")
    ap.add_argument("--annotation", default="../shared/data/annotations/PETA.mat")
    ap.add_argument("--pa100k", type=Path, default=Path("../shared/data/pa100k-2k"))
    ap.add_argument("--out", type=Path, default=Path("runs/bundle-peta-lite0-int8"))
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--method", default="minmax")
    ap.add_argument("--ship", action="store_true", help="as the shipped bundle: no checkpoint, no dynamic int8")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    ckpt = RunFiles(args.checkpoint).best if args.checkpoint.is_dir() else args.checkpoint
    out = export_bundle(
        ckpt,
        args.out,
        cpu_int8=not args.ship,
        cpu_int8_static=True,
        checkpoint_copy=not args.ship,
        int8_dataset=("peta", args.peta, {"annotation": args.annotation}),
        int8_calibration_images=args.images,
        int8_method=args.method,
        int8_evaluators={"pa100k-2k (PETA->PA-100K mapping)": pa100k_evaluator(args.pa100k, ckpt)},
    )
    b = Bundle.open(out)
    info = b.manifest.onnx["int8_static"]
    sizes = {n: e.size for n, e in b.files.items() if n.endswith(".onnx")}
    record = {"command": " ".join(["python", *sys.argv]), "bundle": str(out), "int8_static": info, "file_sizes": sizes}
    args.results.mkdir(parents=True, exist_ok=True)
    name = "int8_static_peta-lite0_shipped.json" if args.ship else "int8_static_peta-lite0.json"
    (args.results / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(info["accuracy"], indent=2), sizes)


if __name__ == "__main__":
    main()
