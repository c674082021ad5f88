"""Writing a synthetic dataset to disk: images, ``labels.csv`` and ``synthetic.json``."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .attributes import SYNTHETIC_ATTRIBUTES, SYNTHETIC_GROUPS
from .compose import _render_jpeg
from .identity import _SPLITS, SyntheticConfig, sample_identities

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
META_FILE = "synthetic.json"


def _image_name(pid: int, n: int) -> str:
    return f"images/{pid:04d}_{n:02d}.jpg"


def generate_synthetic(
    out_dir: str | Path,
    config: SyntheticConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render a synthetic dataset into ``out_dir`` and return ``out_dir``.

    Deterministic: the same config gives a byte-identical ``labels.csv`` and identical
    images (each image has its own seed derived from (seed, pid, n), so order does not
    matter). ``labels.csv`` is written last, so a half-written folder is never loadable.
    ``progress(done, total)`` is called after every image (for a CLI progress bar).
    """
    cfg = config or SyntheticConfig()
    out = Path(out_dir).expanduser()
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    identities = sample_identities(cfg)
    total = cfg.num_identities * cfg.images_per_identity
    names: set[str] = set()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "pid", "split", *SYNTHETIC_ATTRIBUTES])
    done = 0
    for ident in identities:
        for n in range(cfg.images_per_identity):
            vec = ident.image_labels(n)
            rng = np.random.default_rng([cfg.seed, 2, ident.pid, n])
            name = _image_name(ident.pid, n)
            (out / name).write_bytes(_render_jpeg(vec, ident.appearance, rng, cfg.image_size))
            names.add(name)
            writer.writerow([name, ident.pid, ident.split, *(int(x) for x in vec)])
            done += 1
            if progress is not None:
                progress(done, total)
    if (out / META_FILE).exists():  # a previous synthetic run: drop its images this config does not have
        for old in images.glob("*.jpg"):
            if f"images/{old.name}" not in names:
                old.unlink()
    meta = {
        "format": "clear-sdk-synthetic",
        "version": 1,
        "config": dataclasses.asdict(cfg),
        "attributes": SYNTHETIC_ATTRIBUTES,
        "groups": SYNTHETIC_GROUPS,
        "num_images": total,
        "identities_per_split": {s: sum(i.split == s for i in identities) for s in _SPLITS},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    tmp = out / (LABELS_FILE + ".tmp")
    tmp.write_text(buf.getvalue(), newline="")
    tmp.replace(out / LABELS_FILE)
    logger.info("wrote %d synthetic images of %d identities to %s", total, cfg.num_identities, out)
    return out
