"""Detection policy pieces of clear_sdk.video: one batched detector call for several cameras, a YOLO with
several person classes, and the schedule that detects every n-th frame (or only after motion) while
ByteTrack carries the boxes in between."""

from __future__ import annotations

import numpy as np
import pytest

from clear_sdk.video.detectors import DetectorError, SSDLiteDetector, YoloOnnxDetector
from clear_sdk.video.detectors.ssdlite import MAX_TILES, auto_grid
from clear_sdk.video.types import Detection

pytest.importorskip("supervision")

from clear_sdk.video.tracking import ByteTracker, DetectionSchedule  # noqa: E402


def test_one_batched_call_finds_what_per_frame_calls_find():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (360, 640, 3), np.uint8), np.full((288, 360, 3), 128, np.uint8)]
    det = SSDLiteDetector(conf=0.0)  # every box, so that the comparison is not empty
    batched = det.detect_batch(frames)
    for f, b in zip(frames, batched):
        single = det.detect(f)
        assert [d.box for d in single] == [d.box for d in b]
        assert np.allclose([d.score for d in single], [d.score for d in b], atol=1e-5)


def test_the_tile_grid_follows_frame_and_person_size():
    # large people: one row of tiles about 0.7 as wide as high
    assert auto_grid(360, 640) == (3, 1) and auto_grid(576, 720) == (2, 1) and auto_grid(640, 360) == (1, 1)
    assert auto_grid(360, 640, person_height=170) == (3, 1)  # a third of the frame or more: the same
    # small people: rows of tiles about three person heights high
    assert auto_grid(360, 640, person_height=50) == (5, 3)
    cols, rows = auto_grid(1080, 1920, person_height=20)
    assert cols * rows <= MAX_TILES and rows > 1
    det = SSDLiteDetector(person_height=50)
    assert det.grid(360, 640) == (5, 3) and det.conf == 0.2
    assert SSDLiteDetector(tiles=(2, 1), person_height=50).grid(360, 640) == (2, 1)
    with pytest.raises(DetectorError, match="person_height"):
        SSDLiteDetector(person_height=0)


def test_yolo_people_may_be_several_classes():
    det = YoloOnnxDetector.__new__(YoloOnnxDetector)  # decode only: no model file needed
    det.conf, det.nms_iou, det.layout, det.person_classes = 0.3, 0.5, "v8", [0, 1]
    out = np.zeros((1, 4 + 3, 3), np.float32)  # v8: [1, 4 + nc, N]; three boxes, classes standing / fallen / dog
    out[0, :4, 0], out[0, 4, 0] = [50, 50, 20, 40], 0.9  # standing person
    out[0, :4, 1], out[0, 5, 1] = [150, 50, 40, 20], 0.8  # fallen person
    out[0, :4, 2], out[0, 6, 2] = [250, 50, 20, 20], 0.95  # dog
    found = det.decode(out, 1.0, 0, 0, (300, 300, 3))
    assert sorted(round(d.score, 2) for d in found) == [0.8, 0.9]


