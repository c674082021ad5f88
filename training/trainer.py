"""Two-stage CLEAR training (Sec. 3.2-3.3) and evaluation.

Stage 1 trains f_par for recognition (BCE / weighted BCE). Stage 2 freezes f_par and trains
the retrieval adapters with the margin loss against hard (binary) and soft (pseudo-description
through a frozen language model) queries. Validation runs every epoch on the val split and
the best checkpoint is chosen on val, never on test.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, DistributedSampler

from clear_sdk.metrics import UNKNOWN, attribute_metrics, retrieval_metrics, retrieval_queries
from clear_sdk.paths import RunFiles, resolve_checkpoint
from clear_sdk.query import DEFAULT_QUERY_FORM, hard_input
from clear_sdk.schema import UNIFIED, load_view
from clear_sdk.views import covered, from_unified, to_unified

from .config import TrainConfig
from .data import create_dataset
from .datasets_torch import ImageDataset
from .losses import bce_loss, collapsed_margin_loss, margin_loss
from .models import CLEAR, create_model, load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)


# -- small utilities -------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if np.isscalar(v)}


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


class _Dist:
    """torchrun (DistributedDataParallel) when launched that way; a no-op otherwise."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda") and self.world > 1:
            torch.cuda.set_device(self.local_rank)
            device = f"cuda:{self.local_rank}"
        self.device = torch.device(device)

    @property
    def main(self) -> bool:
        return self.rank == 0


@torch.no_grad()
def predict_probs(
    model: CLEAR, ds: ImageDataset, device: torch.device, batch_size: int = 64, features: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sigmoid probabilities [N, A] (and pre-logit features [N, F] when asked) in record order."""
    model.eval()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    probs, feats = [], []
    for x, _, _ in loader:
        f = model.forward_features(x.to(device))
        probs.append(torch.sigmoid(model.forward_head(f)).cpu())
        if features:
            feats.append(f.cpu())
    p = torch.cat(probs).numpy() if probs else np.zeros((0, model.cfg.num_attrs), np.float32)
    return p, (torch.cat(feats).numpy() if features and feats else None)


# -- stage 1 ---------------------------------------------------------------------------------
def _param_groups(model: torch.nn.Module, weight_decay: float, lr: float, trunk_lr: float | None = None):
    """AdamW groups: no decay on norms/biases/listed params; ``trunk_lr`` for a pretrained CNN trunk."""
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        in_trunk = trunk_lr is not None and name.startswith("par.trunk.")
        groups.setdefault((p.ndim <= 1 or name in skip, in_trunk), []).append(p)
    return [
        {"params": ps, "weight_decay": 0.0 if no_decay else weight_decay, "lr": trunk_lr if in_trunk else lr}
        for (no_decay, in_trunk), ps in sorted(groups.items())
    ]


def freeze_trunk_stages(model: CLEAR, stages: int) -> list[torch.nn.Module]:
    """Freeze a pretrained trunk's stem and first ``stages`` stages (weights and BatchNorm statistics).

    The early, high-resolution stages cost most of a CNN's time on a CPU and carry generic edges and
    textures; fine-tuning practice keeps them fixed. Returns the modules to hold in eval mode.
    """
    if stages <= 0:
        return []
    trunk = getattr(model.par, "trunk", None)
    if trunk is None or not hasattr(trunk, "conv_stem"):
        raise ValueError(
            f"freeze_trunk_stages needs a model with a CNN trunk (clear-lite*, lite*), not {model.cfg.name}"
        )
    mods = [trunk.conv_stem, trunk.bn1, *list(trunk.blocks)[:stages]]
    for m in mods:
        m.requires_grad_(False)
        m.eval()
    return mods


def source_sampler(records, cfg: TrainConfig) -> torch.utils.data.Sampler | None:
    """With several sources and ``balance="equal"``, a sampler that draws each source equally often.

    Each image is drawn with probability 1 / (number of sources x its source's size), with replacement, for
    as many draws per epoch as there are images; a lone source (or ``balance="natural"``) shuffles plainly.
    """
    sources = [r.source for r in records]
    names = sorted({s for s in sources if s is not None})
    if cfg.balance != "equal" or len(names) < 2:
        return None
    counts = {n: sources.count(n) for n in names}
    weights = torch.tensor([1.0 / (len(names) * counts[s]) for s in sources], dtype=torch.double)
    return torch.utils.data.WeightedRandomSampler(
        weights, len(records), replacement=True, generator=torch.Generator().manual_seed(cfg.seed)
    )


def validation_metrics(probs: np.ndarray, records, labels: np.ndarray) -> dict[str, float]:
    """Val metrics; with several sources, each source's (``mA_<source>``, ``f1_<source>``) and their means.

    With several sources ``mA`` and ``f1`` are the means over the sources, so that each dataset's
    validation split weighs the same in the epoch selection whatever its size.
    """
    out = _scalars(attribute_metrics(probs, labels))
    names = sorted({r.source for r in records if r.source is not None})
    if len(names) < 2:
        return out
    src = np.array([r.source for r in records])
    for n in names:
        m = _scalars(attribute_metrics(probs[src == n], labels[src == n]))
        out[f"mA_{n}"], out[f"f1_{n}"] = m["mA"], m["f1"]
    out["mA_pooled"], out["f1_pooled"] = out["mA"], out["f1"]
    out["mA"] = float(np.mean([out[f"mA_{n}"] for n in names]))
    out["f1"] = float(np.mean([out[f"f1_{n}"] for n in names]))
    return out


def _checkpoint_meta(cfg: TrainConfig, ds, stage: str, epoch: int, val: dict[str, float], **extra) -> dict:
    return {
        "stage": stage,
        "epoch": epoch,
        "val": val,
        "training": cfg.to_dict(),
        "dataset": {"name": cfg.dataset, "attributes": list(ds.attributes), "groups": dict(ds.groups)},
        **extra,
    }


@dataclasses.dataclass
class _Stage1:
    """What stage 1's epochs work on (built by :func:`_setup_recognition`)."""

    env: _Dist
    ds: Any
    model: CLEAR
    net: torch.nn.Module
    loader: DataLoader
    sampler: torch.utils.data.Sampler | None
    val_ds: ImageDataset
    pos_ratio: torch.Tensor | None
    frozen: list[torch.nn.Module]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None
    ema: Any

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model


def _setup_recognition(cfg: TrainConfig) -> _Stage1:
    """The dataset, model, loaders, optimiser, schedules and EMA of stage 1."""
    env = _Dist(cfg.device)
    seed_everything(cfg.seed + env.rank)
    ds = create_dataset(cfg.dataset, cfg.root, **cfg.dataset_kwargs)
    model = create_model(
        cfg.model,
        variant=cfg.variant,
        img_size=cfg.img_size,
        num_attrs=len(ds.attributes),
        attribute_names=list(ds.attributes),
        pretrained=cfg.pretrained,
        **cfg.model_kwargs,
    ).to(env.device)
    pp = model.cfg.preprocessing
    train_ds = ImageDataset(ds.split("train"), pp, train=True, pad=cfg.pad, flip=cfg.flip, cache=cfg.cache_images)
    val_ds = ImageDataset(ds.split("val"), pp, train=False, cache=cfg.cache_images)
    sampler = DistributedSampler(train_ds, seed=cfg.seed) if env.world > 1 else source_sampler(ds.split("train"), cfg)
    loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(train_ds) > cfg.batch_size,
        num_workers=cfg.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    pos_ratio = (
        torch.from_numpy(ds.positive_ratio("train")).float().to(env.device)
        if cfg.loss in ("weighted_bce", "balanced_bce")
        else None
    )
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    frozen = freeze_trunk_stages(model, cfg.freeze_trunk_stages)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = opt_cls(_param_groups(model, cfg.weight_decay, cfg.lr, cfg.trunk_lr), lr=cfg.lr)
    steps_per_epoch = max(len(loader), 1)
    total, warm = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / max(warm, 1)
        if cfg.scheduler == "plateau":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=3)
        if cfg.scheduler == "plateau"
        else None
    )
    ema = None
    if cfg.ema > 0:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema)
    net = torch.nn.parallel.DistributedDataParallel(model) if env.world > 1 else model
    return _Stage1(env, ds, model, net, loader, sampler, val_ds, pos_ratio, frozen, optimizer, scheduler, plateau, ema)


