"""``clear-sdk bench``: latency, throughput, memory, FLOP efficiency, parity and accuracy per backend.

Every backend and batch size is measured in the same process and run, on the same inputs, so
ratios between them are fair. Torch is only imported for the torch backend.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from clear_sdk.bundle import Bundle
from clear_sdk.cli.app import REPORTED, app, console, dataset_options, fail, say
from clear_sdk.paths import package_versions


def _proc_status(field: str) -> float | None:
    """A memory figure (MiB) from /proc/self/status (VmRSS = now, VmHWM = peak); None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def measure_peak_gflops(seconds: float = 1.0, n: int = 1024) -> float:
    """This machine's sustained float32 matrix-multiply rate (GFLOP/s) through numpy's BLAS."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2.0 * n**3 * count / (time.perf_counter() - t0) / 1e9


def _flops_per_image(bundle: Bundle) -> float | None:
    """FLOPs per image, counted on the model config of the bundle's checkpoint (None without one, or without torch)."""
    ckpt = bundle.checkpoint_path
    if ckpt is None:
        return None
    try:  # counting needs torch; a runtime-only install reports no FLOPs
        from clear_sdk.training.models.model_profile import profile_config

        return float(profile_config(json.loads(ckpt.with_suffix(".json").read_text())["model"])["flops_per_image"])
    except (ImportError, OSError, KeyError, ValueError):
        return None


