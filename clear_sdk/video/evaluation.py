"""Detection and tracking scored as the field scores them: py-motmetrics and supervision's COCO evaluator.

Nothing here counts matches by hand. This module only turns our records into the libraries' inputs:

- tracking (MOTA, IDF1, ID switches, ...): per frame, the truth ids, the track ids and their distance
  ``1 - IoU`` (NaN under ``min_iou``, motmetrics' "cannot match") go into a ``motmetrics.MOTAccumulator``;
  ``motmetrics.metrics`` computes the CLEAR-MOT and identity metrics;
- detection precision / recall at one score threshold: the same, with every detection its own
  hypothesis id, so matching is a plain per-frame Hungarian assignment at IoU >= ``min_iou``;
- detection AP at IoU 0.5: ``supervision.metrics.MeanAveragePrecision`` (a port of pycocotools),
  class-agnostic.

A person marked ``care=False`` (less than half visible, the MOT convention for occluded people) is
"ignore": a box on them is neither a true nor a false positive, and missing them is no miss. For
motmetrics the boxes matched to ignore people are removed first (as MOTChallenge's evaluation removes
boxes on its distractor classes); the COCO evaluator gets them as ``ignore`` targets.

py-motmetrics 1.4 calls ``np.asfarray`` in its own IoU helper, which numpy 2 removed: the distances are
computed here with :func:`~clear_sdk.video.detectors.iou_matrix` instead.

Needs the [video] extra (``motmetrics``, ``supervision``); imported only where asked for.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from clear_sdk.errors import ClearSDKError
from clear_sdk.video.detectors.base import iou_matrix
from clear_sdk.video.types import Detection, TrackedBox

MIN_IOU = 0.5
TRACKING_METRICS = (
    "mota",
    "motp",
    "idf1",
    "idp",
    "idr",
    "num_switches",
    "precision",
    "recall",
    "num_false_positives",
    "num_misses",
    "num_objects",
    "num_unique_objects",
    "mostly_tracked",
    "mostly_lost",
    "num_fragmentations",
)


@dataclasses.dataclass(frozen=True)
class FrameTruth:
    """The people of one frame: ids [N], boxes [N, 4] (x1, y1, x2, y2), care [N] (False: ignore)."""

    ids: np.ndarray
    boxes: np.ndarray
    care: np.ndarray

    @classmethod
    def of(cls, people: Iterable[tuple[int, Sequence[float], bool]]) -> FrameTruth:
        """From (id, box, care) triples."""
        people = list(people)
        return cls(
            np.asarray([p[0] for p in people], np.int64).reshape(-1),
            np.asarray([p[1] for p in people], np.float64).reshape(-1, 4),
            np.asarray([p[2] for p in people], bool).reshape(-1),
        )


def require_motmetrics():
    try:
        import motmetrics
    except ImportError as e:
        raise ClearSDKError(f"tracking metrics need py-motmetrics ({e}): pip install 'clear-sdk[video]'") from e
    return motmetrics


def iou_distance(truth_boxes: np.ndarray, boxes: np.ndarray, min_iou: float = MIN_IOU) -> np.ndarray:
    """motmetrics' distance [N truth, M boxes]: ``1 - IoU``, NaN where IoU < ``min_iou`` (no match possible)."""
    iou = iou_matrix(truth_boxes, boxes)
    return np.where(iou >= min_iou, 1.0 - iou, np.nan)


def drop_ignored(truth: FrameTruth, boxes: np.ndarray, min_iou: float = MIN_IOU) -> np.ndarray:
    """Which ``boxes`` to keep: those not matched to an ignore person.

    Boxes are assigned to all people (care and ignore) by maximum total IoU at IoU >= ``min_iou``; a
    box assigned to an ignore person is dropped, with that person.
    """
    from scipy.optimize import linear_sum_assignment

    keep = np.ones(len(boxes), bool)
    if not len(boxes) or truth.care.all():
        return keep
    iou = iou_matrix(truth.boxes, boxes)
    rows, cols = linear_sum_assignment(np.where(iou >= min_iou, iou, 0.0), maximize=True)
    for r, c in zip(rows, cols):
        if iou[r, c] >= min_iou and not truth.care[r]:
            keep[c] = False
    return keep


def accumulate(
    truths: Sequence[FrameTruth], hypotheses: Sequence[tuple[np.ndarray, np.ndarray]], min_iou: float = MIN_IOU
):
    """A ``motmetrics.MOTAccumulator`` over frames: ``hypotheses[t]`` = (ids [M], boxes [M, 4]) of frame t."""
    mm = require_motmetrics()
    if len(truths) != len(hypotheses):
        raise ValueError(f"{len(truths)} frames of truth but {len(hypotheses)} of hypotheses")
    acc = mm.MOTAccumulator(auto_id=True)
    for truth, (ids, boxes) in zip(truths, hypotheses):
        ids, boxes = np.asarray(ids).reshape(-1), np.asarray(boxes, np.float64).reshape(-1, 4)
        keep = drop_ignored(truth, boxes, min_iou)
        ids, boxes = ids[keep], boxes[keep]
        care = truth.care
        acc.update(truth.ids[care], ids, iou_distance(truth.boxes[care], boxes, min_iou))
    return acc


def tracking_metrics(
    truths: Sequence[FrameTruth], tracked: Sequence[Sequence[TrackedBox]], min_iou: float = MIN_IOU
) -> dict[str, Any]:
    """MOTA, MOTP (as mean IoU), IDF1, ID switches, ... of one sequence (one camera, one tracker)."""
    return tracking_metrics_many([(truths, tracked)], min_iou)


