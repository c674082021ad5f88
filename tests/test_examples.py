"""The examples (one camera, several cameras, a gallery search) run end to end on generated video and crops.

The input is generated here, by the synthetic renderer: the examples themselves use the public runtime only.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"clear_examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from clear_sdk.synthetic import write_synthetic_video

    return write_synthetic_video(tmp_path_factory.mktemp("video") / "street.mp4", num_frames=20, seed=1, fps=10.0)


@pytest.mark.parametrize("name", ["one_camera", "several_cameras", "search_gallery"])
def test_examples_are_short_and_use_the_runtime_only(name):
    text = (EXAMPLES / f"{name}.py").read_text()
    assert len(text.splitlines()) <= 200
    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert not {m for m in imported if m.startswith(("clear_sdk.training", "clear_sdk.export", "torch"))}


def test_one_camera(tiny_bundle, video, tmp_path):
    s = _load("one_camera").main(
        [str(video), "--bundle", str(tiny_bundle), "--index", str(tmp_path / "idx"), "--camera", "gate"]
        + ["--detector", "bgsub", "--out", str(tmp_path / "annotated.mp4")]
    )
    (src,) = s["sources"]
    assert src["name"] == "gate" and src["frames_processed"] == 20 and src["stop_reason"] == "end of file"
    assert s["tracks_indexed"] > 0 and s["index_size"] == s["tracks_indexed"]
    cap = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    cap.release()


def test_several_cameras(tiny_bundle, video, tmp_path):
    mod = _load("several_cameras")
    assert mod.parse_camera("gate=rtsp://h/s") == ("gate", "rtsp://h/s")
    assert mod.parse_camera("a.mp4") == (None, "a.mp4")
    s = mod.main(
        [f"gate={video}", f"lobby={video}", "--bundle", str(tiny_bundle), "--index", str(tmp_path / "idx")]
        + ["--detector", "bgsub", "--max-frames", "15", "--query", "Female, Backpack", "--report-every", "0"]
    )
    assert [x["name"] for x in s["sources"]] == ["gate", "lobby"]
    assert all(x["frames_processed"] == 15 and x["stop_reason"] == "max frames (15)" for x in s["sources"])
    hits = s["query"]["hits"]
    assert hits and all(h["camera"] in ("gate", "lobby") and h["from"] <= h["to"] for h in hits)
    assert all(Path(h["crop"]).is_file() for h in hits)


def test_search_gallery(tiny_bundle, tmp_path):
    from clear_sdk.synthetic import SyntheticConfig, generate_synthetic

    gallery_dir = generate_synthetic(
        tmp_path / "gallery",
        SyntheticConfig(num_identities=12, images_per_identity=1, image_size=(128, 64), seed=0,
                        train_fraction=0.0, val_fraction=0.0, test_fraction=1.0),  # fmt: skip
    )
    gallery = _load("search_gallery")
    args = ["--bundle", str(tiny_bundle), "--gallery", str(gallery_dir), "--index", str(tmp_path / "idx")]
    args += ["--query", "Female, Backpack", "--query", "Hat", "--k", "3", "--grid", str(tmp_path / "grid.png")]
    s = gallery.main(args)
    assert s["indexed"] == s["gallery_size"] == 12 and s["labelled"] and s["scorer"] == "embedding"
    assert [q["constraints"] for q in s["queries"]] == [{"Female": True, "Backpack": True}, {"Hat": True}]
    for q in s["queries"]:
        hits = q["hits"]
        assert len(hits) == 3 and len({h["id"] for h in hits}) == 3
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
        assert q["precision"] == pytest.approx(sum(h["match"] for h in hits) / 3)
    assert cv2.imread(s["grid"]).shape[0] == 2 * (192 + 6)  # two query rows of 192-pixel crops
    assert "query: Female, Backpack" in gallery.format_summary(s)
    again = gallery.main(args[:6] + ["--query", "Hat"])
    assert again["indexed"] == 0 and again["gallery_size"] == 12  # a reused index only adds new images
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(gallery.GalleryError, match="no images"):
        gallery.main(["--bundle", str(tiny_bundle), "--gallery", str(empty), "--query", "Hat"])