class BusyLoad:
    """``n`` processes that each keep one core busy (a pure-Python spin), beside a measurement.

    They stand for what shares a deployment's CPU (video decoding, other services), so the contended
    case is measured on purpose, not by accident. Used as a context manager; the processes are ended
    by their own ids on exit.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> BusyLoad:
        for _ in range(self.n):
            self._procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        if self.n:
            time.sleep(0.5)  # let them reach the scheduler before anything is timed
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self._procs:
            p.kill()
        for p in self._procs:
            p.wait()
        self._procs = []


#: Pause before each window so that the spin-waiting worker threads of the backend measured before
#: (onnxruntime with spinning, torch's OpenMP pool) go idle instead of competing with the next one.
SETTLE_S = 0.05


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _spread(values: Sequence[float]) -> float:
    """(max - min) / median of repeated measurements: 0.10 means they disagree by 10 % of their median."""
    med = float(np.median(values))
    return float((max(values) - min(values)) / med) if med > 0 else float("inf")


def _time_window(backend: Any, x: np.ndarray, seconds: float, min_iters: int) -> list[float]:
    times: list[float] = []
    t_start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - t_start < seconds:
        t = time.perf_counter()
        backend.run_images(x)
        times.append(time.perf_counter() - t)
    return times


def bench_backends(
    bundle: str | os.PathLike[str],
    backends: Sequence[str] = ("onnxruntime", "torch"),
    batch_sizes: Sequence[int] = (1, 8, 32),
    threads: int | None = None,
    settings: Any = None,
    repeats: int = 5,
    seconds: float = 0.6,
    load: int = 0,
    spread_limit: float = 0.15,
    warmup: int = 3,
    min_iters: int = 3,
) -> dict[str, Any]:
    """Throughput (median of ``repeats`` interleaved windows, with its spread), latency p50/p95/p99,
    memory, FLOP efficiency and parity with torch, per backend and batch size.

    Each repeat measures every (batch size, backend) for ``seconds``, the backends in a rotated order,
    so that drift of the machine hits all of them alike; ratios to torch are taken within a repeat and
    their median reported. A result whose spread ((max - min) / median over the repeats) exceeds
    ``spread_limit`` is flagged ``unstable``: too noisy to compare. ``settings`` (a
    :class:`~clear_sdk.backends.SessionSettings`) configures the onnxruntime backends (default: what
    ``Recognizer`` uses); ``threads`` overrides their intra-op threads and torch's. ``load`` busy
    processes run beside the measurement (:class:`BusyLoad`); the load average is recorded.
    """
    from clear_sdk.backends import DEFAULT_SETTINGS

    if repeats < 1 or seconds <= 0:
        raise ValueError(f"repeats must be >= 1 and seconds > 0, got {repeats} and {seconds}")
    b = Bundle.open(bundle)
    h, w = b.preprocessing.input_size
    rng = np.random.default_rng(0)
    inputs = {bs: rng.standard_normal((bs, 3, h, w), dtype=np.float32) for bs in batch_sizes}
    flops = _flops_per_image(b)
    peak = measure_peak_gflops()
    live, parity, skipped = _open_backends(b, backends, inputs, threads, settings, warmup)
    with BusyLoad(load):
        load_before = _loadavg()
        t0 = time.perf_counter()
        windows = _measure(live, inputs, repeats, seconds, min_iters)
        wall = time.perf_counter() - t0
        load_after = _loadavg()
    rows = [
        _result_row(name, bs, windows, live[name].device, spread_limit, flops, peak, parity[name])
        for name in live
        for bs in batch_sizes
    ]
    described = {n: backend.describe() for n, backend in live.items()}
    for backend in live.values():
        backend.close()
    live.clear()
    gc.collect()
    return {
        "bundle": os.fspath(bundle),  # as given (a shipped name, a path relative to where it ran), not this machine's
        "model": b.model_name,
        "input_size": [h, w],
        "protocol": {
            "repeats": repeats,
            "seconds_per_window": seconds,
            "interleaved": "each repeat measures every batch size and backend once, backends in rotated order",
            "throughput": "median over repeats of images / s in each window",
            "spread": "(max - min) / median over repeats",
            "spread_limit": spread_limit,
            "wall_seconds": wall,
        },
        "settings": {
            "requested": {"threads": threads, "onnxruntime": (settings.to_dict() if settings else None)},
            "backends": described,
            "onnxruntime_default": DEFAULT_SETTINGS.to_dict(),
        },
        "load": {"busy_processes": load, "loadavg_before": load_before, "loadavg_after": load_after},
        "unstable": [f"{r['backend']}@{r['batch_size']}" for r in rows if r["unstable"]],
        "machine": _machine(threads, peak),
        "versions": package_versions(
            ("clear-sdk", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "numpy", "opencv-python-headless")
        ),
        "results": rows,
        "skipped": skipped,
    }


def _machine(threads: int | None, peak: float) -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "peak_gflops_numpy_sgemm": peak,
    }


def _open_backends(
    b: Bundle, backends: Sequence[str], inputs: dict[int, np.ndarray], threads: int | None, settings: Any, warmup: int
) -> tuple[dict[str, Any], dict[str, float | None], dict[str, str]]:
    """(the backends that opened, warmed up; each one's max |probs - torch's| on one batch; why others were skipped).

    Torch opens first: it is the parity reference.
    """
    from clear_sdk.backends import BackendUnavailable, create_backend

    h, w = b.preprocessing.input_size
    parity_batch = np.random.default_rng(0).standard_normal((4, 3, h, w), dtype=np.float32)
    live: dict[str, Any] = {}
    parity: dict[str, float | None] = {}
    skipped: dict[str, str] = {}
    reference: np.ndarray | None = None
    for name in sorted(dict.fromkeys(backends), key=lambda n: n != "torch"):
        try:
            backend = create_backend(b, name, threads=threads, **({"settings": settings} if settings else {}))
        except (BackendUnavailable, ImportError, TypeError) as e:
            skipped[name] = str(e)
            continue
        probs, _ = backend.run_images(parity_batch)
        if name == "torch":
            reference = probs
        parity[name] = float(np.abs(probs - reference).max()) if reference is not None else None
        for x in inputs.values():
            for _ in range(warmup):
                backend.run_images(x)
        live[name] = backend
    return live, parity, skipped


def _measure(
    live: dict[str, Any], inputs: dict[int, np.ndarray], repeats: int, seconds: float, min_iters: int
) -> dict[tuple[str, int], list[list[float]]]:
    """Per (backend, batch size), the call times of each repeat's window; backends in rotated order per repeat."""
    names = list(live)
    windows: dict[tuple[str, int], list[list[float]]] = {(n, bs): [] for n in names for bs in inputs}
    for r in range(repeats):
        for bs, x in inputs.items():
            order = names[r % len(names) :] + names[: r % len(names)] if names else []
            for name in order:
                time.sleep(SETTLE_S)
                windows[(name, bs)].append(_time_window(live[name], x, seconds, min_iters))
    return windows


