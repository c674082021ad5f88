"""``clear-sdk demo``'s default: the shipped real clip through a shipped model, with the runtime only."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("supervision")

from clear_sdk.cli.demo_video import run_video_demo, sample_clip  # noqa: E402
from clear_sdk.schema import attribute_labels  # noqa: E402


def test_the_sample_clip_ships_with_its_attribution() -> None:
    clip = sample_clip()
    assert clip.is_file() and clip.stat().st_size < 2_000_000
    assert "CC BY 4.0" in (clip.parent / "ATTRIBUTION.md").read_text()


def test_video_demo_tracks_recognises_indexes_and_searches(tmp_path) -> None:
    report = run_video_demo(tmp_path, bundle="peta-lite0", max_frames=150)  # 15 s: the first people walk in
    assert report["frames"] == 150 and report["tracks"]
    from clear_sdk import Recognizer

    labels = set(attribute_labels(Recognizer("peta-lite0").attribute_names, "peta").values())
    for t in report["tracks"]:
        assert 0 <= t["from_s"] <= t["to_s"] <= 15.1  # stamped with the clip's own time, not the wall clock
        assert set(t["attributes"]) <= labels  # labels a person reads, not raw names
    assert [s["query"] for s in report["searches"]] and all(s["hits"] for s in report["searches"])
    again = run_video_demo(tmp_path, bundle="peta-lite0", max_frames=150)  # a rerun rebuilds its own index
    assert len(again["tracks"]) == len(report["tracks"])


def test_video_demo_needs_no_torch(tmp_path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from clear_sdk.cli.demo_video import run_video_demo\n"
        f"r = run_video_demo({str(tmp_path)!r}, bundle='peta-lite0', max_frames=30)\n"
        "print(r['frames'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("30")
