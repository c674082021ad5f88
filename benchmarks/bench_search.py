"""Top-k search over a large gallery: brute force vs VectorIndex (exact) vs FAISS (exact and approximate).

    python benchmarks/bench_search.py                      # 1,000,000 x 256, 100 queries, 1 thread
    python benchmarks/bench_search.py --n 200000 --threads 2 --out /tmp/search.json

Data: N random unit vectors (float32, Gaussian then L2-normalised) and Q independent random unit
queries; the reference is the full score matrix sorted with a stable argsort (ties by row). For
each method it records the batch latency of all Q queries (min and median of --repeats runs), the
latency of single queries, recall@k and the fraction of queries whose ordered top-k list equals the
reference exactly, build time, and memory per item (resident growth while building, and bytes on disk
for the persisted index). Uniform random vectors have no neighbourhood structure (in 256-d every item
is nearly equidistant from a query), the worst case for approximate indexes: their recall here is a
lower bound of what they reach on real embeddings, which cluster.

Writes a JSON (command line, machine, thread count, load average: other processes may share the CPU)
and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="gallery size")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=100, help="number of queries in the batch")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (set before numpy loads)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each batch search")
    p.add_argument("--single", type=int, default=10, help="single-query searches timed per method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block-rows", type=int, default=65536)
    p.add_argument("--no-naive", action="store_true", help="skip the full-argsort baseline (slowest)")
    p.add_argument("--no-disk", action="store_true", help="skip the persisted (memory-mapped) index")
    p.add_argument("--no-faiss", action="store_true")
    p.add_argument("--nlist", type=int, default=1024, help="FAISS IVF lists")
    p.add_argument("--nprobe", type=int, nargs="+", default=[16, 64])
    p.add_argument("--ef-search", type=int, nargs="+", default=[128, 512])
    p.add_argument(
        "--hnsw-n",
        type=int,
        default=100_000,
        help="HNSW is built on the first this-many items (its 1-thread build at 1M takes ~15 min); 0 skips it",
    )
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "search_1m.json"))
    return p.parse_args(argv)


ARGS = _parse_args()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clear_sdk.index import VectorIndex, faiss_available, topk_inner_product  # noqa: E402


def rss_bytes() -> int | None:
    """Current resident set size (Linux); None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def unit_rows(rng: np.random.Generator, n: int, d: int, chunk: int = 65536) -> np.ndarray:
    out = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - s), d), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s : s + len(block)] = block
    return out


def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def quality(rows: np.ndarray, ref: np.ndarray, k: int) -> tuple[float, float]:
    recall = float(np.mean([len(set(a[:k].tolist()) & set(b[:k].tolist())) / k for a, b in zip(rows, ref)]))
    exact = float(np.mean([np.array_equal(a[:k], b[:k]) for a, b in zip(rows, ref)]))
    return recall, exact


def machine_info() -> dict[str, object]:
    info: dict[str, object] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or None,
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = {line.split(":", 1)[1].strip() for line in f if line.startswith("model name")}
        info["cpu_model"] = sorted(names)
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    try:
        cfg = np.show_config(mode="dicts")
        info["blas"] = cfg.get("Build Dependencies", {}).get("blas", {})
    except (TypeError, AttributeError):
        pass
    if hasattr(os, "getloadavg"):
        info["loadavg_at_start"] = os.getloadavg()
    return info


