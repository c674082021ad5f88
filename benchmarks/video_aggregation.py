"""Track-level attributes vs single frames, on the same crops: which aggregation, weights and crop counts help.

PETA val pedestrians (labels known; peta-lite0 never trained on them) walk through real-crop scenes;
the shipped SSDLite detector and ByteTrack follow them, as clear_sdk.video does. Every tracked box
matched (IoU 0.5) to a person is recognised, with what the pipeline knows about the crop (detector
score, crop_quality, whether it is cut by the frame edge) and what only the truth knows (visible
fraction, the person it really is).

Every estimate is scored on the *same crops*: a crop's prediction is either its own (single frame)
or its track's aggregate over the crops recognised so far / over the whole track, against that
crop's true person's labels. So track purity (a track that swaps people) counts against the
aggregate, as it would in use. mA = mean over attributes of (TPR + TNR) / 2 at the bundle's thresholds.

    python benchmarks/video_aggregation.py --bundle peta-lite0 --scenes 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import video_scenes as vs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def collect(args) -> dict:
    """Per recognised crop: probs, track, frame, detector score, quality, edge, visible, true labels."""
    from clear_sdk import Recognizer
    from clear_sdk.video.aggregate import crop_quality
    from clear_sdk.video.detectors import create_detector
    from clear_sdk.video.tracking import ByteTracker

    rec = Recognizer(args.bundle)
    names = rec.attribute_names
    rows: dict[str, list] = {k: [] for k in ("probs", "labels", "track", "frame", "score", "quality", "edge",
                                             "visible", "height", "pid")}  # fmt: skip
    for s, (frames, truth, labels, lnames) in enumerate(
        vs.scene_set("peta", args.scenes, args.first_seed, args.people, args.frames)
    ):
        cols = [lnames.index(n) for n in names]
        det, trk = create_detector("ssdlite"), ByteTracker(frame_rate=10.0)
        crops, meta = [], []
        for i, (f, tr) in enumerate(zip(frames, truth)):
            boxes = trk.update(det.detect(f))
            for d, g in vs.match(tr, [b.box for b in boxes]):
                b = boxes[d]
                x1, y1, x2, y2 = b.box
                if g is None or y2 - y1 < 32:  # the pipeline's min_box_height
                    continue
                crop = f[y1:y2, x1:x2]
                h, w = f.shape[:2]
                crops.append(crop)
                meta.append((1000 * s + b.track_id, 1000 * s + i, b.score, crop_quality(b.box, f.shape, crop),
                             x1 <= 0 or y1 <= 0 or x2 >= w or y2 >= h, tr[g]["visible"], y2 - y1,
                             1000 * s + tr[g]["pid"], labels[tr[g]["pid"], cols]))  # fmt: skip
        probs = rec.predict_proba(crops) if crops else np.zeros((0, len(names)))
        for p, m in zip(probs, meta):
            for k, v in zip(("track", "frame", "score", "quality", "edge", "visible", "height", "pid", "labels"), m):
                rows[k].append(v)
            rows["probs"].append(p)
        print(f"scene {s}: {len(crops)} crops", flush=True)
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["thresholds"] = np.asarray([rec.thresholds[n] for n in names])
    out["names"] = np.asarray(names)
    return out


def mean_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """mA over the attributes with both positives and negatives among these crops."""
    pos, neg = labels == 1, labels == 0
    keep = pos.any(0) & neg.any(0)
    tpr = (pred & pos).sum(0)[keep] / pos.sum(0)[keep]
    tnr = (~pred & neg).sum(0)[keep] / neg.sum(0)[keep]
    return float(np.mean((tpr + tnr) / 2))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def aggregate(d: dict, sel: np.ndarray, weights: np.ndarray, space: str, causal: bool) -> np.ndarray:
    """Each selected crop's track estimate: weighted mean of probabilities or logits of the track's
    selected crops (``causal``: only those up to this crop's frame, what a live index holds then)."""
    probs, track, frame = d["probs"], d["track"], d["frame"]
    x = logit(probs) if space == "logit" else probs
    out = np.empty_like(probs)
    for t in np.unique(track):
        idx = np.where(track == t)[0]
        idx = idx[np.argsort(frame[idx], kind="stable")]
        use = idx[sel[idx]]
        for j in idx:
            u = use[frame[use] <= frame[j]] if causal else use
            if not len(u):
                u = np.asarray([j])  # nothing recognised yet: the crop itself
            w = weights[u]
            m = (w[:, None] * x[u]).sum(0) / max(w.sum(), 1e-12)
            out[j] = 1 / (1 + np.exp(-m)) if space == "logit" else m
    return out


def analyse(d: dict, args) -> dict:
    thr, labels = d["thresholds"], d["labels"].astype(np.int64)
    n = len(d["probs"])
    every = (d["frame"] % args.every) == 0  # the pipeline recognises a track every 3rd frame
    # purity: the share of a track's crops that show its majority person
    purity = {}
    for t in np.unique(d["track"]):
        pids = d["pid"][d["track"] == t]
        purity[int(t)] = float(np.bincount(pids - pids.min()).max() / len(pids))
    base = every  # score on the crops the pipeline would recognise
    single = mean_accuracy(d["probs"][base] > thr, labels[base])
    res = {
        "crops": int(base.sum()),
        "tracks": int(len(np.unique(d["track"][base]))),
        "mean_crops_per_track": float(base.sum() / max(len(np.unique(d["track"][base])), 1)),
        "track_purity_mean": float(np.mean(list(purity.values()))),
        "mA_single_frame": single,
        "variants": {},
    }
    ones = np.ones(n)
    conf_quality = d["score"] * d["quality"]
    weights = {
        "equal": ones,
        "score x quality (shipped)": conf_quality,
        "(score x quality)^2": conf_quality**2,
        "quality": d["quality"],
    }
    for space in ("prob", "logit"):
        for wname, w in weights.items():
            for causal in (False, True):
                est = aggregate(d, every, w, space, causal)
                key = f"{space} mean, {wname}, {'causal' if causal else 'whole track'}"
                res["variants"][key] = mean_accuracy(est[base] > thr, labels[base])
    # only the best K crops of each track (by score x quality), whole track
    for k in (3, 5, 10):
        sel = every.copy()
        for t in np.unique(d["track"]):
            idx = np.where((d["track"] == t) & every)[0]
            drop = idx[np.argsort(-conf_quality[idx], kind="stable")[k:]]
            sel[drop] = False
        est = aggregate(d, sel, conf_quality, "prob", False)
        res["variants"][f"prob mean, best {k} crops by score x quality, whole track"] = mean_accuracy(
            est[base] > thr, labels[base]
        )
    # by crop kind: where aggregation helps (occluded, edge, small)
    est = aggregate(d, every, conf_quality, "prob", False)
    # how sure: bootstrap over tracks (resample whole tracks, the unit that is not independent)
    rng = np.random.default_rng(0)
    tracks = np.unique(d["track"][base])
    alt = aggregate(d, every, ones, "logit", False)
    diffs = {"shipped - single": [], "logit equal - shipped": []}
    for _ in range(args.bootstrap):
        pick = rng.choice(tracks, len(tracks))
        idx = np.concatenate([np.where(base & (d["track"] == t))[0] for t in pick])
        y = labels[idx]
        s_, t_, a_ = (mean_accuracy(x[idx] > thr, y) for x in (d["probs"], est, alt))
        diffs["shipped - single"].append(t_ - s_)
        diffs["logit equal - shipped"].append(a_ - t_)
    res["bootstrap_95"] = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in diffs.items()}
    groups = {
        "visible < 0.7": base & (d["visible"] < 0.7),
        "visible >= 0.7": base & (d["visible"] >= 0.7),
        "cut by the frame edge": base & d["edge"].astype(bool),
        "height < 100 px": base & (d["height"] < 100),
        "pure tracks (purity 1)": base & np.asarray([purity[int(t)] == 1.0 for t in d["track"]]),
        "impure tracks (purity < 1)": base & np.asarray([purity[int(t)] < 1.0 for t in d["track"]]),
    }
    res["by_crop_kind"] = {
        g: {
            "crops": int(m.sum()),
            "single": mean_accuracy(d["probs"][m] > thr, labels[m]),
            "track (shipped)": mean_accuracy(est[m] > thr, labels[m]),
        }  # fmt: skip
        for g, m in groups.items()
        if m.sum() >= 20
    }
    return res


