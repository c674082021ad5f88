"""Search at city scale: AttributeSearcher on a 1M-item gallery, every backend and precision, one table.

    python benchmarks/bench_search.py                                  # everything, 1,000,000 items
    python benchmarks/bench_search.py --parts add,exact --out a.json   # a subset (results merge into --out)
    python benchmarks/bench_search.py --n 100000 --parts milvus
    python benchmarks/bench_search.py --parts searchloop                 # lone int8 queries, nothing else

Gallery. The searcher's own items ``[E^v (256); log p (A); log(1 - p) (A)]`` of the shipped
``peta-lite0`` bundle (A = 57): the visual embeddings and attribute probabilities of real PETA
crops (``--base`` of them, embedded once and cached in ``--cache``), each repeated with noise
(cosine ~0.9 to its crop, as other crops of one track are) until there are ``--n`` items; without
the shared data, random unit vectors. Metadata: 100 cameras, timestamps over 30 days.

Queries: attribute queries (1-3 named attributes) encoded by the bundle's real query graph, so
recall is measured on the query distribution users send. For each method: lone-query latency p50 /
p99 with the encode and the scan shown separately (``--lone`` queries, each fresh: no query cache),
batched throughput (``--batch`` queries in one call), recall@10 and the fraction of queries whose
ordered top-10 equals exact fp32 brute force, add rate, memory per item, and filtered latency
(camera = 1 % of the items, a time range = 50 %). The numpy brute force (gemv + argpartition over
the fp32 embeddings) is timed in the same run: first on its own, then right after each lone query
(``speedup_vs_numpy_interleaved_p50``: the median per-query ratio, which holds when the shared CPU
slows). ``loop_p50_ms``: the same lone queries again, back to back with nothing in between, as a
search loop runs them (a 1 GB numpy gemv just before a query slows the int8 scan by ~1.6x: caches and
memory traffic of the gemv; measured 21-26 ms without it, 35-45 ms right after it).

``--code DIR`` imports clear_sdk from DIR instead of this checkout (used for the "before" run on the
previous commit; methods that code lacks are skipped).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="gallery size")
    p.add_argument("--bundle", default="peta-lite0")
    p.add_argument("--base", type=int, default=2000, help="real crops embedded to seed the gallery")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "clear-sdk-bench-search"))
    p.add_argument("--data", default=os.path.join(_REPO, "..", "shared", "data", "peta-trainval", "images"),
                   help="PETA crops that seed the gallery (default: ../shared/data/peta-trainval/images)")
    p.add_argument("--parts", default="baseline,add,exact,filters,ann,milvus")
    p.add_argument("--precisions", default="fp32,int8", help="exact precisions to time (fp16: the FAISS scan)")
    p.add_argument("--lone", type=int, default=30, help="lone queries timed per method")
    p.add_argument("--batch", type=int, default=100, help="queries in the batched call")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="BLAS / OpenMP threads (set before numpy loads)")
    p.add_argument("--milvus-n", type=int, default=100_000, help="items for the Milvus Lite run")
    p.add_argument("--label", default="after", help="key of this run in the results (before / after)")
    p.add_argument("--code", default=None, help="import clear_sdk from this folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default="", help="recorded with the run: what else the machine was doing")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bench_search_1m_after.json"))
    return p.parse_args(argv)


ARGS = _parse_args()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import datetime  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, ARGS.code or str(Path(__file__).resolve().parents[1]))
from clear_sdk import AttributeSearcher  # noqa: E402

DAY = 86400.0
T0 = 1_780_000_000.0


def rss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def pct(times: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(times)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


# ------------------------------------------------------------------------------------------ the gallery


def base_items(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """Embeddings [B, D] and probabilities [B, A] of real crops (cached), or random ones without the data."""
    cache = Path(args.cache) / f"base_{args.bundle}_{args.base}.npz"
    if cache.exists():
        z = np.load(cache)
        return z["emb"], z["probs"], str(z["kind"])
    from clear_sdk import Recognizer

    rec = Recognizer(args.bundle)
    images = sorted(Path(args.data).glob("*"))[: args.base] if Path(args.data).is_dir() else []
    if images:
        emb, probs, kind = rec.embed([str(p) for p in images]), rec.predict_proba([str(p) for p in images]), "peta"
    else:
        rng = np.random.default_rng(1)
        emb = rng.standard_normal((args.base, rec.embedding_dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        probs, kind = rng.random((args.base, len(rec.attribute_names))).astype(np.float32), "random"
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, emb=emb, probs=probs, kind=kind)
    return emb, probs, kind


def gallery(args: argparse.Namespace, n: int) -> tuple[np.ndarray, np.ndarray, list[str], list[dict]]:
    emb0, probs0, _ = base_items(args)
    rng = np.random.default_rng(args.seed)
    base = rng.integers(0, len(emb0), n)
    emb = emb0[base]
    for s in range(0, n, 65536):  # noise of norm ~0.45: cosine ~0.9 to the crop it copies
        blk = emb[s : s + 65536]
        blk += rng.standard_normal(blk.shape, dtype=np.float32) * np.float32(0.45 / np.sqrt(emb.shape[1]))
        blk /= np.linalg.norm(blk, axis=1, keepdims=True)
    probs = np.clip(probs0[base] + rng.normal(0, 0.05, (n, probs0.shape[1])).astype(np.float32), 0, 1)
    ids = [f"c{i % 100:03d}/{i}" for i in range(n)]
    ts = T0 + np.sort(rng.random(n)) * 30 * DAY
    md = [{"camera": f"cam{i % 100:03d}", "timestamp": float(t)} for i, t in enumerate(ts)]
    return emb, probs, ids, md


def queries(names: list[str], count: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [list(rng.choice(names, size=int(rng.integers(1, 4)), replace=False)) for _ in range(count)]


# ------------------------------------------------------------------------------------------ measuring


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.k = args, args.k
        self.rows: list[dict] = []
        self.emb, self.probs, self.ids, self.md = gallery(args, args.n)
        self.searcher: AttributeSearcher | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="bench_search_"))
        probe = AttributeSearcher(args.bundle)
        self.lone_q = queries(probe.attribute_names, args.lone, 1)
        self.batch_q = queries(probe.attribute_names, args.batch, 2)
        self.qv_lone = probe.encode_query(self.lone_q)
        self.qv_batch = probe.encode_query(self.batch_q)
        probe.close()
        self.ref_lone = self.exact(self.qv_lone)
        self.ref_batch = self.exact(self.qv_batch)

    def exact(self, qv: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Reference: fp32 scores, stable full sort (ties by insertion order)."""
        e = self.emb if rows is None else self.emb[rows]
        out = np.argsort(-(qv @ e.T), axis=1, kind="stable")[:, : self.k]
        return out if rows is None else rows[out]

    def record(self, method: str, **values: object) -> None:
        row = {"method": method, **values}
        self.rows.append(row)
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}
        print(f"  {method:<44} {shown}", flush=True)

    def quality(self, got: list[list[str]], ref: np.ndarray) -> dict[str, float]:
        rows = [[int(i.split("/")[1]) for i in g] for g in got]
        recall = np.mean([len(set(a) & set(b.tolist())) / self.k for a, b in zip(rows, ref)])
        same = np.mean([a == b.tolist() for a, b in zip(rows, ref)])
        return {"recall_at_10": float(recall), "exact_top10": float(same)}

    # --- parts
    def brute(self, qv: np.ndarray) -> np.ndarray:
        """numpy brute force: gemv over the in-memory fp32 embeddings + argpartition + sort of the k."""
        s = qv @ self.emb.T
        part = np.argpartition(s, -self.k, axis=1)[:, -self.k :]
        return np.take_along_axis(part, np.argsort(-np.take_along_axis(s, part, 1), 1, kind="stable"), 1)

    def baseline(self) -> None:
        brute = self.brute
        times = []
        for qv in self.qv_lone:
            t = time.perf_counter()
            brute(qv[None])
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        brute(self.qv_batch)
        batch = time.perf_counter() - t
        self.record("numpy brute force fp32 (gemv + argpartition)", **pct(times), scan_p50_ms=pct(times)["p50_ms"],
                    batch_ms_per_query=1000 * batch / len(self.qv_batch),
                    bytes_per_item=4 * self.emb.shape[1])  # fmt: skip

    def open_searcher(self, path: Path, **kw: object) -> tuple[AttributeSearcher, float, float]:
        searcher = AttributeSearcher(self.args.bundle, index_dir=path, **kw)
        rss0, t = rss(), time.perf_counter()
        searcher.add_embeddings(self.emb, self.ids, self.md, probabilities=self.probs)
        return searcher, time.perf_counter() - t, (rss() - rss0) / self.args.n

    def add(self) -> None:
        searcher, secs, mem = self.open_searcher(self.tmp / "exact")
        disk = sum(f.stat().st_size for f in (self.tmp / "exact").iterdir() if f.is_file())
        self.record("add 1 call (add_embeddings, on disk)", add_s=secs, items_per_s=self.args.n / secs,
                    rss_bytes_per_item_add=mem, disk_bytes_per_item=disk / self.args.n)  # fmt: skip
        self.searcher = searcher

    def lone(self, name: str, search_kw: dict, where: dict | None = None, ref: np.ndarray | None = None) -> dict:
        s = self.searcher
        assert s is not None
        rss0 = rss()
        cols = {"columns": s.columns()} if hasattr(s, "columns") else {}
        s.index.search(s.query_vectors(self.lone_q[:1]), k=self.k, where=where, **cols, **search_kw)  # builds once
        built = (rss() - rss0) / self.args.n
        enc, scan, total, got, ratio = [], [], [], [], []
        for j, q in enumerate(self.lone_q):
            if hasattr(s, "clear_query_cache"):
                s.clear_query_cache()
            t = time.perf_counter()
            qv = s.query_vectors([q])
            t1 = time.perf_counter()
            s.index.search(qv, k=self.k, where=where, **cols, **search_kw)
            t2 = time.perf_counter()
            enc.append(t1 - t)
            scan.append(t2 - t1)
            if hasattr(s, "clear_query_cache"):
                s.clear_query_cache()
            t = time.perf_counter()
            hits = s.search(q, k=self.k, where=where, **search_kw)
            total.append(time.perf_counter() - t)
            got.append([h.id for h in hits])
            # numpy brute force on the same query right after: the ratio holds when the shared CPU slows
            t = time.perf_counter()
            self.brute(self.qv_lone[j : j + 1])
            ratio.append((time.perf_counter() - t) / total[-1])
        loop = []  # the same queries back to back, nothing else in between (a user's search loop)
        for q in self.lone_q:
            if hasattr(s, "clear_query_cache"):
                s.clear_query_cache()
            t = time.perf_counter()
            s.search(q, k=self.k, where=where, **search_kw)
            loop.append(time.perf_counter() - t)
        out = {**pct(total), "loop_p50_ms": pct(loop)["p50_ms"], "loop_p99_ms": pct(loop)["p99_ms"],
               "encode_p50_ms": pct(enc)["p50_ms"], "scan_p50_ms": pct(scan)["p50_ms"],
               "scan_p99_ms": pct(scan)["p99_ms"], "rss_bytes_per_item_first_search": built,
               "speedup_vs_numpy_interleaved_p50": float(np.median(ratio))}  # fmt: skip
        return {**out, **self.quality(got, self.ref_lone if ref is None else ref)}

    def batched(self, search_kw: dict) -> dict:
        s = self.searcher
        t = time.perf_counter()
        res = s.search_many(self.batch_q, k=self.k, **search_kw)
        ms = 1000 * (time.perf_counter() - t) / len(self.batch_q)
        return {"batch_ms_per_query": ms, "batch_recall_at_10": self.quality([[h.id for h in r] for r in res],
                self.ref_batch)["recall_at_10"]}  # fmt: skip

    def precision_kw(self, precision: str) -> dict | None:
        if not hasattr(self.searcher.index, "precisions"):  # the code before reduced precision
            return {} if precision == "fp32" else None
        return {"precision": precision}

    def exact_part(self) -> None:
        for p in self.args.precisions.split(","):
            kw = self.precision_kw(p)
            if kw is None:
                continue
            self.record(f"AttributeSearcher exact {p}", **self.lone(p, kw), **self.batched(kw))

    def searchloop(self) -> None:
        """Lone int8 queries in a process that only searches (run it alone: ``--parts searchloop``).

        What a search service sees: nothing else between queries. The other parts run numpy's 1 GB
        products in the same process, after which the same scan measured ~1.6-2x slower. The numpy
        brute force runs after the loop, on the same queries, for the ratio.
        """
        s = self.searcher
        s.search(self.lone_q[0], k=self.k, precision="int8")  # builds the int8 copy
        times, got = [], []
        for q in self.lone_q:
            s.clear_query_cache()
            t = time.perf_counter()
            hits = s.search(q, k=self.k, precision="int8")
            times.append(time.perf_counter() - t)
            got.append([h.id for h in hits])
        brute = []
        for j in range(len(self.lone_q)):
            t = time.perf_counter()
            self.brute(self.qv_lone[j : j + 1])
            brute.append(time.perf_counter() - t)
        self.record("search loop: exact int8 lone queries only", **pct(times),
                    numpy_after_p50_ms=pct(brute)["p50_ms"],
                    speedup_vs_numpy_p50=float(np.median(brute) / np.median(times)),
                    **self.quality(got, self.ref_lone))  # fmt: skip

    def filters(self) -> None:
        half = (T0, T0 + 15 * DAY)
        cam_rows = np.arange(7, self.args.n, 100)
        ts = np.array([m["timestamp"] for m in self.md])
        time_rows = np.flatnonzero(ts <= half[1])
        both = np.intersect1d(cam_rows, time_rows)
        cam, both_f = {"camera": "cam007"}, {"camera": "cam007", "timestamp": half}
        cases = [("none", None, self.ref_lone), ("camera = 1 %", cam, self.exact(self.qv_lone, cam_rows)),
                 ("time range = 50 %", {"timestamp": half}, self.exact(self.qv_lone, time_rows)),
                 ("camera + time = 0.5 %", both_f, self.exact(self.qv_lone, both))]  # fmt: skip
        best = "int8" if self.precision_kw("int8") is not None else "fp32"
        for label, where, ref in cases:
            self.record(f"filter {label} (exact {best})", **self.lone(best, self.precision_kw(best), where, ref))

    def ann(self) -> None:
        if not hasattr(self.searcher.index, "precisions"):
            return
        for kind, params in (("ivf", [{"nprobe": 16}, {"nprobe": 24}, {"nprobe": 32}, {"nprobe": 64}]),):
            t = time.perf_counter()
            rss0 = rss()
            self.searcher.index.build_ann(kind, columns=self.searcher.columns("embedding"))
            build, mem = time.perf_counter() - t, (rss() - rss0) / self.args.n
            for prm in params:
                kw = {"exact": False, **prm}
                self.record(f"AttributeSearcher {kind.upper()} {prm}", build_s=build, rss_bytes_per_item_ann=mem,
                            **self.lone(kind, kw), **self.batched(kw))  # fmt: skip

    def milvus(self) -> None:
        try:
            import milvus_lite  # noqa: F401
        except ImportError:
            print("  milvus-lite not installed: skipped")
            return
        n = min(self.args.milvus_n, self.args.n)
        path = self.tmp / "milvus.db"
        s = AttributeSearcher(self.args.bundle, index=str(path))
        t = time.perf_counter()
        for i in range(0, n, 20000):
            s.add_embeddings(self.emb[i : i + 20000][: n - i], self.ids[i:n][:20000], self.md[i:n][:20000],
                             probabilities=self.probs[i : i + 20000][: n - i])  # fmt: skip
        add = time.perf_counter() - t
        saved, self.searcher = self.searcher, s
        ref = self.exact(self.qv_lone, np.arange(n))
        lone = self.lone("milvus", {}, None, ref)
        self.record(f"Milvus Lite FLAT (N={n:,})", add_s=add, items_per_s=n / add, **lone)
        ref_f = self.exact(self.qv_lone, np.arange(7, n, 100))
        self.record(
            f"Milvus Lite filter camera = 1 % (N={n:,})", **self.lone("milvus", {}, {"camera": "cam007"}, ref_f)
        )
        s.close()
        self.searcher = saved