def main() -> None:
    args = ARGS
    k, rng = args.k, np.random.default_rng(args.seed)
    print(
        f"data: {args.n:,} x {args.dim} unit vectors, {args.queries} random queries, k={k}, {args.threads} thread(s)",
        flush=True,
    )
    t0 = time.perf_counter()
    x = unit_rows(rng, args.n, args.dim)
    q = unit_rows(rng, args.queries, args.dim)
    print(f"  generated in {time.perf_counter() - t0:.1f}s", flush=True)
    single_q = [q[i : i + 1] for i in range(min(args.single, args.queries))]
    results: list[dict[str, object]] = []

    def record(name: str, batch_times: list[float], rows: np.ndarray, ref: np.ndarray, **extra: object) -> None:
        recall, exact = quality(rows, ref, k)
        entry = {
            "method": name,
            "batch_s_min": min(batch_times),
            "batch_s_median": statistics.median(batch_times),
            "ms_per_query_in_batch": 1000 * min(batch_times) / args.queries,
            "recall_at_k": recall,
            "exact_topk_match": exact,
            **extra,
        }
        results.append(entry)
        print(f"  {name:<34} batch {min(batch_times):7.3f}s  recall@{k} {recall:.4f}  exact {exact:.2f}", flush=True)

    def single_ms(search: Callable[[np.ndarray], object]) -> float:
        times = []
        for one in single_q:
            t = time.perf_counter()
            search(one)
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)

    # ---- reference and brute-force baselines (full score matrix in memory: Q x N float32)
    def naive() -> np.ndarray:
        scores = q @ x.T
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    def argpartition_topk(qq: np.ndarray) -> np.ndarray:
        scores = qq @ x.T
        part = np.argpartition(scores, -k, axis=1)[:, -k:]
        part_s = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -part_s), axis=1)
        return np.take_along_axis(part, order, axis=1)

    t = time.perf_counter()
    ref = naive()  # the reference (also the naive method's first run)
    ref_time = time.perf_counter() - t
    if not args.no_naive:
        record("brute force: matmul + argsort", [ref_time], ref, ref, note="full stable sort of every row; timed once")
    times, rows = timed(lambda: argpartition_topk(q), args.repeats)
    record("brute force: matmul + argpartition", times, rows, ref, single_query_ms=single_ms(argpartition_topk))

    # ---- VectorIndex, in memory (a function, so that its 1 GB buffer is freed on return)
    def bench_memory_index() -> None:
        rss_a = rss_bytes()
        t = time.perf_counter()
        index = VectorIndex(args.dim, block_rows=args.block_rows)
        index.add(x, [str(i) for i in range(args.n)])
        build = time.perf_counter() - t
        rss_b = rss_bytes()
        vectors = index._vectors()
        topk_times, topk_rows = timed(
            lambda: topk_inner_product(q, vectors, k, block_rows=args.block_rows)[1], args.repeats
        )
        search_times, hits = timed(lambda: index.search(q, k=k), args.repeats)
        hit_rows = np.array([[int(h[0]) for h in hs] for hs in hits])
        assert np.array_equal(hit_rows, topk_rows)
        record(
            "VectorIndex exact (in memory)",
            search_times,
            hit_rows,
            ref,
            topk_only_s_min=min(topk_times),
            build_s=build,
            mem_bytes_per_item=None if rss_a is None or rss_b is None else (rss_b - rss_a) / args.n,
            single_query_ms=single_ms(lambda one: index.search(one, k=k)),
            note="search() = blocked top-k + SQLite id/metadata lookup; topk_only_s_min = the top-k step alone",
        )
        index.close()

    bench_memory_index()

    # ---- VectorIndex persisted (vectors memory-mapped; page cache warm after the first run)
    if not args.no_disk:
        tmp = Path(tempfile.mkdtemp(prefix="bench_index_"))
        try:
            t = time.perf_counter()
            disk = VectorIndex(args.dim, tmp / "gallery", block_rows=args.block_rows)
            disk.add(x, [str(i) for i in range(args.n)])
            build = time.perf_counter() - t
            disk_bytes = sum(f.stat().st_size for f in (tmp / "gallery").iterdir())
            times, hits = timed(lambda: disk.search(q, k=k), args.repeats)
            hit_rows = np.array([[int(h[0]) for h in hs] for hs in hits])
            record(
                "VectorIndex exact (on disk, memmap)",
                times,
                hit_rows,
                ref,
                build_s=build,
                disk_bytes_per_item=disk_bytes / args.n,
                single_query_ms=single_ms(lambda one: disk.search(one, k=k)),
                note="warm page cache; build includes fsync of vectors and the SQLite commit",
            )
            disk.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # ---- FAISS
    faiss_version = None
    if not args.no_faiss and faiss_available():
        import faiss

        faiss_version = faiss.__version__
        faiss.omp_set_num_threads(args.threads)

        def faiss_entry(
            name: str,
            index: object,
            build: float,
            rss_before: int | None,
            n_items: int,
            ref_rows: np.ndarray,
            **extra: object,
        ) -> None:
            rss_after = rss_bytes()
            times, (_, rows) = timed(lambda: index.search(q, k), args.repeats)
            record(
                name,
                times,
                rows.astype(np.int64),
                ref_rows,
                build_s=build,
                mem_bytes_per_item=None if rss_before is None else (rss_after - rss_before) / n_items,
                single_query_ms=single_ms(lambda one: index.search(one, k)),
                **extra,
            )

        rss_a = rss_bytes()
        t = time.perf_counter()
        flat = faiss.IndexFlatIP(args.dim)
        flat.add(x)
        faiss_entry("faiss IndexFlatIP (exact)", flat, time.perf_counter() - t, rss_a, args.n, ref)
        del flat

        rss_a = rss_bytes()
        t = time.perf_counter()
        quantizer = faiss.IndexFlatIP(args.dim)
        ivf = faiss.IndexIVFFlat(quantizer, args.dim, args.nlist, faiss.METRIC_INNER_PRODUCT)
        n_train = min(args.n, 64 * args.nlist)
        ivf.train(x[np.sort(rng.choice(args.n, size=n_train, replace=False))])
        ivf.add(x)
        build = time.perf_counter() - t
        for nprobe in args.nprobe:
            ivf.nprobe = nprobe
            faiss_entry(
                f"faiss IVF{args.nlist},Flat nprobe={nprobe}",
                ivf,
                build,
                rss_a,
                args.n,
                ref,
                note=f"approximate; trained on {n_train} samples",
            )
        del ivf, quantizer

        if args.hnsw_n:
            n_h = min(args.hnsw_n, args.n)
            ref_h = ref if n_h == args.n else np.argsort(-(q @ x[:n_h].T), axis=1, kind="stable")[:, :k]
            rss_a = rss_bytes()
            t = time.perf_counter()
            hnsw = faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT)
            hnsw.add(x[:n_h])
            build = time.perf_counter() - t
            for ef in args.ef_search:
                hnsw.hnsw.efSearch = ef
                faiss_entry(
                    f"faiss HNSW32 efSearch={ef} (N={n_h:,})",
                    hnsw,
                    build,
                    rss_a,
                    n_h,
                    ref_h,
                    note=f"approximate; built on the first {n_h} items only (recall vs exact on those)",
                )
            del hnsw

    report = {
        "benchmark": "top-k inner-product search",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "k": k,
        "threads": args.threads,
        "faiss": faiss_version,
        "machine": machine_info(),
        "loadavg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "shared_cpu_note": "the machine's cores are shared with other processes; absolute times vary with their load",
        "vector_bytes_per_item": 4 * args.dim,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print()
    header = (
        f"{'method':<40} {'batch s':>8} {'ms/query':>9} {'1-query ms':>10} {'recall@' + str(k):>9} {'exact':>6} "
        f"{'build s':>8} {'B/item':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        mem = r.get("mem_bytes_per_item") or r.get("disk_bytes_per_item")
        single = r.get("single_query_ms")
        print(
            f"{r['method']:<40} {r['batch_s_min']:8.3f} {r['ms_per_query_in_batch']:9.2f} "
            f"{'' if single is None else f'{single:.1f}':>10} {r['recall_at_k']:9.4f} {r['exact_topk_match']:6.2f} "
            f"{'' if r.get('build_s') is None else format(r['build_s'], '.1f'):>8} "
            f"{'' if mem is None else format(mem, '.0f'):>8}"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