def _result_row(
    name: str,
    bs: int,
    windows: dict[tuple[str, int], list[list[float]]],
    device: str,
    spread_limit: float,
    flops: float | None,
    peak: float,
    parity: float | None,
) -> dict[str, Any]:
    """One backend at one batch size: throughput, its spread, latency percentiles, memory, FLOP use, ratios."""
    per_rep = _per_repeat(windows[(name, bs)], bs)
    lat = np.concatenate([np.array(t) for t in windows[(name, bs)]]) * 1e3
    throughput = float(np.median(per_rep))
    spread = _spread(per_rep)
    row = {
        "backend": name,
        "device": device,
        "batch_size": bs,
        "throughput": throughput,
        "throughput_repeats": per_rep,
        "spread": spread,
        "unstable": spread > spread_limit,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "iterations": int(len(lat)),
        "rss_mb": _proc_status("VmRSS"),
        "peak_rss_mb": _proc_status("VmHWM"),
        "gpu_mem_mb": _gpu_memory_mb(name),
        "flops_per_image": flops,
        "achieved_gflops": flops * throughput / 1e9 if flops else None,
        "peak_fraction": flops * throughput / 1e9 / peak if flops else None,
        "parity_max_abs_vs_torch": parity,
    }
    if ("torch", bs) in windows and name != "torch":  # paired within each repeat
        ratios = [a / t for a, t in zip(per_rep, _per_repeat(windows[("torch", bs)], bs))]
        row.update(vs_torch=float(np.median(ratios)), vs_torch_repeats=ratios, vs_torch_spread=_spread(ratios))
    if ("onnxruntime", bs) in windows and name.startswith("onnxruntime-"):  # an int8 graph against its fp32 one
        ratios = [a / f for a, f in zip(per_rep, _per_repeat(windows[("onnxruntime", bs)], bs))]
        row.update(vs_fp32=float(np.median(ratios)), vs_fp32_spread=_spread(ratios))
    return row


def _per_repeat(reps: list[list[float]], bs: int) -> list[float]:
    """Images / s in each repeat's window."""
    return [bs * len(t) / sum(t) for t in reps]


