"""A local add's array work, before / after, in one process: ``GalleryLayout.rows``, ``as_rows``, ``add_embeddings``.

    python benchmarks/ingest_rows.py --before DIR                   # rows() of N = 1M, 3 alternating pairs
    python benchmarks/ingest_rows.py --before DIR --add --n 1000000 # and add_embeddings end to end, on disk

``DIR`` is a checkout of the code to compare against (e.g. ``git worktree add /tmp/before HEAD``); its
``clear_sdk/gallery_layout.py`` (the searcher's rows) and ``clear_sdk/index/base.py`` (``as_rows``, the index's
check of the rows it is given) are loaded beside this checkout's, and every timed call alternates between the
two (before, after, before, ...) so that a machine whose load changes affects both alike. The rows of the two
are checked to be bit-identical first (random probabilities plus 0, 1, 1e-9 and 1 - 1e-9), and ``as_rows`` to
name the same first bad row. ``as_rows`` is timed on the rows; with ``--add``,
``AttributeSearcher.add_embeddings`` (the shipped ``--bundle``, a fresh on-disk index per call) runs with each
pair in turn. The gallery: random unit E^v and uniform probabilities, ids and metadata as bench_search.py makes
them (100 cameras, timestamps over 30 days). Prints the times; writes nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clear_sdk import AttributeSearcher  # noqa: E402
from clear_sdk import gallery_layout as after  # noqa: E402
from clear_sdk.index import base as after_base  # noqa: E402
from clear_sdk.index import local  # noqa: E402


def _load_before(folder: str, module: str):
    """``folder``'s clear_sdk/``module``.py as a module of its own (named ``before_...``)."""
    path = Path(folder) / "clear_sdk" / f"{module}.py"
    spec = importlib.util.spec_from_file_location("before_" + module.replace("/", "_"), path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _gallery(n: int, d: int, a: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, d), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    probs = rng.random((n, a), dtype=np.float32)
    probs[:4] = np.array([0.0, 1.0, 1e-9, 1 - 1e-9], np.float32)[:, None]  # the floors on both sides
    ids = [f"c{i % 100:03d}/{i}" for i in range(n)]
    ts = 1_780_000_000.0 + np.sort(rng.random(n)) * 30 * 86400.0
    md = [{"camera": f"cam{i % 100:03d}", "timestamp": float(t)} for i, t in enumerate(ts)]
    return emb, probs, ids, md


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="a checkout whose clear_sdk/gallery_layout.py is 'before'")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3, help="alternating before / after pairs")
    p.add_argument("--add", action="store_true", help="also time add_embeddings end to end (on disk)")
    p.add_argument("--bundle", default="peta-lite0")
    args = p.parse_args()

    before, before_base = _load_before(args.before, "gallery_layout"), _load_before(args.before, "index/base")
    probe = AttributeSearcher(args.bundle)
    layout = probe.layout
    probe.close()
    emb, probs, ids, md = _gallery(args.n, layout.embed_dim, len(layout.attributes))
    code = {"before": (before.GalleryLayout.rows, before_base.as_rows),
            "after": (after.GalleryLayout.rows, after_base.as_rows)}  # fmt: skip
    rows = {k: rows_fn(layout, probs, emb) for k, (rows_fn, _) in code.items()}
    same = np.array_equal(rows["before"].view(np.uint32), rows["after"].view(np.uint32))
    bad = rows["after"][-3:].copy()
    bad[1, 5] = np.nan
    named = [_error(check, bad, layout.width) for _, check in code.values()]
    print(f"N={args.n:,} width={layout.width}: rows bit-identical before / after: {same}; as_rows: {named}", flush=True)
    if not same or named[0] != named[1]:
        sys.exit(1)
    table = rows["after"]
    del rows
    times: dict[str, dict[str, list[float]]] = {k: {"before": [], "after": []} for k in ("rows", "as_rows", "add")}
    tmp = Path(tempfile.mkdtemp(prefix="ingest_rows_"))
    try:
        for r in range(args.repeats):
            for label, (rows_fn, check) in code.items():
                t = time.perf_counter()
                rows_fn(layout, probs, emb)
                times["rows"][label].append(time.perf_counter() - t)
                t = time.perf_counter()
                check(table, layout.width, "embeddings")
                times["as_rows"][label].append(time.perf_counter() - t)
                if args.add:
                    times["add"][label].append(_add(args.bundle, tmp / f"{label}-{r}", rows_fn, check, emb, ids,
                                                    md, probs))  # fmt: skip
                line = " ".join(f"{k} {v[label][-1]:.2f} s" for k, v in times.items() if v[label])
                print(f"  pair {r + 1} {label:<6} {line}  (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for what, runs in times.items():
        if runs["before"]:
            b, a = (np.median(runs[k]) for k in ("before", "after"))
            print(
                f"{what}: median before {b:.2f} s, after {a:.2f} s ({b - a:+.2f} s)  "
                f"before {[round(x, 2) for x in runs['before']]} after {[round(x, 2) for x in runs['after']]}"
            )


def _error(check, rows: np.ndarray, width: int) -> str:
    try:
        check(rows, width, "embeddings")
    except ValueError as e:
        return str(e)
    return "no error"


def _add(bundle: str, folder: Path, rows_fn, check, emb, ids, md, probs) -> float:
    """Seconds of one add_embeddings into a fresh index at ``folder`` (removed after), with these two functions."""
    new_rows, new_check = after.GalleryLayout.rows, local.as_rows
    after.GalleryLayout.rows, local.as_rows = rows_fn, check
    try:
        with AttributeSearcher(bundle, index_dir=folder) as s:
            t = time.perf_counter()
            s.add_embeddings(emb, ids, md, probabilities=probs)
            return time.perf_counter() - t
    finally:
        after.GalleryLayout.rows, local.as_rows = new_rows, new_check
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