def _resume_recognition(cfg: TrainConfig, s: _Stage1, files: RunFiles) -> tuple[int, dict[str, float]]:
    """(first epoch, best val so far): from the last epoch's state with ``cfg.resume``, else (0, none)."""
    if not (cfg.resume and files.par_state.is_file() and files.par_last.is_file()):
        return 0, {"mA": -1.0}
    last, _meta = load_checkpoint(files.par_last)
    s.model.load_state_dict(last.state_dict())
    state = torch.load(files.par_state, map_location="cpu", weights_only=True)
    s.optimizer.load_state_dict(state["optimizer"])
    s.scheduler.load_state_dict(state["scheduler"])
    if s.ema is not None and "ema" in state:
        s.ema.module.load_state_dict(state["ema"])
    start_epoch = int(state["epoch"]) + 1
    logger.info("resumed from %s at epoch %d", files.par_last, start_epoch)
    return start_epoch, {"mA": float(state.get("best_mA", -1.0))}


def _recognition_epoch(
    cfg: TrainConfig, s: _Stage1, epoch: int, tick, deadline: float | None
) -> tuple[float, int, bool]:
    """One pass over the training images: (mean loss, images seen, out of time). ``tick(info)`` per step."""
    if isinstance(s.sampler, DistributedSampler):
        s.sampler.set_epoch(epoch)
    s.net.train()
    for m in s.frozen:
        m.eval()
    running, seen, steps = 0.0, 0, 0
    for x, y, _ in s.loader:
        x, y = x.to(s.env.device, non_blocking=True), y.to(s.env.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = bce_loss(s.net(x), y, s.pos_ratio, balanced=cfg.loss == "balanced_bce")
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.clip_grad)
        s.optimizer.step()
        s.scheduler.step()
        if s.ema is not None:
            s.ema.update(s.model)
        seen += x.shape[0]
        running += loss.item()
        steps += 1
        if deadline is not None and time.perf_counter() > deadline:
            return running / steps, seen, True
        tick(f"epoch {epoch + 1}/{cfg.epochs} loss {running / steps:.4f}")
    return running / max(steps, 1), seen, False