def _gpu_memory_mb(backend: str) -> float | None:
    if backend != "torch":
        return None
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def bench_accuracy(
    bundle: str | os.PathLike[str],
    backend: str,
    dataset: str,
    root: str,
    split: str = "test",
    dataset_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """mA/F1 and retrieval R-1/mAP (per scorer) of one backend on a dataset split (needs the training extra).

    A unified-schema bundle is measured in the dataset's own view (its names, its protocol; no hand mapping).
    """
    from clear_sdk.errors import QueryError
    from clear_sdk.metrics import attribute_metrics, retrieval_metrics, retrieval_queries
    from clear_sdk.schema import UNIFIED, load_view
    from clear_sdk.searcher import AttributeSearcher
    from clear_sdk.training.data import create_dataset
    from clear_sdk.views import covered, from_unified

    ds = create_dataset(dataset, root, **(dataset_kwargs or {}))
    recs = ds.split(split)
    paths = [r.path for r in recs]
    labels = ds.labels(split)
    searcher = AttributeSearcher(bundle, backend=backend, scorer="recognition")
    ids = [str(i) for i in range(len(paths))]
    searcher.add(paths, ids=ids)
    probs = searcher.layout.probabilities(searcher.index.get_vectors(ids))
    names = list(searcher.attribute_names)
    thr = np.array(searcher.bundle.threshold_vector())
    decisions = probs > thr
    schema = None
    if searcher.bundle.dataset == UNIFIED and dataset != UNIFIED:  # the dataset's own protocol, in its view
        schema, native = dataset, list(ds.attributes)
        view = covered(load_view(dataset), names, native)
        labels = labels[:, [native.index(n) for n in view.names]]
        probs, decisions = from_unified(view, names, probs, decisions)
        names = view.names
    rec = {k: float(v) for k, v in attribute_metrics(decisions.astype(np.float64), labels).items() if np.isscalar(v)}
    out: dict[str, Any] = {"backend": backend, "recognition": rec, "retrieval": {}}
    if schema:
        out["view"] = schema
    standard = len(type(ds).attributes)
    if 0 < standard < len(names) and names[:standard] == list(type(ds).attributes):  # PETA + colours: first 35
        std = attribute_metrics(decisions[:, :standard].astype(np.float64), labels[:, :standard])
        out["recognition_standard"] = {k: float(v) for k, v in std.items() if np.isscalar(v)}
    queries = retrieval_queries(labels)
    qdicts = [{n: bool(v) for n, v in zip(names, q)} for q in queries]
    for scorer in searcher.layout.scorers:
        try:
            scores, order = searcher.score_matrix(qdicts, scorer=scorer, schema=schema)
        except QueryError as e:  # e.g. PA-100K's Trousers = trousers or jeans: not one conjunctive query
            out["retrieval"][scorer] = {"skipped": str(e)}
            continue
        gallery = labels[[int(i) for i in order]]
        out["retrieval"][scorer] = {k: float(v) for k, v in retrieval_metrics(scores, queries, gallery).items()}
    searcher.close()
    return out


def throughput_plot(report: dict[str, Any], path: str | Path) -> Path:
    """Images/s against batch size, one line per backend (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in sorted({r["backend"] for r in report["results"]}):
        rows = [r for r in report["results"] if r["backend"] == name]
        ax.plot([r["batch_size"] for r in rows], [r["throughput"] for r in rows], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s")
    ax.set_title(f"{report['model']} {tuple(report['input_size'])}")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@app.command("bench")
def bench_command(
    bundle: Annotated[str, typer.Argument(help="Model bundle folder.")],
    backends: Annotated[
        str,
        typer.Option(help="Comma-separated: torch, onnxruntime, onnxruntime-int8, onnxruntime-int8-static, tensorrt."),
    ] = "torch,onnxruntime",
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8,32",
    threads: Annotated[
        int | None, typer.Option(help="Intra-op threads of every backend (default: what Recognizer uses).")
    ] = None,
    spinning: Annotated[
        bool | None, typer.Option("--spinning/--no-spinning", help="onnxruntime: idle workers spin-wait.")
    ] = None,
    execution_mode: Annotated[str | None, typer.Option(help="onnxruntime: sequential or parallel.")] = None,
    inter_threads: Annotated[int | None, typer.Option(help="onnxruntime: inter-op threads (parallel mode).")] = None,
    graph_opt: Annotated[str | None, typer.Option(help="onnxruntime: disable, basic, extended or all.")] = None,
    repeats: Annotated[int, typer.Option(help="Interleaved repeats of every measurement (median, spread).")] = 5,
    seconds: Annotated[float, typer.Option(help="Seconds per measurement window.")] = 0.6,
    load: Annotated[int, typer.Option(help="Busy processes to run beside the measurement (contended CPU).")] = 0,
    spread_limit: Annotated[
        float, typer.Option(help="Flag a result whose (max - min) / median over repeats is above this.")
    ] = 0.15,
    dataset: Annotated[str | None, typer.Option(help="Also measure accuracy per backend on this dataset.")] = None,
    root: Annotated[str | None, typer.Option(help="Dataset folder.")] = None,
    split: Annotated[str, typer.Option(help="Dataset split for accuracy.")] = "test",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Dataset option for --dataset, e.g. --set colours=true.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='{"results": [{"backend", "batch_size", ...}], ...}')] = False,
    plot: Annotated[str | None, typer.Option(help="Write images/s vs batch size to this PNG.")] = None,
) -> None:
    """Latency p50/p95/p99, throughput, memory, FLOP efficiency and parity per backend; accuracy with --dataset."""
    names = [b.strip() for b in backends.split(",") if b.strip()]
    if not names:
        fail(f"--backends {backends!r}: name at least one of torch, onnxruntime, onnxruntime-int8, tensorrt")
    try:
        sizes = [int(b) for b in batch_sizes.split(",")]
    except ValueError:
        fail(f"--batch-sizes {batch_sizes!r}: write comma-separated integers")
    if any(n < 1 for n in sizes):
        fail(f"--batch-sizes {batch_sizes!r}: every batch size must be a positive integer, e.g. 1,8,32")
    if threads is not None and threads < 1:
        fail(f"--threads {threads}: pass a positive number of threads")
    if dataset and not root:
        fail("--dataset needs --root")
    if repeats < 1 or seconds <= 0 or load < 0:
        fail(f"--repeats {repeats} / --seconds {seconds} / --load {load}: pass repeats >= 1, seconds > 0, load >= 0")
    settings = _ort_settings(
        spinning=spinning, execution_mode=execution_mode, inter_op_threads=inter_threads, graph_optimization=graph_opt
    )
    try:
        report = bench_backends(
            bundle, names, sizes, threads=threads, settings=settings, repeats=repeats, seconds=seconds, load=load,
            spread_limit=spread_limit,
        )  # fmt: skip
        if dataset:
            report["accuracy"] = []
            for name in names:
                if name in report["skipped"]:
                    continue
                report["accuracy"].append(bench_accuracy(bundle, name, dataset, root, split, dataset_options(set_)))
    except REPORTED as e:
        fail(str(e))
    if not report["results"]:
        reasons = "; ".join(f"{name}: {why}" for name, why in report["skipped"].items())
        fail(f"no backend could run, nothing was measured ({reasons})", code=2)
    if plot:
        try:
            throughput_plot(report, plot)
        except (ImportError, OSError, ValueError) as e:
            fail(f"cannot write the plot {plot}: {e}")
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_report(report, spread_limit)


def _ort_settings(**changes: Any) -> Any:
    """The runtime's onnxruntime settings with the options given on the command line (None: all defaults)."""
    from clear_sdk.backends import DEFAULT_SETTINGS

    changes = {k: v for k, v in changes.items() if v is not None}
    try:
        return DEFAULT_SETTINGS.replace(**changes) if changes else None
    except ValueError as e:
        fail(f"onnxruntime settings: {e}")


def _print_report(report: dict[str, Any], spread_limit: float) -> None:
    """The report as a table, then what was skipped, what was too noisy, and the accuracy per backend."""
    peak = report["machine"]["peak_gflops_numpy_sgemm"]
    ld = report["load"]
    title = (
        f"{report['model']} {tuple(report['input_size'])}: peak {peak:.0f} GFLOP/s (numpy sgemm); "
        f"{report['protocol']['repeats']} interleaved repeats; {ld['busy_processes']} busy processes, "
        f"load average {ld['loadavg_before']} -> {ld['loadavg_after']}"
    )
    t = Table(title=title)
    cols = ("backend", "batch", "img/s", "spread", "x torch", "p50 ms", "p95 ms", "p99 ms", "RSS MB", "% peak")
    for col in (*cols, "parity vs torch"):
        t.add_column(col, justify="right")
    for r in report["results"]:
        t.add_row(
            r["backend"],
            str(r["batch_size"]),
            f"{r['throughput']:.1f}",
            f"{100 * r['spread']:.0f}%" + (" UNSTABLE" if r["unstable"] else ""),
            f"{r['vs_torch']:.2f}" if "vs_torch" in r else "-",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['rss_mb']:.0f}" if r["rss_mb"] else "-",
            f"{100 * r['peak_fraction']:.1f}" if r["peak_fraction"] else "-",
            f"{r['parity_max_abs_vs_torch']:.1e}" if r["parity_max_abs_vs_torch"] is not None else "-",
        )
    console.print(t)
    for name, why in report["skipped"].items():
        say(f"skipped {name}: {why}", err=True)
    if report["unstable"]:
        say(
            f"spread above {100 * spread_limit:.0f}% for {', '.join(report['unstable'])}: too noisy to compare; "
            "rerun on a quieter machine or with more --repeats",
            err=True,
        )
    for acc in report.get("accuracy", []):
        line = f"{acc['backend']}: mA {acc['recognition']['mA']:.4f} F1 {acc['recognition']['f1']:.4f}"
        for scorer, m in acc["retrieval"].items():
            line += f" | {scorer} R-1 {m['R-1']:.4f} mAP {m['mAP']:.4f}"
        console.print(line)