def markdown(report: dict) -> str:
    r = report["results"]
    lines = [
        f"# Track-level attributes vs single frames, on the same crops ({report['machine']})",
        "",
        f"`{report['command']}`",
        "",
        f"{r['crops']} recognised crops (every {report['every']}rd frame of each track) in {r['tracks']} tracks "
        f"({r['mean_crops_per_track']:.1f} crops/track, mean purity {r['track_purity_mean']:.3f}), bundle "
        f"`{report['bundle']}`, PETA val people. Each crop is scored with its own prediction or its track's.",
        "",
        "| estimate | mA | vs single frame |",
        "| --- | --- | --- |",
        f"| single frame | {r['mA_single_frame']:.4f} | |",
    ]
    for k, v in r["variants"].items():
        lines.append(f"| {k} | {v:.4f} | {v - r['mA_single_frame']:+.4f} |")
    lines += [
        "",
        "95% bootstrap intervals over tracks (mA differences): "
        + "; ".join(f"{k} [{lo:+.4f}, {hi:+.4f}]" for k, (lo, hi) in r["bootstrap_95"].items()),
    ]
    lines += ["", "By crop kind (shipped aggregation, whole track):", "", "| crops | n | single | track |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for g, v in r["by_crop_kind"].items():
        lines.append(f"| {g} | {v['crops']} | {v['single']:.4f} | {v['track (shipped)']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default="peta-lite0")
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--people", type=int, default=6)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--every", type=int, default=3)
    p.add_argument("--bootstrap", type=int, default=300)
    p.add_argument("--first-seed", type=int, default=200, help="scene seeds first_seed... (a validation set: 400)")
    p.add_argument("--cache", help="an .npz of collected crops to reuse (skips detection and recognition)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "video_aggregation.json"))
    args = p.parse_args()
    if args.cache and Path(args.cache).is_file():
        d = dict(np.load(args.cache, allow_pickle=False))
    else:
        d = collect(args)
        if args.cache:
            np.savez(args.cache, **d)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python " + " ".join(sys.argv),
        "bundle": args.bundle,
        "every": args.every,
        "results": analyse(d, args),
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    Path(args.out).with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
