"""Pictures a person can check: the retrieval grid (the paper's Figure 5) and per-attribute accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from clear_sdk.preprocess import load_image

CELL = (192, 96)  # (H, W) of one crop in the grid


def _cell(image: Any, label: str, ok: bool | None) -> np.ndarray:
    h, w = CELL
    try:
        rgb = load_image(image, color="bgr")
        cell = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (w, h), interpolation=cv2.INTER_AREA)
    except Exception as e:  # noqa: BLE001 - a missing crop is drawn as a grey cell, never fails the grid
        cell = np.full((h, w, 3), 90, np.uint8)
        cv2.putText(cell, type(e).__name__[:12], (4, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
    if ok is not None:
        cv2.rectangle(cell, (0, 0), (w - 1, h - 1), (40, 180, 40) if ok else (40, 40, 220), 3)
    cv2.rectangle(cell, (0, h - 16), (w, h), (0, 0, 0), -1)
    cv2.putText(cell, label, (3, h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return cell


def retrieval_grid(
    rows: Sequence[tuple[str, Sequence[tuple[Any, float]]]],
    path: str | Path,
    correct: Sequence[Sequence[bool]] | None = None,
) -> Path:
    """One row per query: its text, then the top-k crops with their scores (green/red frames if known).

    ``rows`` is ``[(query_text, [(image, score), ...]), ...]``; images are anything ``load_image`` takes.
    """
    h, w = CELL
    k = max((len(hits) for _, hits in rows), default=0)
    text_w = 260
    canvas = []
    for qi, (text, hits) in enumerate(rows):
        row = np.full((h, text_w + k * (w + 4), 3), 255, np.uint8)
        words, line, y = text.split(), "", 22
        for word in words:  # wrap the query text
            if len(line) + len(word) > 30:
                cv2.putText(row, line, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
                line, y = "", y + 20
            line = f"{line} {word}".strip()
        cv2.putText(row, line, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for j, (image, score) in enumerate(hits):
            ok = correct[qi][j] if correct is not None else None
            x = text_w + j * (w + 4)
            row[:, x : x + w] = _cell(image, f"#{j + 1} {score:.3f}", ok)
        canvas.append(row)
        canvas.append(np.full((6, row.shape[1], 3), 255, np.uint8))
    if not canvas:
        raise ValueError("retrieval_grid needs at least one query row")
    width = max(r.shape[1] for r in canvas)
    img = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in canvas])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path


def attribute_accuracy_plot(
    names: Sequence[str], values: Sequence[float], path: str | Path, title: str = "per-attribute mA"
) -> Path:
    """Horizontal bar chart of one number per attribute (matplotlib, from the [train] extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.28 * len(names) + 1.2))
    order = np.argsort(values)
    ax.barh([names[i] for i in order], [values[i] for i in order], color="#3b7dd8")
    ax.set_xlim(0.0, 1.0)
    ax.axvline(float(np.mean(values)), color="k", linestyle="--", linewidth=1, label=f"mean {np.mean(values):.3f}")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
