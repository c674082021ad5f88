"""Sweep of onnxruntime's CPU session settings, to pick the runtime's defaults by measurement.

    python benchmarks/ort_sweep.py --bundle peta-lite0 --graph recognizer --loads 0 2 --tag peta-lite0
    python benchmarks/ort_sweep.py --bundle runs/demo-new/bundle --graph query --tag demo
    python benchmarks/ort_sweep.py --bundle runs/demo-new/bundle --graph text --tag demo

Every setting gets its own session; each repeat measures every (load, batch, setting) once, the
settings in rotated order, so drift hits all alike (the protocol of ``clear-sdk bench``). Reported per
cell: median images (or queries) per second over the repeats, spread, and each setting's ratio to the
best of its cell; the defaults of clear_sdk.backends.onnxruntime are marked. ``--loads`` runs N
busy processes beside the measurement. Writes benchmarks/results/ort_sweep_<graph>_<tag>.json.
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
import onnxruntime as ort

from clear_sdk.backends.onnxruntime import (
    DEFAULT_QUERY_SETTINGS,
    DEFAULT_SETTINGS,
    DEFAULT_TEXT_SETTINGS,
    SessionSettings,
)
from clear_sdk.bundle import Bundle
from clear_sdk.cli.bench import BusyLoad, _loadavg, _spread
from clear_sdk.paths import package_versions

#: Pause before each window: the spinning workers of the session measured before must park first,
#: or they take cores from the next one (which made spinning look free and everything else noisy).
SETTLE_S = 0.05


def grid(full: bool) -> dict[str, SessionSettings]:
    """Threads x spinning (sequential, all optimisations), then one change at a time from the default."""
    out = {}
    for t in (1, 2):
        for spin in (False, True):
            out[f"intra{t}{'-spin' if spin else ''}"] = SessionSettings(intra_op_threads=t, spinning=spin)
    for us in (100, 1000):
        out[f"intra2-spin{us}us"] = SessionSettings(intra_op_threads=2, spinning=True, spin_duration_us=us)
    out["default-threads"] = SessionSettings()
    out["parallel-inter2"] = SessionSettings(intra_op_threads=2, execution_mode="parallel", inter_op_threads=2)
    for level in ("basic", "extended") + (("disable",) if full else ()):
        out[f"opt-{level}"] = SessionSettings(intra_op_threads=2, graph_optimization=level)
    return out


def feeds(bundle: Bundle, graph: str, n: int) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    if graph == "recognizer":
        h, w = bundle.preprocessing.input_size
        return bundle.recognizer_path, {"image": rng.standard_normal((n, 3, h, w), dtype=np.float32)}
    if graph == "query":
        feed = {}
        sess = ort.InferenceSession(str(bundle.query_path), providers=["CPUExecutionProvider"])
        for i in sess.get_inputs():
            feed[i.name] = (rng.random((n, i.shape[1])) < 0.3).astype(np.float32)
        return bundle.query_path, feed
    if graph == "text":
        n_w = bundle.text_encoder.n_w
        ids = rng.integers(1000, 2000, (n, n_w)).astype(np.int64)
        return bundle.text_model_path, {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    raise ValueError(graph)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="peta-lite0")
    ap.add_argument("--graph", choices=("recognizer", "query", "text"), default="recognizer")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    ap.add_argument("--loads", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=0.4)
    ap.add_argument("--full", action="store_true", help="also graph optimisation disabled")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    b = Bundle.open(args.bundle)
    sizes = args.batch_sizes or {"recognizer": [1, 8, 32], "query": [1, 64], "text": [1, 16]}[args.graph]
    default = {"recognizer": DEFAULT_SETTINGS, "query": DEFAULT_QUERY_SETTINGS, "text": DEFAULT_TEXT_SETTINGS}[
        args.graph
    ]
    settings = grid(args.full)
    default_name = next((k for k, v in settings.items() if v == default), None)
    if default_name is None:
        settings["DEFAULT"] = default
        default_name = "DEFAULT"
    path, _ = feeds(b, args.graph, 1)
    sessions = {
        k: ort.InferenceSession(str(path), sess_options=s.session_options(), providers=["CPUExecutionProvider"])
        for k, s in settings.items()
    }
    inputs = {bs: feeds(b, args.graph, bs)[1] for bs in sizes}
    for sess in sessions.values():
        for bs in sizes:
            for _ in range(2):
                sess.run(None, inputs[bs])
    names = list(sessions)
    cells = []
    t0 = time.perf_counter()
    for load in args.loads:
        per = {(k, bs): [] for k in names for bs in sizes}
        with BusyLoad(load):
            before = _loadavg()
            for r in range(args.repeats):
                order = names[r % len(names) :] + names[: r % len(names)]
                for bs in sizes:
                    for k in order:
                        time.sleep(SETTLE_S)
                        sess, feed, n, t = sessions[k], inputs[bs], 0, time.perf_counter()
                        while n < 2 or time.perf_counter() - t < args.seconds:
                            sess.run(None, feed)
                            n += 1
                        per[(k, bs)].append(bs * n / (time.perf_counter() - t))
            after = _loadavg()
        for bs in sizes:
            med = {k: float(np.median(per[(k, bs)])) for k in names}
            best = max(med, key=med.get)
            cells.append(
                {
                    "load": load,
                    "batch_size": bs,
                    "loadavg_before": before,
                    "loadavg_after": after,
                    "best": best,
                    "default": default_name,
                    "default_vs_best": med[default_name] / med[best],
                    "settings": {
                        k: {"per_s": med[k], "spread": _spread(per[(k, bs)]), "vs_best": med[k] / med[best]}
                        for k in names
                    },
                }
            )
    record = {
        "command": " ".join(["python", *sys.argv]),
        "bundle": args.bundle,  # as given: a shipped name or a path relative to the repo
        "graph": args.graph,
        "settings": {k: s.to_dict() for k, s in settings.items()},
        "default": default_name,
        "repeats": args.repeats,
        "seconds_per_window": args.seconds,
        "wall_seconds": time.perf_counter() - t0,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "versions": package_versions(("onnxruntime", "numpy")),
        "cells": cells,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    tag = args.tag or Path(args.bundle).name
    out = args.results / f"ort_sweep_{args.graph}_{tag}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    for c in cells:
        ranked = sorted(c["settings"].items(), key=lambda kv: -kv[1]["per_s"])
        top = ", ".join(f"{k} {v['per_s']:.0f} ({100 * v['spread']:.0f}%)" for k, v in ranked[:4])
        print(
            f"load {c['load']} batch {c['batch_size']}: default {c['default']} = {c['default_vs_best']:.3f} of best; "
            f"{top}"
        )
    print(f"wrote {out} in {record['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