def tracking_metrics_many(
    sequences: Sequence[tuple[Sequence[FrameTruth], Sequence[Sequence[TrackedBox]]]], min_iou: float = MIN_IOU
) -> dict[str, Any]:
    """The metrics over several sequences, each with its own ids (motmetrics' ``compute_many`` "OVERALL").

    Also how many people each track held: for each track id of a sequence, the distinct people it was
    matched to (motmetrics' MATCH and SWITCH events); ``tracks_holding_two_people`` counts the tracks
    matched to more than one person, ``num_tracks`` all track ids.
    """
    mm = require_motmetrics()
    accs, names, people, num_tracks = [], [], [], 0
    for k, (truths, tracked) in enumerate(sequences):
        hyps = [(np.asarray([b.track_id for b in f], np.int64), np.asarray([b.box for b in f], np.float64))
                for f in tracked]  # fmt: skip
        acc = accumulate(truths, hyps, min_iou)
        accs.append(acc)
        names.append(str(k))
        num_tracks += len(set(itertools.chain.from_iterable(h[0].tolist() for h in hyps)))
        events = acc.mot_events
        matched = events[events["Type"].isin(["MATCH", "SWITCH"])]
        if len(matched):
            people += [int(n) for n in matched.groupby("HId")["OId"].nunique()]
    summary = mm.metrics.create().compute_many(
        accs, metrics=list(TRACKING_METRICS), names=names, generate_overall=len(accs) > 1
    )
    row = summary.loc["OVERALL"] if len(accs) > 1 else summary.iloc[0]
    out = {k: _plain(row[k]) for k in TRACKING_METRICS}
    out["motp"] = 1.0 - out["motp"] if out["motp"] == out["motp"] else out["motp"]  # distance -> mean IoU
    out["num_tracks"] = num_tracks
    out["tracks_holding_two_people"] = sum(n > 1 for n in people)
    out["max_people_per_track"] = max(people, default=0)
    return out


def detection_metrics(
    truths: Sequence[FrameTruth],
    detections: Sequence[Sequence[Detection]],
    conf: float = 0.0,
    min_iou: float = MIN_IOU,
) -> dict[str, Any]:
    """Precision, recall, TP, FP and misses of the detections scoring >= ``conf`` (motmetrics' matching)."""
    mm = require_motmetrics()
    counter = itertools.count()
    hyps = []
    for f in detections:
        kept = [d for d in f if d.score >= conf]
        hyps.append((np.asarray([next(counter) for _ in kept], np.int64), np.asarray([d.box for d in kept])))
    acc = accumulate(truths, hyps, min_iou)
    names = ["precision", "recall", "num_detections", "num_false_positives", "num_misses", "num_objects"]
    s = mm.metrics.create().compute(acc, metrics=names, name="all")
    p, r = _plain(s["precision"].iloc[0]), _plain(s["recall"].iloc[0])
    p = 0.0 if p != p else p  # NaN when nothing was detected
    return {
        "conf": float(conf),
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r > 0 else 0.0,
        "tp": int(s["num_detections"].iloc[0]),
        "fp": int(s["num_false_positives"].iloc[0]),
        "misses": int(s["num_misses"].iloc[0]),
        "gt": int(s["num_objects"].iloc[0]),
    }


def pr_sweep(
    truths: Sequence[FrameTruth], detections: Sequence[Sequence[Detection]], confs: Iterable[float]
) -> list[dict[str, Any]]:
    return [detection_metrics(truths, detections, c) for c in confs]


def best_recall_at_precision(sweep: Sequence[dict[str, Any]], min_precision: float) -> dict[str, Any] | None:
    """The sweep row with the highest recall among those with precision >= ``min_precision`` (None: none)."""
    ok = [s for s in sweep if s["precision"] >= min_precision]
    return max(ok, key=lambda s: (s["recall"], s["precision"])) if ok else None


def average_precision(
    truths: Sequence[FrameTruth], detections: Sequence[Sequence[Detection]], iou: float = MIN_IOU
) -> float:
    """AP at IoU 0.5 (COCO's 101-point interpolation, by supervision's port of pycocotools), one class.

    Ignore people are COCO ``ignore`` targets. Only ``iou`` = 0.5 (``map50``) or 0.75 are offered.
    """
    import supervision as sv
    from supervision.metrics import MeanAveragePrecision

    preds, targets = [], []
    for truth, dets in zip(truths, detections):
        xyxy = np.asarray([d.box for d in dets], np.float32).reshape(-1, 4)
        preds.append(
            sv.Detections(
                xyxy=xyxy,
                confidence=np.asarray([d.score for d in dets], np.float32),
                class_id=np.zeros(len(dets), int),
            )
        )
        targets.append(
            sv.Detections(
                xyxy=truth.boxes.astype(np.float32),
                class_id=np.zeros(len(truth.ids), int),
                data={"ignore": (~truth.care).astype(np.int64)},
            )
        )
    result = MeanAveragePrecision().update(preds, targets).compute()
    if iou == 0.5:
        return float(result.map50)
    if iou == 0.75:
        return float(result.map75)
    raise ValueError(f"average_precision offers IoU 0.5 or 0.75, got {iou}")


def _plain(value: Any) -> float | int:
    v = value.item() if hasattr(value, "item") else value
    return int(v) if isinstance(v, (int, np.integer)) else float(v)