def plot(rows: list[dict], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = [r for r in rows if "p50_ms" in r]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.5))
    names = [f"[{r['label']}{' ' + str(r['invocation']) if 'invocation' in r else ''}] {r['method']}" for r in rows]
    ax.barh(names, [r["p50_ms"] for r in rows], color=["#999" if r["label"] == "before" else "#3a7" for r in rows])
    for i, r in enumerate(rows):
        extra = f"  recall {r['recall_at_10']:.3f}" if "recall_at_10" in r else ""
        ax.text(r["p50_ms"], i, f" {r['p50_ms']:.1f} ms{extra}", va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("lone query p50, ms (log), encode included")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def _command(argv: list[str]) -> str:
    """The command as it can be rerun from a clone: paths relative to the repo, ``--code DIR`` as its git commit."""
    import shlex
    import subprocess

    out = []
    for i, a in enumerate(argv):
        if i and argv[i - 1] == "--code":
            rev = subprocess.run(["git", "-C", a, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
            a = f"<checkout of {rev.stdout.strip() or 'another commit'}>"
        elif os.path.isabs(a):
            a = os.path.relpath(a, _REPO)
        out.append(a)
    return shlex.join(out)


def main() -> None:
    args = ARGS
    print(f"bench_search: N={args.n:,}, bundle {args.bundle}, parts {args.parts}, label {args.label}", flush=True)
    b = Bench(args)
    parts = args.parts.split(",")
    try:
        steps: list[tuple[str, Callable[[], None]]] = [("baseline", b.baseline), ("add", b.add),
            ("searchloop", b.searchloop), ("exact", b.exact_part), ("filters", b.filters), ("ann", b.ann),
            ("milvus", b.milvus)]  # fmt: skip
        for name, step in steps:
            if name in parts or (name == "add" and {"searchloop", "exact", "filters", "ann"} & set(parts)):
                step()
    finally:
        if b.searcher is not None:
            b.searcher.close()
        shutil.rmtree(b.tmp, ignore_errors=True)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {"benchmark": "search at city scale", "runs": []}
    report.setdefault("setup", {}).update({"n": args.n, "bundle": args.bundle, "k": args.k, "threads": args.threads,
        "base_crops": args.base, "gallery_kind": base_items(args)[2], "cpu_count": os.cpu_count()})  # fmt: skip
    report.setdefault("commands", {}).setdefault(args.label, [])
    # every invocation keeps its rows (the baseline and add of each run stay beside that run's methods)
    invocation = len(report["commands"][args.label])
    report["runs"] += [{"label": args.label, "invocation": invocation, **r} for r in b.rows]
    report["commands"][args.label].append({"command": _command(sys.argv), "parts": parts,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "loadavg": os.getloadavg(), "note": args.note})  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report["runs"], out.with_suffix(".png"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
