"""The adapter from our records to py-motmetrics and supervision's COCO evaluator, on tiny hand-made
sequences whose metrics are computed by hand below (clear_sdk/video/evaluation.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("motmetrics")
pytest.importorskip("supervision")

from clear_sdk.video.evaluation import (  # noqa: E402
    FrameTruth,
    average_precision,
    best_recall_at_precision,
    detection_metrics,
    pr_sweep,
    tracking_metrics,
    tracking_metrics_many,
)
from clear_sdk.video.types import Detection, TrackedBox  # noqa: E402


def box(x: int, y: int = 0, w: int = 10, h: int = 20) -> tuple[int, int, int, int]:
    return (x, y, x + w, y + h)


def two_walkers() -> tuple[list[FrameTruth], list[list[TrackedBox]]]:
    """People 1 and 2 walk right 2 px a frame; 2 leaves after frame 2. Track 8 moves from person 2 to
    person 1 in frame 2 (both ID switch), track 10 is a false positive, person 1 is missed in frame 3.
    Frame 1 also holds person 3, less than half visible (ignore), and track 11 on them."""
    truths = [
        FrameTruth.of([(1, box(0), True), (2, box(50), True)]),
        FrameTruth.of([(1, box(2), True), (2, box(52), True), (3, box(100), False)]),
        FrameTruth.of([(1, box(4), True), (2, box(54), True)]),
        FrameTruth.of([(1, box(6), True)]),
    ]
    tracks = [
        [TrackedBox(7, (0, 0, 10, 18), 0.9), TrackedBox(8, box(50), 0.9)],  # IoU 0.9 and 1
        [TrackedBox(7, box(2), 0.9), TrackedBox(8, box(52), 0.9), TrackedBox(11, box(100), 0.9)],
        [TrackedBox(8, box(4), 0.9), TrackedBox(9, box(54), 0.9), TrackedBox(10, box(100, 100), 0.9)],
        [],
    ]
    return truths, tracks


def test_tracking_metrics_match_the_hand_computed_values():
    truths, tracks = two_walkers()
    m = tracking_metrics(truths, tracks)
    # 7 care boxes (2+2+2+1); 6 matched; 1 miss (person 1, frame 3); 1 FP (track 10); 2 switches (frame 2);
    # track 11 on the ignore person is neither a FP nor a match
    assert (m["num_objects"], m["num_misses"], m["num_false_positives"], m["num_switches"]) == (7, 1, 1, 2)
    assert m["mota"] == pytest.approx(1 - (1 + 1 + 2) / 7)
    assert m["precision"] == pytest.approx(6 / 7) and m["recall"] == pytest.approx(6 / 7)
    assert m["motp"] == pytest.approx((0.9 + 5 * 1.0) / 6)  # mean IoU of the matches
    # IDF1: best one-to-one person-track pairing is 1-7 (frames 0, 1) and 2-8 (frames 0, 1): IDTP 4 of
    # 7 truth and 7 track boxes (7: 2, 8: 3, 9: 1, 10: 1; 11 removed with the ignore person)
    assert m["idf1"] == pytest.approx(2 * 4 / (7 + 7))
    assert m["idp"] == pytest.approx(4 / 7) and m["idr"] == pytest.approx(4 / 7)
    assert m["num_unique_objects"] == 2
    # track 8 held person 2, then person 1
    assert m["tracks_holding_two_people"] == 1 and m["max_people_per_track"] == 2


def test_perfect_tracks_score_one():
    truths, _ = two_walkers()
    perfect = [[TrackedBox(int(i), tuple(int(v) for v in b), 1.0) for i, b, c in zip(t.ids, t.boxes, t.care) if c]
               for t in truths]  # fmt: skip
    m = tracking_metrics(truths, perfect)
    assert (m["mota"], m["idf1"], m["num_switches"], m["tracks_holding_two_people"]) == (1.0, 1.0, 0, 0)


def detections() -> tuple[list[FrameTruth], list[list[Detection]]]:
    """One frame, two people; scores 0.9 (person 1), 0.8 (nobody), 0.7 (person 2), and 0.6 on an ignore person."""
    truths = [FrameTruth.of([(1, box(0), True), (2, box(50), True), (3, box(200), False)])]
    dets = [[Detection(box(1), 0.9), Detection(box(100), 0.8), Detection(box(49), 0.7), Detection(box(200), 0.6)]]
    return truths, dets


def test_detection_precision_recall_at_a_threshold_by_hand():
    truths, dets = detections()
    at = {r["conf"]: r for r in pr_sweep(truths, dets, [0.75, 0.0])}
    assert (at[0.75]["tp"], at[0.75]["fp"], at[0.75]["misses"]) == (1, 1, 1)
    assert at[0.75]["precision"] == pytest.approx(0.5) and at[0.75]["recall"] == pytest.approx(0.5)
    assert (at[0.0]["tp"], at[0.0]["fp"], at[0.0]["gt"]) == (2, 1, 2)  # the box on the ignore person is dropped
    assert at[0.0]["precision"] == pytest.approx(2 / 3) and at[0.0]["recall"] == 1.0
    assert best_recall_at_precision(list(at.values()), 0.6)["conf"] == 0.0
    assert best_recall_at_precision(list(at.values()), 0.9) is None
    nothing = detection_metrics(truths, [[]], 0.0)
    assert (nothing["precision"], nothing["recall"], nothing["misses"]) == (0.0, 0.0, 2)


def test_average_precision_is_coco_101_point_by_hand():
    truths, dets = detections()
    # ranked: TP (P 1, R .5), FP (P .5, R .5), TP (P 2/3, R 1); interpolated precision 1 for the 51 recall
    # points 0..0.50, 2/3 for the 50 points 0.51..1.00; the ignore person's box counts for nothing
    assert average_precision(truths, dets) == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)
    # all people found first: AP 1
    assert average_precision(truths, [[Detection(box(0), 0.9), Detection(box(50), 0.8)]]) == pytest.approx(1.0)


def test_sequences_keep_their_own_ids():
    """Two cameras whose people and tracks reuse the same ids: the overall metrics are the sums, not one
    person seen in both (which would halve IDF1 and add switches)."""
    truths, tracks = two_walkers()
    one = tracking_metrics(truths, tracks)
    both = tracking_metrics_many([(truths, tracks), (truths, tracks)])
    assert (both["num_objects"], both["num_switches"], both["num_unique_objects"]) == (14, 4, 4)
    assert both["idf1"] == pytest.approx(one["idf1"]) and both["mota"] == pytest.approx(one["mota"])
    assert both["tracks_holding_two_people"] == 2 and both["num_tracks"] == 2 * one["num_tracks"]