def _keep_recognition(
    cfg: TrainConfig, s: _Stage1, files: RunFiles, epoch: int, val: dict[str, float], best: dict[str, float]
) -> dict[str, float]:
    """Save the epoch (last, and best when its val mA is the best so far) and the state to resume from."""
    meta = _checkpoint_meta(cfg, s.ds, "par", epoch, val)
    save_checkpoint(s.eval_model, files.par_last, extra=meta)
    state = {"optimizer": s.optimizer.state_dict(), "scheduler": s.scheduler.state_dict(), "epoch": epoch}
    if val["mA"] > best["mA"]:
        best = {**val, "epoch": epoch}
        save_checkpoint(s.eval_model, files.par_best, extra=meta)
    state["best_mA"] = best["mA"]
    if s.ema is not None:
        state["ema"] = s.ema.module.state_dict()
    torch.save(state, files.par_state)
    return best


def train_recognition(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Stage 1: f_par with (weighted) BCE; returns the best val metrics and checkpoint path."""
    files = RunFiles(Path(cfg.out))
    files.root.mkdir(parents=True, exist_ok=True)
    s = _setup_recognition(cfg)
    start_epoch, best = _resume_recognition(cfg, s, files)
    history = []
    t0 = time.perf_counter()
    deadline = t0 + cfg.time_budget_s if cfg.time_budget_s else None
    seen = 0
    with _progress(progress and s.env.main) as bar:
        steps = max(len(s.loader), 1)
        task = bar.add_task("stage 1 (recognition)", total=(cfg.epochs - start_epoch) * steps, info="")
        for epoch in range(start_epoch, cfg.epochs):
            loss, n, out_of_time = _recognition_epoch(
                cfg, s, epoch, lambda info: bar.update(task, advance=1, info=info), deadline
            )
            seen += n
            if s.env.main:
                probs, _ = predict_probs(s.eval_model, s.val_ds, s.env.device)
                val = validation_metrics(probs, s.ds.split("val"), s.ds.labels("val"))
                if s.plateau is not None and epoch + 1 >= cfg.warmup_epochs:
                    s.plateau.step(val["mA"])
                history.append({"epoch": epoch, "loss": loss, "images_seen": seen, **val})
                bar.update(task, info=f"epoch {epoch + 1}/{cfg.epochs} val mA {val['mA']:.4f} F1 {val['f1']:.4f}")
                best = _keep_recognition(cfg, s, files, epoch, val, best)
            if out_of_time:
                break
    elapsed = time.perf_counter() - t0
    if s.env.main:
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(files.par_best.with_suffix(suffix), files.best.with_suffix(suffix))
        files.history("par").write_text(json.dumps(history, indent=2))
    return {
        "best_val": best,
        "checkpoint": str(files.par_best),
        "parameters": sum(p.numel() for p in s.model.parameters()),
        "trainable_parameters": sum(p.numel() for p in s.model.parameters() if p.requires_grad),
        "seconds": elapsed,
        "train_images_per_s": seen / elapsed if elapsed else 0.0,
    }


# -- stage 2 ---------------------------------------------------------------------------------
#: a branch whose embeddings' mean pairwise cosine passes this has collapsed (fresh adapters: 0.67-0.83)
COLLAPSE_COSINE = 0.95
#: ... or whose loss stays above this fraction of the fully collapsed value ln(1 + (C-1) e^{s(1-cos m)})
COLLAPSE_LOSS_FRACTION = 0.9


class SoftQueries:
    """Pseudo-descriptions (Eq. 7) through the frozen language model, cached per attribute combination.

    ``form="words"`` (Table 6's W) embeds the positive attributes' words alone ("man, backpack, red")
    instead of the templated sentence.
    """

    def __init__(
        self,
        encoder: str | dict[str, Any],
        attribute_names: list[str],
        template: dict[str, Any] | None = None,
        form: str = DEFAULT_QUERY_FORM,
    ) -> None:
        """``encoder``: "minilm", a local Hugging Face model directory, or a saved encoder config."""
        from clear_sdk.description import DescriptionTemplate, template_for

        from .text_encoder import TextEncoder

        self.names = list(attribute_names)
        self.form = form
        self.template = DescriptionTemplate.from_dict(template) if template else template_for(self.names)
        if isinstance(encoder, dict):
            self.encoder = TextEncoder.from_config(encoder)
        else:
            self.encoder = TextEncoder.from_pretrained(encoder)
        self._cache: dict[bytes, np.ndarray] = {}

    @property
    def soft_dim(self) -> int:
        return self.encoder.soft_dim

    def sentences(self, combos: np.ndarray) -> list[str]:
        from clear_sdk.description import describe

        if self.form == "words":
            return [self.template.words(c, self.names) for c in combos]
        return [describe(c, self.names, self.template) for c in combos]

    def __call__(self, combos: np.ndarray) -> torch.Tensor:
        combos = np.asarray(combos, dtype=np.uint8)
        todo = [c for c in combos if c.tobytes() not in self._cache]
        if todo:
            uniq = np.unique(np.stack(todo), axis=0)
            emb = self.encoder.encode_flat(self.sentences(uniq)).float().cpu().numpy()
            for c, e in zip(uniq, emb):
                self._cache[c.tobytes()] = e
        return torch.from_numpy(np.stack([self._cache[c.tobytes()] for c in combos]))

    def describe_meta(self) -> dict[str, Any]:
        return {"text_encoder": self.encoder.config.to_dict(), "description_template": self.template.to_dict()}


def mean_pairwise_cosine(x: torch.Tensor) -> float:
    """Mean of cos(x_i, x_j) over all pairs i != j, in O(N d): (|sum of unit rows|^2 - N) / (N (N - 1))."""
    n = x.shape[0]
    if n < 2:
        return float("nan")
    u = torch.nn.functional.normalize(x.double(), dim=-1)
    total = u.sum(0)
    return float((total @ total - n) / (n * (n - 1)))


def hard_classes(classes: np.ndarray, encoding: str) -> torch.Tensor:
    """f_attr's input for label vectors (UNKNOWN entries: not annotated), in the model's query encoding."""
    if encoding == "binary" and (classes == UNKNOWN).any():
        raise ValueError(
            "the labels leave some attributes unannotated (a multi-dataset set), which a binary hard query cannot "
            "say: train stage 2 with --set query_encoding=signed"
        )
    return torch.from_numpy(hard_input(classes == 1, classes != UNKNOWN, encoding))


def partial_proxies(hard: torch.Tensor, prob: float, rng: np.random.Generator) -> torch.Tensor:
    """Signed class proxies of which a fraction ``prob`` keep only 1-4 of their known attributes (others 0).

    Random masking of the query's attributes (ours, beyond the paper): one set of adapters then serves the
    whole attribute vector and the partial queries users type ("female, backpack").
    """
    if prob <= 0:
        return hard
    known = (hard != 0).cpu().numpy()
    out = hard.clone()
    for c in np.flatnonzero(rng.random(len(known)) < prob):
        idx = np.flatnonzero(known[c])
        if len(idx) == 0:
            continue
        keep = rng.choice(idx, size=min(len(idx), int(rng.integers(1, 5))), replace=False)
        drop = np.setdiff1d(idx, keep)
        out[c, torch.from_numpy(drop)] = 0.0
    return out


def sample_partial_queries(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One signed partial query per label row: 1-4 of its annotated attributes (+1 / -1), 0 elsewhere."""
    out = np.zeros(labels.shape, np.float32)
    for i, row in enumerate(labels):
        known = np.flatnonzero(row != UNKNOWN)
        if len(known):
            keep = rng.choice(known, size=min(len(known), int(rng.integers(1, 5))), replace=False)
            out[i, keep] = np.where(row[keep] == 1, 1.0, -1.0)
    return out


def satisfies(queries: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """bool [Q, N]: label row n meets signed query q (every asked attribute annotated with the asked value)."""
    signed = hard_input(labels == 1, labels != UNKNOWN, "signed")  # 0 where not annotated: never meets an ask
    asked = queries[:, None, :] != 0
    return (~asked | (signed[None, :, :] == queries[:, None, :])).all(-1)


def partial_query_loss(
    queries: torch.Tensor, images: torch.Tensor, hits: torch.Tensor, scale: float = 30.0
) -> torch.Tensor:
    """Multi-positive softmax loss of partial queries against a batch (ours, beyond the paper).

    ``queries`` [Q, d] are E^q of partial queries, ``images`` [B, d] the batch's E^v, ``hits`` [Q, B] bool: image
    b satisfies query q. Per query, -log of the softmax mass (over the batch, cosines x ``scale``) on its hits
    (SupCon's "out" form with one anchor). Unlike masking the class proxies of Eq. 8, a partial query that several
    classes share is never a negative for their images.
    """
    logits = scale * torch.nn.functional.normalize(queries, dim=-1) @ torch.nn.functional.normalize(images, dim=-1).t()
    log_all = torch.logsumexp(logits, dim=1)
    log_pos = torch.logsumexp(logits.masked_fill(~hits, float("-inf")), dim=1)
    return (log_all - log_pos).mean()


def _query_inputs(
    model: CLEAR, queries: np.ndarray, soft: SoftQueries | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    hard = hard_classes(queries, model.retrieval.cfg.query_encoding)
    return hard, (soft(queries == 1) if soft is not None and model.retrieval.cfg.uses_text else None)


def retrieval_eval(model: CLEAR, feats: np.ndarray, labels: np.ndarray, soft: SoftQueries | None) -> dict[str, float]:
    """Retrieval metrics of DESIGN §4 (queries = the unique attribute vectors, gallery = the images), the
    same per half of the HA+SP embedding, and the embeddings' spread (mean pairwise cosine)."""
    model.eval()
    heads = model.retrieval
    with torch.no_grad():
        queries = retrieval_queries(labels)
        q = model.encode_query(*_query_inputs(model, queries, soft))
        g = model.image_embedding(torch.from_numpy(feats))
        out = _scalars(retrieval_metrics((q @ g.t()).numpy(), queries, labels))
        if heads.cfg.halves:
            (qh, qs), (gh, gs) = q.chunk(2, dim=-1), g.chunk(2, dim=-1)
            for tag, qq, gg in (("hard", qh, gh), ("soft", qs, gs)):
                m = retrieval_metrics((qq @ gg.t()).numpy(), queries, labels)
                out[f"{tag}_R-1"], out[f"{tag}_mAP"] = float(m["R-1"]), float(m["mAP"])
                out[f"cos_image_{tag}"] = mean_pairwise_cosine(gg)
                out[f"cos_query_{tag}"] = mean_pairwise_cosine(qq)
        else:
            out["cos_image"] = mean_pairwise_cosine(g)
            out["cos_query"] = mean_pairwise_cosine(q)
    cosines = [v for k, v in out.items() if k.startswith("cos_") and math.isfinite(v)]
    out["max_mean_cosine"] = max(cosines) if cosines else float("nan")
    return out


def collapse_report(val: dict[str, float], losses: dict[str, float], collapsed_levels: dict[str, float]) -> dict:
    """Which branches look collapsed: embeddings one direction, or a loss still near its collapsed value."""
    reasons = []
    if val.get("max_mean_cosine", 0.0) > COLLAPSE_COSINE:
        reasons.append(f"mean pairwise cosine {val['max_mean_cosine']:.3f} > {COLLAPSE_COSINE}")
    for branch, loss in losses.items():
        level = collapsed_levels.get(branch)
        if level and loss >= COLLAPSE_LOSS_FRACTION * level:
            reasons.append(f"L_{branch} {loss:.3f} >= {COLLAPSE_LOSS_FRACTION} x collapsed {level:.3f}")
    return {"collapsed": int(bool(reasons)), "reasons": reasons}


#: HA+SP: a half whose val mAP is below this fraction of the other's is reported as trailing
HALF_TRAILS_FRACTION = 0.5


def trailing_half_hint(val: dict[str, float]) -> str | None:
    """For HA+SP, a hint when one half of E^v retrieves far worse than the other (else None).

    Measured on PETA with clear-lite0 (benchmarks/README.md, Table 6): the shared f_vis let the soft
    branch shape the features and the hard half stayed near its collapsed loss (half mAP 0.067 against
    0.257), so HA+SP (0.097) fell below either half. Equal weights or one f_vis per half fixed it
    (0.261, 0.260). It is not a collapse (the embeddings spread), so it does not flag the epoch.
    """
    hard, soft = val.get("hard_mAP"), val.get("soft_mAP")
    if hard is None or soft is None:
        return None
    for weak, strong, name in ((hard, soft, "hard"), (soft, hard, "soft")):
        if strong > 0 and weak < HALF_TRAILS_FRACTION * strong:
            return (
                f"the {name} half of E^v trails (val mAP {weak:.3f} against {strong:.3f}), which drags HA+SP "
                "below either half: retrain with --set hard_weight=0.5 soft_weight=0.5, or "
                "separate_visual_adapters=true"
            )
    return None


def _features(model: CLEAR, records, pp, device: torch.device, cache: Path | None) -> np.ndarray:
    """f_par features of ``records`` (no augmentation), cached on disk beside the stage-1 checkpoint.

    The cache file is keyed by the checkpoint's sha256 and the record list, so every stage-2 run on
    the same f_par (Table 6's query forms, seeds) computes the features once.
    """
    if cache is not None and cache.is_file():
        return np.load(cache)
    _, feats = predict_probs(model, ImageDataset(records, pp, False, cache=False), device, features=True)
    if cache is not None:
        tmp = cache.with_name(cache.name + ".tmp.npy")
        np.save(tmp, feats)
        os.replace(tmp, cache)
    return feats


def _feature_cache(checkpoint: Path, records, split: str) -> Path:
    import hashlib

    h = hashlib.sha256()
    with open(checkpoint, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update("\n".join(r.path for r in records).encode("utf-8", "surrogateescape"))
    return checkpoint.parent / f"features-{split}-{h.hexdigest()[:16]}.npy"


@dataclasses.dataclass
class _Stage2:
    """What stage 2's epochs work on (built by :func:`_setup_retrieval`): f_par's features, the class
    proxies' inputs, the adapters and their optimiser."""

    model: CLEAR
    meta: dict[str, Any]
    ds: Any
    feats: dict[str, np.ndarray]
    soft: SoftQueries | None
    classes: np.ndarray
    targets: torch.Tensor
    class_hard: torch.Tensor
    class_soft: torch.Tensor | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    steps: int
    rng: np.random.Generator
    device: torch.device
    train_feats: torch.Tensor  # feats["train"] on the device
    train_labels: np.ndarray
    started: float  # perf_counter before the features: "seconds" counts from here

    @property
    def heads(self) -> Any:
        return self.model.retrieval


def _setup_retrieval(cfg: TrainConfig, checkpoint: Path) -> _Stage2:
    """Frozen f_par and its cached features, the classes as proxies, fresh adapters, Adam with a warm-up."""
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    model, meta = load_checkpoint(checkpoint, map_location=device)
    ds = create_dataset(cfg.dataset, cfg.root, **cfg.dataset_kwargs)
    if list(ds.attributes) != list(model.cfg.attribute_names or []):
        raise ValueError(f"{checkpoint} was trained on other attributes than {cfg.dataset}'s")
    for p in model.par.parameters():
        p.requires_grad_(False)
    pp = model.cfg.preprocessing
    started = time.perf_counter()
    feats = {
        split: _features(model, ds.split(split), pp, device, _feature_cache(checkpoint, ds.split(split), split))
        for split in ("train", "val")
    }
    rcfg = cfg.retrieval
    soft = SoftQueries(cfg.text_encoder, list(ds.attributes), form=rcfg.query_form) if rcfg.uses_text else None
    classes, targets = np.unique(ds.labels("train"), axis=0, return_inverse=True)
    class_hard = hard_classes(classes, rcfg.query_encoding).to(device)
    class_soft = soft(classes == 1).to(device) if soft is not None else None
    model.add_retrieval(dataclasses.replace(rcfg, soft_dim=soft.soft_dim if soft is not None else 0))
    model.to(device)
    model.retrieval.set_statistics(torch.from_numpy(feats["train"]).to(device), class_hard, class_soft)
    optimizer = torch.optim.Adam(model.retrieval.parameters(), lr=cfg.retrieval_lr)
    steps = max(1, math.ceil(len(feats["train"]) / cfg.retrieval_batch_size))
    total_steps = cfg.retrieval_epochs * steps
    warm = min(steps, total_steps // 10)  # a short warm-up: Adam's first steps at full rate start the collapse

    def lr_lambda(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total_steps - warm, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    targets_t = torch.from_numpy(targets.reshape(-1)).long()
    rng = np.random.default_rng(cfg.seed)
    train_feats = torch.from_numpy(feats["train"]).to(device)
    return _Stage2(
        model, meta, ds, feats, soft, classes, targets_t, class_hard, class_soft, optimizer, scheduler, steps, rng,
        device, train_feats, ds.labels("train"), started,
    )  # fmt: skip


def _soft_classes(cfg: TrainConfig, s: _Stage2, y: torch.Tensor) -> torch.Tensor:
    """The soft branch's proxies for a batch: its own classes plus sampled others, up to max_classes_per_step."""
    n_classes = len(s.classes)
    max_soft = cfg.max_classes_per_step or n_classes
    cls = torch.unique(y)
    extra = max(0, min(max_soft, n_classes) - len(cls))
    if extra and n_classes > len(cls):  # negatives: the batch's classes plus sampled others
        others = torch.from_numpy(s.rng.choice(n_classes, size=min(extra, n_classes), replace=False))
        cls = torch.unique(torch.cat([cls, others]))
    return cls


def _partial_term(s: _Stage2, idx: torch.Tensor, v_hard: torch.Tensor, scale: float) -> torch.Tensor:
    """:func:`partial_query_loss` of the batch ``idx``: each image's own 1-4 attributes as a signed query."""
    rows = s.train_labels[idx.numpy()]
    pq = sample_partial_queries(rows, s.rng)
    hits = torch.from_numpy(satisfies(pq, rows)).to(s.device)
    return partial_query_loss(s.heads.attr(torch.from_numpy(pq).to(s.device)), v_hard, hits, scale)


def _retrieval_epoch(cfg: TrainConfig, s: _Stage2, epoch: int, tick) -> tuple[dict[str, float], dict[str, float]]:
    """One pass over the training features: (summed loss per branch and "loss", summed proxies per branch)."""
    rcfg, heads, device = cfg.retrieval, s.heads, s.device
    weights = {"hard": rcfg.hard_weight, "soft": rcfg.soft_weight} if rcfg.halves else None
    feats, bs = s.train_feats, cfg.retrieval_batch_size
    heads.train()
    perm = torch.from_numpy(s.rng.permutation(len(feats)))
    sums: dict[str, float] = {}
    sizes: dict[str, float] = {}
    for step in range(s.steps):
        idx = perm[step * bs : (step + 1) * bs]
        y = s.targets[idx]
        e_v = heads.vis(feats[idx])
        v_hard, v_soft = e_v.chunk(2, dim=-1) if rcfg.halves else (e_v, e_v)
        parts: dict[str, torch.Tensor] = {}
        if heads.f_attr is not None:  # every class is a proxy
            proxies_in = partial_proxies(s.class_hard, cfg.query_mask_prob, s.rng)
            parts["hard"] = margin_loss(v_hard, heads.attr(proxies_in), y.to(device), rcfg.scale, rcfg.margin)
            sizes["hard"] = sizes.get("hard", 0.0) + len(s.classes)
        if cfg.partial_query_weight > 0:  # each image's own 1-4 attributes as a query against the batch
            parts["partial"] = cfg.partial_query_weight * _partial_term(s, idx, v_hard, rcfg.scale)
        if heads.f_text is not None:
            cls = _soft_classes(cfg, s, y)
            remap = torch.full((len(s.classes),), -1, dtype=torch.long)
            remap[cls] = torch.arange(len(cls))
            proxies = heads.text(s.class_soft[cls.to(device)])
            parts["soft"] = margin_loss(v_soft, proxies, remap[y].to(device), rcfg.scale, rcfg.margin)
            sizes["soft"] = sizes.get("soft", 0.0) + len(cls)
        margin = {k: v for k, v in parts.items() if k != "partial"}
        loss = sum(weights[k] * v for k, v in margin.items()) if weights else next(iter(margin.values()))
        loss = loss + parts["partial"] if "partial" in parts else loss
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        s.scheduler.step()
        for k, v in (("loss", loss), *parts.items()):
            sums[k] = sums.get(k, 0.0) + float(v.item())
        info = " ".join(f"L_{k} {v / (step + 1):.3f}" for k, v in sums.items() if k != "loss")
        tick(f"epoch {epoch + 1}/{cfg.retrieval_epochs} {info}")
    return sums, sizes


class _Selection:
    """Stage 2's choice of epoch: the best val mAP among epochs that do not look collapsed, saved as it
    improves; a collapsed epoch only when every epoch collapsed (and the checkpoint says so)."""

    def __init__(self, cfg: TrainConfig, s: _Stage2) -> None:
        self.cfg, self.s = cfg, s
        self.best: dict[str, Any] = {"mAP": -1.0}
        self.fallback: dict[str, Any] | None = None
        self.extra_meta = s.soft.describe_meta() if s.soft is not None else {}

    def offer(self, epoch: int, val: dict[str, float], guard: dict[str, Any]) -> None:
        candidate = {**val, "epoch": epoch, **guard}
        if guard["collapsed"]:  # never preferred; kept only if every epoch collapsed
            if self.fallback is None or val["mAP"] > self.fallback["mAP"]:
                self.fallback = candidate
                if self.best["mAP"] < 0:
                    self._save(epoch, val, guard)
            return
        if val["mAP"] > self.best["mAP"]:
            self.best = candidate
            self._save(epoch, val, guard)

    def result(self) -> dict[str, Any]:
        best = self.best
        if best["mAP"] < 0 and self.fallback is not None:
            logger.warning("every stage-2 epoch looked collapsed; the checkpoint is flagged: lower retrieval_lr")
            best = self.fallback
        hint = trailing_half_hint(best)
        if hint:
            logger.warning("stage 2: %s", hint)
            best = {**best, "hint": hint}
        return best

    def _save(self, epoch: int, val: dict[str, float], guard: dict[str, Any]) -> None:
        s, par_val = self.s, self.s.meta.get("val", {})
        val = {**par_val, **{f"retrieval_{k}": v for k, v in val.items()}}
        meta = _checkpoint_meta(self.cfg, s.ds, "retrieval", epoch, val, collapse=guard, **self.extra_meta)
        save_checkpoint(s.model, RunFiles(Path(self.cfg.out)).best, extra=meta)


def train_retrieval(cfg: TrainConfig, checkpoint: str | Path, progress: bool = True) -> dict[str, Any]:
    """Stage 2: frozen f_par, adapters trained with 0.3 L_MA(E^v1, E^h) + 0.7 L_MA(E^v2, E^s) (HA+SP),
    or one L_MA against the single query form of ``cfg.retrieval.query_form`` (Table 6).

    f_par is frozen, so its features are computed once per image (no augmentation, cached on disk) and
    the adapters train on them. The hard branch scores every class as a proxy at every step (Eq. 8 sums
    over all other attribute embeddings; f_attr on C x A costs nothing); the soft branch samples up to
    ``max_classes_per_step`` classes besides the batch's own, since f_text reads a 24,576-d input per
    class. Per-branch losses, per-half retrieval and the embeddings' spread are logged every epoch; an
    epoch that looks collapsed (see :func:`collapse_report`) is never selected.
    """
    files = RunFiles(Path(cfg.out))
    files.root.mkdir(parents=True, exist_ok=True)
    s = _setup_retrieval(cfg, Path(checkpoint))
    rcfg, history, selection = cfg.retrieval, [], _Selection(cfg, s)
    with _progress(progress) as bar:
        task = bar.add_task("stage 2 (retrieval)", total=cfg.retrieval_epochs * s.steps, info="")
        for epoch in range(cfg.retrieval_epochs):
            sums, sizes = _retrieval_epoch(cfg, s, epoch, lambda info: bar.update(task, advance=1, info=info))
            losses = {k: v / s.steps for k, v in sums.items() if k != "loss"}
            levels = {k: collapsed_margin_loss(c / s.steps, rcfg.scale, rcfg.margin) for k, c in sizes.items()}
            val = retrieval_eval(s.model, s.feats["val"], s.ds.labels("val"), s.soft)
            guard = collapse_report(val, losses, levels)
            history.append(
                {
                    "epoch": epoch,
                    "loss": sums["loss"] / s.steps,
                    **{f"loss_{k}": v for k, v in losses.items()},
                    **{f"collapsed_loss_{k}": v for k, v in levels.items()},
                    **val,
                    **guard,
                }
            )
            if guard["collapsed"]:
                logger.warning("stage 2 epoch %d looks collapsed: %s", epoch + 1, "; ".join(guard["reasons"]))
            bar.update(
                task,
                info=f"epoch {epoch + 1}/{cfg.retrieval_epochs} val R-1 {val['R-1']:.3f} mAP {val['mAP']:.3f}"
                + (" [collapsed]" if guard["collapsed"] else ""),
            )
            selection.offer(epoch, val, guard)
    files.history("retrieval").write_text(json.dumps(history, indent=2))
    return {"best_val": selection.result(), "checkpoint": str(files.best), "seconds": time.perf_counter() - s.started}


def train(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Run the stages ``cfg.stage`` asks for; the resolved config is saved beside the checkpoints."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    files = RunFiles(out)
    files.config.write_text(json.dumps(cfg.to_dict(), indent=2))
    summary: dict[str, Any] = {"out": str(out)}
    if cfg.stage in ("par", "both"):
        summary["par"] = train_recognition(cfg, progress)
    if cfg.stage in ("retrieval", "both") and int(os.environ.get("RANK", "0")) == 0:
        ckpt = files.par_best
        if cfg.stage == "retrieval" and not ckpt.is_file():
            if not cfg.pretrained:
                raise FileNotFoundError(
                    f"--stage retrieval needs a stage-1 checkpoint: {ckpt} is absent and no --set pretrained=... given"
                )
            ckpt = Path(cfg.pretrained)
        summary["retrieval"] = train_retrieval(cfg, ckpt, progress)
    files.summary.write_text(json.dumps(summary, indent=2, default=float))
    return summary


# -- evaluation ------------------------------------------------------------------------------
def evaluate(
    checkpoint: str | Path,
    dataset: str,
    root: str | Path,
    split: str = "test",
    dataset_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    text_encoder: str | None = None,
) -> dict[str, Any]:
    """Recognition metrics and, for a checkpoint with retrieval adapters, retrieval metrics on ``split``.

    A unified-schema checkpoint evaluated on another dataset answers in that dataset's view
    (:mod:`clear_sdk.views`): recognition over the view's attributes in the dataset's own names, retrieval
    with the dataset's label vectors carried into the unified schema (so its whole-vector protocol holds).
    """
    path = resolve_checkpoint(checkpoint)
    model, meta = load_checkpoint(path, map_location=device)
    trained = meta.get("training", {})
    kwargs = dict(trained.get("dataset_kwargs") or {}) if trained.get("dataset") == dataset else {}
    kwargs.update(dataset_kwargs or {})  # the checkpoint's options (e.g. PETA colours), then the caller's
    ds = create_dataset(dataset, root, **kwargs)
    view = None
    if (meta.get("dataset") or {}).get("name") == UNIFIED and dataset != UNIFIED:
        view = covered(load_view(dataset), list(model.cfg.attribute_names), list(ds.attributes))
    elif model.cfg.attribute_names and list(ds.attributes) != list(model.cfg.attribute_names):
        raise ValueError(
            f"{path.name} predicts other attributes than {dataset} has; evaluate on the dataset it was trained for"
        )
    want_features = model.retrieval is not None
    probs, feats = predict_probs(
        model,
        ImageDataset(ds.split(split), model.cfg.preprocessing, False, cache=False),
        torch.device(device),
        batch_size,
        features=want_features,
    )
    labels = ds.labels(split)
    names, groups = list(ds.attributes), ds.groups
    retrieval_labels = labels
    if view is not None:
        names = view.names
        labels = labels[:, [list(ds.attributes).index(n) for n in names]]
        retrieval_labels = to_unified(view, names, labels)
        probs = from_unified(view, list(model.cfg.attribute_names), probs)[0]
        groups = {g: [a for a in m if a in names] for g, m in ds.groups.items() if set(m) & set(names)}
    result: dict[str, Any] = {"checkpoint": str(path), "split": split, "num_images": len(labels)}
    if view is not None:
        result["view"] = dataset
    metrics = attribute_metrics(probs, labels)
    result["recognition"] = _scalars(metrics)
    result["per_attribute_mA"] = dict(zip(names, metrics["per_attribute_mA"].tolist()))
    standard = len(type(ds).attributes)
    if 0 < standard < len(names) and names[:standard] == list(type(ds).attributes):  # PETA + colours: first 35
        result["recognition_standard"] = _scalars(attribute_metrics(probs[:, :standard], labels[:, :standard]))
        result["recognition_standard"]["num_attributes"] = standard
    per = metrics["per_attribute_mA"]
    by_group = {g: [per[names.index(a)] for a in m] for g, m in groups.items()}
    # a group none of whose attributes the split annotates (unified names on one source) has no mA
    result["mA_by_group"] = {g: float(np.nanmean(v)) for g, v in by_group.items() if np.isfinite(v).any()}
    if want_features:
        form = model.retrieval.cfg.query_form
        soft = None
        if model.retrieval.cfg.uses_text:
            encoder = text_encoder or meta.get("text_encoder") or "minilm"
            soft = SoftQueries(encoder, list(model.cfg.attribute_names), meta.get("description_template"), form=form)
        result["retrieval"] = retrieval_eval(model, feats, retrieval_labels, soft)
        cos = result["retrieval"]["max_mean_cosine"]
        result["collapse"] = {"collapsed": int(cos > COLLAPSE_COSINE), "max_mean_cosine": cos}
        if result["collapse"]["collapsed"]:
            logger.warning("retrieval embeddings collapsed (mean pairwise cosine %.3f): retrain stage 2", cos)
    return result
