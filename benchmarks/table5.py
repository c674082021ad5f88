"""Table 5 of the CLEAR paper on real photos, on a budget: the variants' branches trained on cached trunk maps.

    python benchmarks/table5.py --root ../shared/data --trunk imagenet --epochs 4 \
        --runs vit swin swin+casa concat cross lite0 --results benchmarks/results/table5_imagenet

Two cores cannot afford ten end-to-end runs of ``clear-lite0``, so this freezes the EfficientNet-Lite0
trunk and computes its maps once per image (the stride-8 map that feeds Swin + CASA, the stride-16 map
that feeds the ViT, and the pooled stride-32 feature of the ``lite0`` baseline; the training images also
flipped, the only augmentation), caches them under ``runs/table5-cache/``, and trains each variant's
branches and head on the cache (``CrossTransformer.forward_maps``: exactly the modules of
``clear-lite0``, fed from the cache instead of the trunk). ``--trunk imagenet`` is the ImageNet trunk;
``--trunk CHECKPOINT`` a fine-tuned ``lite*`` checkpoint's trunk (e.g. the shipped model's).

A run is a name: a Table 5 variant (``vit``, ``swin``, ``swin+casa``, ``concat``, ``cross``), optionally
with options after colons: ``cross:bn`` (ours: BatchNorm over the logits), ``cross:pool`` (ours: the
trunk's pooled feature in the fused vector), ``cross:bn:pool``, ``cross:lr=3e-4``, ``cross:epochs=8``,
``cross:warmup=1``; or ``lite0``: the baseline's head (Linear + BatchNorm over the logits) on the same
pooled feature, the control. Data: the unified schema's train split (PETA partition 0 + Market-1501's
training identities, each source drawn equally often), weighted BCE with unannotated attributes masked;
the epoch is selected on the mean of the two val splits' mA, as the trainer selects, and each source's
mA and F1 (at 0.5, over the attributes it annotates) are reported. FLOPs per image are of the whole
model (trunk included) at the input size, counted by ``clear-sdk``'s profiler. Writes <results>.json/.md;
``--save-dir`` keeps each run's branches, and ``--assemble RUN --assembled PATH`` joins one of them to its
trunk as a whole checkpoint (stage 2, eval and export then read it like any other):

    python benchmarks/table5.py --trunk runs/unified-lite0/par_best.safetensors --save-dir runs/table5-ft \
        --assemble cross:bn:pool --assembled runs/clear-unified/par_best.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from clear_sdk.training.data import create_dataset
from clear_sdk.training.datasets_torch import ImageDataset
from clear_sdk.training.losses import bce_loss
from clear_sdk.training.models import create_model
from clear_sdk.training.models.lite import LiteTrunk
from clear_sdk.training.models.model_profile import profile_model
from clear_sdk.training.trainer import _param_groups, source_sampler, validation_metrics

KEYS = ("s8", "s16", "pool")


# -- the cache ---------------------------------------------------------------------------------
def load_trunk(spec: str, arch: str, img_size: tuple[int, int]) -> LiteTrunk:
    """The whole Lite trunk (maps at strides 8 and 16 plus the pooled feature), frozen, in eval mode."""
    trunk = LiteTrunk(arch, img_size, (8, 16), pooled=True)
    if spec == "imagenet":
        trunk.load_imagenet()
    else:
        from safetensors.torch import load_file

        state = load_file(spec)
        own = {k[len("par.trunk.") :]: v for k, v in state.items() if k.startswith("par.trunk.")}
        trunk.load_state_dict(own, strict=True)
    return trunk.eval().requires_grad_(False)


def cache_dir(spec: str, arch: str, img_size: tuple[int, int], records) -> Path:
    h = hashlib.sha256(f"{spec}|{arch}|{img_size}".encode())
    if spec != "imagenet":
        h.update(Path(spec).read_bytes())
    h.update("\n".join(r.path for r in records).encode("utf-8", "surrogateescape"))
    return Path("runs/table5-cache") / h.hexdigest()[:16]


@torch.no_grad()
def extract(trunk: LiteTrunk, records, pp, out: Path, flip: bool) -> dict[str, np.ndarray]:
    """The trunk's maps of every record (float16, record order), computed once and kept in ``out``."""
    files = {k: out / f"{k}{'-flip' if flip else ''}.npy" for k in KEYS}
    if all(f.is_file() for f in files.values()):
        return {k: np.load(f) for k, f in files.items()}
    out.mkdir(parents=True, exist_ok=True)
    loader = torch.utils.data.DataLoader(ImageDataset(records, pp, False, cache=False), batch_size=64)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in KEYS}
    start = time.perf_counter()
    for i, (x, _, _) in enumerate(loader):
        if flip:
            x = x.flip(-1)
        for k, m in zip(KEYS, trunk(x.contiguous(memory_format=torch.channels_last))):
            parts[k].append(m.contiguous().numpy().astype(np.float16))
        if i % 40 == 0:
            print(
                f"  cache {out.name} flip={flip}: {(i + 1) * 64}/{len(records)} ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    for k, f in files.items():
        tmp = f.with_name(f.stem + ".tmp.npy")
        np.save(tmp, np.concatenate(parts[k]))
        tmp.replace(f)
    return {k: np.load(f) for k, f in files.items()}


# -- the runs ----------------------------------------------------------------------------------
def parse_run(spec: str, defaults: argparse.Namespace) -> dict:
    name, *opts = spec.split(":")
    run = {
        "spec": spec,
        "variant": name,
        "head": "fc",
        "pooled": False,
        "lr": defaults.lr,
        "epochs": defaults.epochs,
        "warmup": defaults.warmup,
    }
    for o in opts:
        if o in ("bn", "fc"):
            run["head"] = o
        elif o == "pool":
            run["pooled"] = True
        elif "=" in o:
            k, v = o.split("=", 1)
            if k not in ("lr", "epochs", "warmup"):
                raise SystemExit(f"unknown option {k!r} in run {spec!r}; options: bn, fc, pool, lr=, epochs=, warmup=")
            run[k] = int(v) if k == "epochs" else float(v)
        else:
            raise SystemExit(f"unknown option {o!r} in run {spec!r}; options: bn, fc, pool, lr=, epochs=, warmup=")
    return run


class Branches(nn.Module):
    """A registered model's modules after the trunk (its trunk dropped: the cache stands in for it):
    ``clear-lite0``'s branches and head, or ``lite0``'s own head on the pooled feature (the control)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        model.par.trunk = None

    def forward(self, s8, s16, pool):
        par = self.model.par
        if par.cfg.arch == "lite":
            return par.forward_head(pool)
        return par.forward_head(par.forward_maps(s8, s16, pool if par.cfg.pooled_trunk else None))


def build(run: dict, args, num_attrs: int) -> tuple[nn.Module, dict]:
    size = tuple(args.img_size)
    if run["variant"] == "lite0":
        prof = profile_model("lite0", num_attrs=num_attrs, img_size=size)
        return Branches(create_model("lite0", num_attrs=num_attrs, img_size=size)), prof
    kw = dict(variant=run["variant"], head=run["head"], pooled_trunk=run["pooled"], num_attrs=num_attrs, img_size=size)
    prof = profile_model(args.model, **kw)
    return Branches(create_model(args.model, **kw)), prof


def batch(cache: dict[str, np.ndarray], idx: np.ndarray) -> tuple[list[torch.Tensor], np.ndarray]:
    idx = np.sort(idx)
    return [torch.from_numpy(np.asarray(cache[k][idx], dtype=np.float32)) for k in KEYS], idx


@torch.no_grad()
def predict(net: nn.Module, cache: dict[str, np.ndarray], n: int, bs: int = 256) -> np.ndarray:
    net.eval()
    out = []
    for i in range(0, n, bs):
        xs, _ = batch(cache, np.arange(i, min(i + bs, n)))
        out.append(torch.sigmoid(net(*xs)).numpy())
    return np.concatenate(out)


def train_run(run: dict, args, data: dict) -> dict:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    net, prof = build(run, args, data["num_attrs"])
    groups = _param_groups(net, args.weight_decay, run["lr"])
    opt = torch.optim.AdamW(groups, lr=run["lr"])
    n = len(data["train_records"])
    steps = n // args.batch_size
    total, warm = run["epochs"] * steps, int(run["warmup"] * steps)

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    sampler = source_sampler(data["train_records"], SimpleNamespace(balance="equal", seed=args.seed))
    rng = np.random.default_rng(args.seed)
    pos = data["pos_ratio"]
    history, best, best_state = [], None, None
    start = time.perf_counter()
    for epoch in range(min(run["epochs"], args.stop_after or run["epochs"])):
        net.train()
        order = np.fromiter(iter(sampler), dtype=np.int64, count=n) if sampler is not None else rng.permutation(n)
        running = 0.0
        for s in range(steps):
            idx = order[s * args.batch_size : (s + 1) * args.batch_size]
            flip = rng.random() < 0.5
            xs, idx = batch(data["train_flip" if flip else "train"], idx)
            loss = bce_loss(net(*xs), data["train_labels"][idx], pos)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            sched.step()
            running += loss.item()
        val = validation_metrics(
            predict(net, data["val"], len(data["val_records"])), data["val_records"], data["val_labels_np"]
        )
        row = {
            "epoch": epoch,
            "loss": running / steps,
            "seconds": time.perf_counter() - start,
            **{k: val[k] for k in ("mA", "mA_peta", "mA_market1501", "f1_peta", "f1_market1501")},
        }
        history.append(row)
        print(
            f"  {run['spec']} epoch {epoch + 1}/{run['epochs']}: loss {row['loss']:.4f} mA peta "
            f"{row['mA_peta']:.4f} market {row['mA_market1501']:.4f} ({row['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        if best is None or row["mA"] > best["mA"]:
            best = row
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if args.save_dir:
        from safetensors.torch import save_file

        Path(args.save_dir).mkdir(parents=True, exist_ok=True)
        save_file(best_state, str(Path(args.save_dir) / f"{run['spec'].replace(':', '_')}.safetensors"))
    return {
        **run,
        "best": best,
        "history": history,
        "train_seconds": time.perf_counter() - start,
        "flops_per_image": prof["flops_per_image"],
        "parameters": prof["parameters"],
    }


def load_data(args) -> dict:
    ds = create_dataset("unified", args.root)
    train_records, val_records = ds.split("train"), ds.split("val")
    trunk = load_trunk(args.trunk, args.arch, tuple(args.img_size))
    model = create_model(args.model, num_attrs=len(ds.attributes), img_size=tuple(args.img_size))
    pp = model.cfg.preprocessing
    root = cache_dir(args.trunk, args.arch, tuple(args.img_size), train_records + val_records)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = {
        "train": extract(trunk, train_records, pp, root / "train", False),
        "train_flip": extract(trunk, train_records, pp, root / "train", True),
        "val": extract(trunk, val_records, pp, root / "val", False),
    }
    data["cache_seconds"] = time.perf_counter() - t0
    data["cache"] = str(root)
    labels = np.stack([r.labels for r in train_records]).astype(np.float32)
    data.update(
        train_records=train_records,
        val_records=val_records,
        train_labels=torch.from_numpy(labels),
        val_labels_np=np.stack([r.labels for r in val_records]).astype(np.uint8),
        pos_ratio=torch.from_numpy(ds.positive_ratio("train").astype(np.float32)),
        num_attrs=len(ds.attributes),
    )
    return data


def markdown(result: dict) -> str:
    lite = next((r for r in result["runs"] if r["variant"] == "lite0"), None)
    lines = [
        f"# Table 5 on real photos: trunk `{result['trunk']}` frozen, {result['img_size'][0]}x{result['img_size'][1]}",
        "",
        f"`{result['command']}`",
        "",
        "Branches trained on cached trunk maps (see the script's docstring); epoch selected on the mean val mA.",
        "",
        "| run | PETA val mA | PETA val F1 | Market val mA | Market val F1 | best epoch | GFLOPs/img | x lite0 "
        "| train s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["runs"]:
        b = r["best"]
        ratio = r["flops_per_image"] / lite["flops_per_image"] if lite else float("nan")
        lines.append(
            f"| {r['spec']} | {b['mA_peta']:.4f} | {b['f1_peta']:.4f} | {b['mA_market1501']:.4f} | "
            f"{b['f1_market1501']:.4f} | {b['epoch'] + 1}/{len(r['history'])} of {r['epochs']} | "
            f"{r['flops_per_image'] / 1e9:.3f} | "
            f"{ratio:.2f} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def assemble(args) -> None:
    """One run's saved branches on its trunk: a whole ``clear-lite0`` checkpoint that the trainer's stage 2,
    ``clear-sdk eval`` and ``clear-sdk export`` read like any other (its val metrics recomputed end to end
    on the images, so the cache's float16 maps are checked against the real model)."""
    from clear_sdk.training.models import load_checkpoint, save_checkpoint
    from clear_sdk.training.trainer import predict_probs

    if args.trunk == "imagenet":
        raise SystemExit("--assemble needs --trunk CHECKPOINT: the trunk the branches were trained on")
    run = parse_run(args.assemble, args)
    ds = create_dataset("unified", args.root)
    base, meta = load_checkpoint(args.trunk)
    kw = dict(
        variant=run["variant"],
        head=run["head"],
        pooled_trunk=run["pooled"],
        num_attrs=len(ds.attributes),
        img_size=tuple(args.img_size),
        attribute_names=list(ds.attributes),
    )
    model = create_model(args.model, **kw)
    from safetensors.torch import load_file

    branches = load_file(str(Path(args.save_dir) / f"{args.assemble.replace(':', '_')}.safetensors"))
    state = {k[len("model.") :]: v for k, v in branches.items()}
    state.update({k: v for k, v in base.state_dict().items() if k.startswith("par.trunk.")})
    model.load_state_dict(state, strict=True)
    val_records = ds.split("val")
    probs, _ = predict_probs(
        model, ImageDataset(val_records, model.cfg.preprocessing, False, cache=False), torch.device("cpu")
    )
    val = validation_metrics(probs, val_records, np.stack([r.labels for r in val_records]).astype(np.uint8))
    training = dict(
        meta["training"],
        model=args.model,
        variant=run["variant"],
        model_kwargs={"head": run["head"], "pooled_trunk": run["pooled"]},
    )
    out = Path(args.assembled)
    save_checkpoint(
        model,
        out,
        {
            "stage": "recognition",
            "epoch": 0,
            "val": val,
            "training": training,
            "dataset": meta["dataset"],
            "assembled": {
                "trunk": args.trunk,
                "branches": args.assemble,
                "by": "python benchmarks/table5.py " + " ".join(sys.argv[1:]),
            },
        },
    )
    print(json.dumps({k: round(val[k], 4) for k in ("mA", "mA_peta", "mA_market1501", "f1_peta", "f1_market1501")}))
    if args.stage2_features:
        stage2_features(model, ds, args, out)


@torch.no_grad()
def stage2_features(model, ds, args, checkpoint: Path) -> None:
    """Stage 2's f_par features of the train and val images, from the cached maps, written where the
    trainer's stage 2 looks for them (its feature cache beside the checkpoint): stage 2 then skips the
    trunk. They come from the float16 maps, as the branches were trained."""
    from clear_sdk.training.trainer import _feature_cache

    model.eval()
    records = {split: ds.split(split) for split in ("train", "val")}
    root = cache_dir(args.trunk, args.arch, tuple(args.img_size), records["train"] + records["val"])
    for split, recs in records.items():
        cache = {k: np.load(root / split / f"{k}.npy") for k in KEYS}
        feats = []
        for i in range(0, len(recs), 256):
            xs, _ = batch(cache, np.arange(i, min(i + 256, len(recs))))
            feats.append(model.par.forward_maps(*xs[:2], xs[2] if model.cfg.pooled_trunk else None).numpy())
        path = _feature_cache(checkpoint, recs, split)
        np.save(path.with_name(path.name + ".tmp.npy"), np.concatenate(feats))
        path.with_name(path.name + ".tmp.npy").replace(path)
        print(f"stage-2 features of {split}: {path}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="../shared/data")
    ap.add_argument("--trunk", default="imagenet", help="'imagenet' or a lite* checkpoint (.safetensors)")
    ap.add_argument("--arch", default="tf_efficientnet_lite0")
    ap.add_argument("--model", default="clear-lite0")
    ap.add_argument("--img-size", type=int, nargs=2, default=[192, 96])
    ap.add_argument("--runs", nargs="+", default=["vit", "swin", "swin+casa", "concat", "cross", "lite0"])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=float, default=0.3, help="warm-up in epochs")
    ap.add_argument(
        "--stop-after", type=int, default=None, help="train only this many epochs of the --epochs schedule (a budget)"
    )
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-dir", default=None)
    ap.add_argument("--results", help="output stem: writes <results>.json and .md")
    ap.add_argument("--assemble", metavar="RUN", help="build a whole checkpoint from RUN's branches in --save-dir")
    ap.add_argument("--assembled", metavar="PATH", help="where --assemble writes it (.safetensors)")
    ap.add_argument(
        "--stage2-features", action="store_true", help="with --assemble: stage 2's features from the cached maps"
    )
    args = ap.parse_args()
    if args.assemble:
        return assemble(args)
    if not args.results:
        ap.error("--results is required (or --assemble RUN --assembled PATH)")
    runs = [parse_run(s, args) for s in args.runs]
    data = load_data(args)
    print(f"cache ready in {data['cache_seconds']:.0f} s: {data['cache']}", file=sys.stderr, flush=True)
    out = Path(args.results)
    done = json.loads(out.with_suffix(".json").read_text())["runs"] if out.with_suffix(".json").is_file() else []
    result = {
        "command": "python benchmarks/table5.py " + " ".join(sys.argv[1:]),
        "trunk": args.trunk,
        "img_size": args.img_size,
        "train_images": len(data["train_records"]),
        "val_images": {s: sum(r.source == s for r in data["val_records"]) for s in ("peta", "market1501")},
        "cache_seconds": data["cache_seconds"],
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "runs": [r for r in done if r["spec"] not in {x["spec"] for x in runs}],
    }
    for run in runs:
        result["runs"].append(train_run(run, args, data))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1))
        out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
