"""Micro-batching: 8 threads sending one crop per call, with and without ``Recognizer(micro_batch_ms=5)``.

    python benchmarks/microbatch.py --bundle peta-lite0 --threads 8 --ms 5

Each mode runs for ``--seconds`` (interleaved, ``--repeats`` times): ``plain`` (every call runs batch 1
in its caller's thread), ``micro`` (calls gathered into one backend batch, at most ``--ms`` of waiting),
and the single-thread batch-32 rate the gathering aims at. Reports images/s (median over repeats)
and per-call latency p50 / p95. Writes benchmarks/results/bench_microbatch_<bundle>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from clear_sdk import Recognizer
from clear_sdk.cli.bench import _loadavg, _spread


def hammer(rec: Recognizer, crops: np.ndarray, threads: int, seconds: float) -> tuple[float, list[float]]:
    """``threads`` callers, one preprocessed crop per call, for ``seconds``: (images/s, call latencies)."""
    lat: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(threads + 1)

    def worker(t: int) -> None:
        barrier.wait()
        i = t
        while time.perf_counter() < stop:
            s = time.perf_counter()
            rec.run_batch(crops[i % len(crops)][None])
            lat[t].append(time.perf_counter() - s)
            i += threads

    ths = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    t0 = time.perf_counter()
    barrier.wait()
    for th in ths:
        th.join()
    flat = [x for per in lat for x in per]
    return len(flat) / (time.perf_counter() - t0), flat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="peta-lite0")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--ms", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    plain = Recognizer(args.bundle, backend="onnxruntime", device="cpu")
    micro = Recognizer(args.bundle, backend="onnxruntime", device="cpu", micro_batch_ms=args.ms)
    h, w = plain.preprocessing.input_size
    crops = np.random.default_rng(0).standard_normal((64, 3, h, w), dtype=np.float32)
    batch32 = crops[:32]
    for _ in range(3):
        plain.run_batch(batch32)
    per = {"plain": [], "micro": [], "batch32_one_thread": []}
    lats = {"plain": [], "micro": []}
    before = _loadavg()
    for _ in range(args.repeats):
        for mode, rec in (("plain", plain), ("micro", micro)):
            rate, lat = hammer(rec, crops, args.threads, args.seconds)
            per[mode].append(rate)
            lats[mode] += lat
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < args.seconds:
            plain.run_batch(batch32)
            n += 32
        per["batch32_one_thread"].append(n / (time.perf_counter() - t))
    stats = micro._batcher
    record = {
        "command": " ".join(["python", *sys.argv]),
        "bundle": args.bundle,
        "threads": args.threads,
        "micro_batch_ms": args.ms,
        "loadavg_before": before,
        "loadavg_after": _loadavg(),
        "mean_batch_micro": stats.images / max(stats.batches, 1),
        "modes": {
            m: {
                "images_per_s": float(np.median(v)),
                "spread": _spread(v),
                **(
                    {
                        "p50_ms": float(np.percentile(lats[m], 50) * 1e3),
                        "p95_ms": float(np.percentile(lats[m], 95) * 1e3),
                    }
                    if m in lats
                    else {}
                ),
            }
            for m, v in per.items()
        },
    }
    micro.close()
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"bench_microbatch_{Path(args.bundle).name}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["modes"], indent=1), "mean micro batch", round(record["mean_batch_micro"], 1))


if __name__ == "__main__":
    main()
