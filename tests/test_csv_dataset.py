"""The generic ``csv`` dataset: a labels.csv beside its images, split by a column or by file order."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clear_sdk.training.data import DatasetError, create_dataset


def _write(root, names, files=None, header="image,A,B", extra=""):
    (root / "images").mkdir(parents=True, exist_ok=True)
    for n in files if files is not None else names:
        cv2.imwrite(str(root / "images" / n), np.zeros((8, 4, 3), np.uint8))
    lines = [header] + [f"{n},{i % 2},{(i // 2) % 2}{extra}" for i, n in enumerate(names)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")


def test_split_by_file_order_and_labels(tmp_path) -> None:
    names = [f"{i:03d}.jpg" for i in range(10)]
    _write(tmp_path, names)
    ds = create_dataset("csv", tmp_path)
    assert ds.attributes == ["A", "B"] and ds.groups == {"other": ["A", "B"]}
    assert [len(ds.split(s)) for s in ("train", "val", "test", "trainval")] == [8, 1, 1, 9]
    assert ds.labels("train")[:4].tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    assert ds.split("test")[0].path.endswith("009.jpg")


def test_renamed_images_pair_by_order_and_missing_ones_fail(tmp_path) -> None:
    _write(tmp_path / "a", ["x1.jpg", "x2.jpg"], files=["001.jpg", "002.jpg"])
    ds = create_dataset("csv", tmp_path / "a", fractions=(0.5, 0.5, 0.0))
    assert ds.split("val")[0].path.endswith("002.jpg")
    _write(tmp_path / "b", ["x1.jpg", "x2.jpg"], files=["001.jpg"])
    with pytest.raises(DatasetError, match="missing"):
        create_dataset("csv", tmp_path / "b")
    _write(tmp_path / "c", ["001.jpg"], header="image,A,B", extra="")
    (tmp_path / "c" / "labels.csv").write_text("image,A\n001.jpg,2\n")
    with pytest.raises(DatasetError, match="0 or 1"):
        create_dataset("csv", tmp_path / "c")


def test_shared_pa100k_2k_subset(shared_data) -> None:
    ds = create_dataset("csv", shared_data / "pa100k-2k")
    assert [len(ds.split(s)) for s in ("train", "val", "test")] == [1600, 200, 200]
    assert ds.attributes[0] == "Female" and len(ds.attributes) == 26
    assert "gender" in ds.groups  # the packaged PA-100K schema was recognised
    assert ds.split("val")[0].path.endswith("001601.jpg")