class CountingDetector:
    """One person walking right 6 px a frame; counts its calls."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        self.calls += 1
        x = int(frame[0, 0, 0]) * 6  # the frame number is written into the first pixel
        return [Detection((100 + x, 50, 140 + x, 150), 0.9)]


def frame(i: int, still: bool = False) -> np.ndarray:
    f = np.zeros((240, 320, 3), np.uint8)
    f[0, 0, 0] = i
    if not still:
        f[60:160, 100 + 6 * i : 140 + 6 * i] = 200  # the person, drawn, so that motion can be seen
    return f


def test_every_third_frame_is_detected_and_the_tracker_carries_the_boxes_between():
    det = CountingDetector()
    sch = DetectionSchedule(det, ByteTracker(frame_rate=10.0), every=3)
    boxes = [sch.update(frame(i)) for i in range(30)]
    assert det.calls == 10 and sch.detector_runs == 10
    ids = {b.track_id for f in boxes for b in f}
    assert len(ids) == 1 and all(len(f) == 1 for f in boxes[3:])  # one track, a box on every frame once confirmed
    # once the Kalman velocity has settled, the carried boxes move on with it: within 3 px of the person,
    # where holding the last detected box would be 6 or 12 px behind
    for i in range(18, 30):
        x1 = boxes[i][0].box[0]
        assert abs(x1 - (100 + 6 * i)) <= 3, (i, x1)


def test_no_detection_while_nothing_moves_then_one_when_something_does():
    det = CountingDetector()
    sch = DetectionSchedule(det, ByteTracker(frame_rate=10.0), every=1, motion=0.002, max_still=100)
    still = np.zeros((240, 320, 3), np.uint8)
    for _ in range(20):
        sch.update(still)
    assert det.calls == 1  # the first frame, then nothing changed
    sch.update(frame(5))
    assert det.calls == 2
    with pytest.raises(ValueError, match="every"):
        DetectionSchedule(det, ByteTracker(), every=0)


def test_a_still_camera_is_still_looked_at_every_max_still_frames():
    det = CountingDetector()
    sch = DetectionSchedule(det, ByteTracker(frame_rate=10.0), motion=0.002, max_still=4)
    still = np.zeros((240, 320, 3), np.uint8)
    for _ in range(11):
        sch.update(still)
    assert det.calls == 3  # frames 0, 5, 10


def test_a_track_that_jumps_to_a_much_taller_box_goes_on_under_a_new_id():
    trk = ByteTracker(frame_rate=10.0, split_height=1.3)
    ids = []
    for i in range(12):  # a far person (80 px tall) walking; from frame 6 the box is a near person's (120 px)
        h = 80 if i < 6 else 120
        out = trk.update([Detection((100 + 3 * i, 200 - h, 140 + 3 * i, 200), 0.9)])
        ids.append(out[0].track_id if out else None)
    assert len(set(ids[1:6])) == 1 and len(set(ids[6:])) == 1 and ids[5] != ids[6]
    plain = ByteTracker(frame_rate=10.0, split_height=None)  # without the guard ByteTrack keeps one id for both
    for i in range(12):
        h = 80 if i < 6 else 120
        last = plain.update([Detection((100 + 3 * i, 200 - h, 140 + 3 * i, 200), 0.9)])
    assert last[0].track_id == ids[1]


def test_a_box_on_top_of_another_live_track_is_held_back():
    """A walks right past B, who stands still and is hidden while A is in front: while A's box covers B's
    last place, A is not reported (it could be either of them); before and after it is."""
    trk = ByteTracker(frame_rate=10.0, hold_overlap=0.5)
    shown = {}
    for i in range(20):
        a = (100 + 10 * i, 100, 140 + 10 * i, 200)
        dets = [Detection(a, 0.9)]
        if i < 5:
            dets.append(Detection((200, 100, 240, 200), 0.9))  # B, until A reaches them
        out = trk.update(dets)
        shown[i] = [b.box[0] for b in out if abs(b.box[0] - a[0]) <= 2]
    assert shown[2] and shown[18]  # A apart from B's place: shown
    assert not any(shown[i] for i in (10,))  # A exactly on B's place (x 200): held back
    assert sum(not shown[i] for i in range(20)) <= 5  # only while the boxes overlap by IoU >= 0.5


def test_a_track_found_again_after_three_lost_frames_goes_on_under_a_new_id():
    def run(gap: int) -> set[int]:
        trk, ids = ByteTracker(frame_rate=10.0), set()
        for i in range(12):
            if not 4 <= i < 4 + gap:
                ids |= {b.track_id for b in trk.update([Detection((100 + 2 * i, 50, 140 + 2 * i, 150), 0.9)])}
            else:
                trk.update([])
        return ids

    assert len(run(2)) == 1 and len(run(3)) == 2  # split_after_lost=3: 3 frames lost is maybe someone else


def test_a_detector_that_learns_from_every_frame_is_run_on_every_frame() -> None:
    from clear_sdk.video.detectors import create_detector
    from clear_sdk.video.tracking import ByteTracker, DetectionSchedule

    bgsub = create_detector("bgsub")
    schedule = DetectionSchedule(bgsub, ByteTracker(), every=3)
    assert schedule.every == 1  # MOG2 would not learn the background from every third frame
    frame = np.zeros((120, 160, 3), np.uint8)
    for _ in range(4):
        schedule.update(frame)
    assert schedule.detector_runs == 4
