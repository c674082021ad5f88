"""The synthetic renderer's output, pinned: datasets, crops, person layers, street and video frames by hash.

The hashes were taken from the renderer before it moved out of ``training/data/synthetic.py``; they
pin every pixel and label, so a refactor that changes one draw or one rounding fails here. They also
pin OpenCV's rasteriser and JPEG encoder and numpy's random streams: after upgrading either
(versions below), a failure here may be the library, not the code. Check the images by eye, then
print new hashes with ``python tests/test_synthetic_golden.py`` and paste them below.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from clear_sdk import synthetic as m

RECORDED_WITH = {"opencv": "4.14.0", "numpy": "2.4.6"}
GOLDEN = {
    "dataset_64x32": "2bca7c94d26559f1c4e7c88ac324887e863247c085494518996da04e9f12846e",
    "dataset_64x32_meta": "dd8dd134f758a1c3b1598a3bf97d10d71723b5cd4d553781207357a2a0bac036",
    "dataset_128x64_k2": "111412e96d34311ed9868457150300e9759a85107ed5b5c1a51b78b0716bd7ec",
    "dataset_128x64_k2_meta": "71e72421b97e5dcfd1f4d113c7e2c4178dce14c085c6d2fda4c01243acd6130a",
    "identities": "5e5c4422b1611d8780a05cdbb31b7adbb7f71ac00a10cb1c4c67d9bfba488d5d",
    "person_layers": "5fb7379f0a2c1d94c12557349a1b80ebfc3af5142a1bf0a7807858987daa57ee",
    "person_crops": "adf8acc7fee850788be020004adfb9ff2af6d858180aaf9d14fffa8f08abb3b4",
    "street": "9102a594dc90326e632d0255bdef0b6f8f445ffc3d69d1b57a88283d7115b690",
    "video_frames": "a920226b27dc6ad6efabdd7ad1240b50678a93674b7b735a9b82407ebd999323",
}

# One attribute set per drawing branch: each view, hat, long hair, backpack, handbag, cane, skirt, shorts.
ATTRIBUTE_SETS = [
    {"Female": 1, "AgeOver60": 1, "Front": 1, "Hat": 1, "LongHair": 1, "HandBag": 1, "Skirt": 1}
    | {"UpperYellow": 1, "LowerBrown": 1},
    {"Age18-60": 1, "Side": 1, "Backpack": 1, "HandBag": 1, "ShortSleeve": 1, "Shorts": 1, "UpperBlue": 1}
    | {"LowerGray": 1},
    {"AgeLess18": 1, "Back": 1, "Backpack": 1, "LongHair": 1, "Trousers": 1, "UpperWhite": 1, "LowerBlack": 1},
    {"Female": 1, "AgeOver60": 1, "Side": 1, "Hat": 1, "LongHair": 1, "Skirt": 1, "UpperRed": 1, "LowerBlue": 1},
    {"AgeOver60": 1, "Back": 1, "Hat": 1, "HandBag": 1, "Trousers": 1, "UpperGreen": 1, "LowerBrown": 1},
    {"Female": 1, "Age18-60": 1, "Front": 1, "Backpack": 1, "ShortSleeve": 1, "Trousers": 1, "UpperBlack": 1}
    | {"LowerBlue": 1},
]


def _sha(*parts: Any) -> str:
    """sha256 over arrays (shape, dtype and bytes), raw bytes and JSON-able values (dict keys sorted)."""
    d = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            d.update(repr((p.shape, p.dtype.str)).encode())
            d.update(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, bytes):
            d.update(p)
        else:
            d.update(json.dumps(p, sort_keys=True).encode())
    return d.hexdigest()


def _dataset_hashes(tmp: Path) -> dict[str, str]:
    out = {}
    configs = {
        "dataset_64x32": m.SyntheticConfig(num_identities=8, images_per_identity=3, image_size=(64, 32), seed=5),
        # fewer images than views: the per-split view coverage path of sample_identities
        "dataset_128x64_k2": m.SyntheticConfig(num_identities=6, images_per_identity=2, image_size=(128, 64), seed=2),
    }
    for name, cfg in configs.items():
        root = m.generate_synthetic(tmp / name, cfg)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))
        out[name] = _sha((root / "labels.csv").read_bytes(), *[(root / f).read_bytes() for f in files], files)
        out[name + "_meta"] = _sha(json.loads((root / "synthetic.json").read_text()))
    return out


def compute(tmp: Path) -> dict[str, str]:
    """Every golden hash, rendered afresh (about 2 s on one core)."""
    out = _dataset_hashes(tmp)
    idents = m.sample_identities(m.SyntheticConfig(num_identities=60, images_per_identity=4, seed=8))
    out["identities"] = _sha(
        *[[i.pid, i.split, i.labels.tolist(), list(i.views), dataclasses.asdict(i.appearance)] for i in idents]
    )
    rng = np.random.default_rng(123)
    layers, crops = [], []
    for i, attrs in enumerate(ATTRIBUTE_SETS):
        app = m.sample_appearance(rng)
        pose = m.sample_pose(rng)
        layers += list(m.render_person_layer(attrs, app, (256, 128), pose))
        crops.append(m.render_person(attrs, app, rng=100 + i, size=(256, 128)))
        crops.append(m.render_person(attrs, m.Appearance(hat_style=i % 3, cane=True), rng=i, size=(96, 48)))
    out["person_layers"] = _sha(*layers)
    out["person_crops"] = _sha(*crops)
    out["street"] = _sha(m.render_street((120, 160), 2), m.render_street((240, 320), np.random.default_rng(9)))
    frames: list[Any] = []
    for frame, people in m.synthetic_video_frames(40, (96, 160), num_people=4, seed=3):
        frames += [frame, [{**p, "bbox": list(p["bbox"])} for p in people]]
    out["video_frames"] = _sha(*frames)
    return out


def test_rendering_matches_the_recorded_hashes(tmp_path: Path) -> None:
    got = compute(tmp_path)
    changed = sorted(k for k in GOLDEN if got.get(k) != GOLDEN[k])
    versions = {"opencv": cv2.__version__, "numpy": np.__version__}
    note = "" if versions == RECORDED_WITH else f" (recorded with {RECORDED_WITH}, running {versions})"
    assert not changed, f"synthetic rendering changed for {changed}{note}; see this file's docstring"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        json.dump(compute(Path(d)), sys.stdout, indent=4)
    print(f"\n# recorded with opencv {cv2.__version__}, numpy {np.__version__}")
