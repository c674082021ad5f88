"""Split files (zero-shot protocols): JSON and CSV, identity checks, clear errors, and the writer."""

from __future__ import annotations

import json

import pytest

from clear_sdk.synthetic import SyntheticConfig, generate_synthetic
from clear_sdk.training.data import DatasetError, create_dataset
from clear_sdk.training.data.splits import make_zero_shot_split


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    generate_synthetic(root, SyntheticConfig(num_identities=12, images_per_identity=2, image_size=(64, 32), seed=3))
    return root


def test_json_split_repartitions_in_file_order(root, tmp_path):
    split = {"train": ["images/0003_01.jpg", "0001_00.jpg"], "val": ["images/0002_00.jpg"], "test": ["0005_01.jpg"]}
    f = tmp_path / "split.json"
    f.write_text(json.dumps(split))
    ds = create_dataset("synthetic", root, split_file=f)
    assert [r.path.split("/")[-1] for r in ds.split("train")] == ["0003_01.jpg", "0001_00.jpg"]
    assert [r.pid for r in ds.split("test")] == [5]
    assert len(ds.split("trainval")) == 3
    full = create_dataset("synthetic", root)
    by_path = {r.path: r for recs in full.splits.values() for r in recs}
    assert all((by_path[r.path].labels == r.labels).all() for r in ds.split("train"))  # labels kept


def test_csv_split_with_identities(root, tmp_path):
    f = tmp_path / "split.csv"
    f.write_text("image,split,identity\nimages/0000_00.jpg,train,a\nimages/0000_01.jpg,test,b\n")
    ds = create_dataset("synthetic", root, split_file=f)  # the file's identities override the records'
    assert len(ds.split("train")) == 1 and len(ds.split("test")) == 1 and ds.split("val") == []


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"train": ["nope.jpg"]}, "not in synthetic"),
        ({"train": ["0000_00.jpg"], "test": ["images/0000_00.jpg"]}, "in both train and test"),
        ({"train": ["0000_00.jpg"], "test": ["0000_01.jpg"]}, "identities also appear"),  # same pid 0
        ({"train": ["0000_00.jpg"], "test": ["0001_00.jpg"], "identities": {"0000_00.jpg": "x", "0001_00.jpg": "x"}},
         "identities also appear"),
        ({"images": []}, "expected an object"),
    ],
)  # fmt: skip
def test_bad_split_files_name_the_problem(root, tmp_path, content, match):
    f = tmp_path / "split.json"
    f.write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=match):
        create_dataset("synthetic", root, split_file=f)


def test_csv_bad_split_name_and_missing_file(root, tmp_path):
    f = tmp_path / "split.csv"
    f.write_text("image,split\nimages/0000_00.jpg,training\n")
    with pytest.raises(DatasetError, match=r"split.csv:2: split 'training'"):
        create_dataset("synthetic", root, split_file=f)
    with pytest.raises(DatasetError, match="split file not found"):
        create_dataset("synthetic", root, split_file=tmp_path / "absent.json")


def test_make_zero_shot_split_has_disjoint_identities(root, tmp_path):
    ds = create_dataset("synthetic", root)
    path = make_zero_shot_split(ds, tmp_path / "zs.json", val_fraction=0.25, test_fraction=0.25, seed=0)
    zs = create_dataset("synthetic", root, split_file=path)
    pids = {s: {r.pid for r in zs.split(s)} for s in ("train", "val", "test")}
    assert len(pids["test"]) == 3 and len(pids["val"]) == 3 and len(pids["train"]) == 6
    assert not (pids["test"] & (pids["train"] | pids["val"])) and not (pids["val"] & pids["train"])
    assert sum(len(zs.split(s)) for s in ("train", "val", "test")) == 24
