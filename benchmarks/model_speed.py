"""Forward and forward+backward time of the registered models on this machine's CPU (or a GPU).

    python benchmarks/model_speed.py --models clear-tiny clear-small --batch-size 32 --threads 2

Writes benchmarks/results/model_speed_<device>.json with the command, machine and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from clear_sdk.training.models import create_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_model(name: str, batch: int, device: torch.device, repeats: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name).to(device)
    h, w = model.cfg.img_size
    x = torch.randn(batch, 3, h, w, device=device)
    y = torch.randint(0, 2, (batch, model.cfg.num_attrs), device=device).float()
    fwd, fwdbwd = [], []
    model.eval()
    with torch.no_grad():
        for i in range(warmup + repeats):
            _sync(device)
            t = time.perf_counter()
            model(x)
            _sync(device)
            if i >= warmup:
                fwd.append(time.perf_counter() - t)
    model.train()
    for i in range(warmup + repeats):
        _sync(device)
        t = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        model.zero_grad(set_to_none=True)
        _sync(device)
        if i >= warmup:
            fwdbwd.append(time.perf_counter() - t)
    return {
        "model": name,
        "batch_size": batch,
        "input_size": [h, w],
        "parameters": sum(p.numel() for p in model.parameters()),
        "forward_s_median": statistics.median(fwd),
        "forward_backward_s_median": statistics.median(fwdbwd),
        "train_images_per_s": batch / statistics.median(fwdbwd),
        "repeats": repeats,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["clear-tiny", "clear-small"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [time_model(m, args.batch_size, device, args.repeats, args.warmup) for m in args.models]
    for r in rows:
        print(
            f"{r['model']:12s} batch {r['batch_size']}: forward {r['forward_s_median']:.2f} s, "
            f"forward+backward {r['forward_backward_s_median']:.2f} s ({r['train_images_per_s']:.1f} img/s)"
        )
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        },
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "results": rows,
    }
    out = args.out or Path(__file__).parent / "results" / f"model_speed_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
