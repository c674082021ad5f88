"""Build untrained-weight bundles of registered models at 256x128 for latency benchmarks.

    python benchmarks/latency_bundles.py --models clear-tiny clear-small --out runs/latency
    clear-sdk bench runs/latency/clear-tiny --backends torch,onnxruntime --batch-sizes 1,8,32 --json

Latency does not depend on the weights' values, so random weights measure the deployed graph
exactly; the 26 PA-100K attributes give the output width of a real PA-100K model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from clear_sdk.export.bundle_writer import export_bundle
from clear_sdk.schema import load_schema
from clear_sdk.training.models import create_model, save_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["clear-tiny", "clear-small"])
    ap.add_argument("--out", type=Path, default=Path("runs/latency"))
    args = ap.parse_args()
    schema = load_schema("pa100k")
    for name in args.models:
        torch.manual_seed(0)
        model = create_model(name, num_attrs=len(schema.attributes), attribute_names=list(schema.attributes)).eval()
        meta = {"dataset": {"name": "pa100k", "attributes": schema.attributes, "groups": schema.groups}}
        ckpt = save_checkpoint(model, args.out / "checkpoints" / f"{name}.safetensors", extra=meta)
        bundle = export_bundle(ckpt, args.out / name, cpu_int8=True)  # fp32 and the int8 CPU graph
        parity = json.loads((bundle / "manifest.json").read_text())["onnx"]["parity_max_abs"]
        print(f"{name}: {bundle} (ONNX parity {parity})")


if __name__ == "__main__":
    main()
