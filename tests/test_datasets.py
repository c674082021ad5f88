"""Dataset loaders and the packaged attribute schema.

Real annotation files (PETA.mat, market_attribute.mat) are read from ../shared/data when present;
the other formats are checked on small fixtures written here in each dataset's published layout.
Image folders are created in tmp_path: loaders check that the image folder exists and that the
first image of every split exists (not all 19,000 PETA files), so only those files are written,
except for Market-1501, whose splits are built by listing the image folders.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from clear_sdk.schema import GROUP_ORDER, DatasetSchema, list_schemas, load_schema
from clear_sdk.training.data import DatasetError, PARDataset, create_dataset, list_datasets
from clear_sdk.training.data.market1501 import parse_market_name
from clear_sdk.training.data.pkl import SafeUnpickler, infer_groups, safe_load

scipy_io = pytest.importorskip("scipy.io")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PETA_MAT = SHARED / "annotations" / "PETA.mat"
MARKET_MAT = SHARED / "annotations" / "market_attribute.mat"
SCHEMA_SIZES = {"pa100k": 26, "peta": 35, "rapv2": 54, "market1501": 30, "upar": 40, "synthetic": 25, "unified": 65}

_JPG = cv2.imencode(".jpg", np.full((8, 4, 3), 127, np.uint8))[1].tobytes()
_PNG = cv2.imencode(".png", np.full((8, 4, 3), 127, np.uint8))[1].tobytes()


def write_images(folder: Path, names: list[str]) -> None:
    """Tiny valid images (decodable by OpenCV) under ``folder``, in subfolders where names have them."""
    for n in names:
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_PNG if n.endswith(".png") else _JPG)


def cell(items: list, shape: tuple[int, int]) -> np.ndarray:
    """A MATLAB cell array for savemat."""
    a = np.empty(len(items), dtype=object)
    a[:] = items
    return a.reshape(shape)


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.symlink(src, dst)
    except OSError:
        shutil.copy(src, dst)


# --------------------------------------------------------------------------- schema


def test_schemas_group_every_attribute_exactly_once() -> None:
    assert list_schemas() == sorted(SCHEMA_SIZES)
    for name, size in SCHEMA_SIZES.items():
        s = load_schema(name)
        assert s.name == name and len(s.attributes) == size == len(set(s.attributes))
        flat = [a for names in s.groups.values() for a in names]
        assert sorted(flat) == sorted(s.attributes) and len(flat) == size
        assert list(s.groups) == [g for g in GROUP_ORDER if g in s.groups]  # canonical group order
        assert all(s.groups.values())  # no empty group
        assert s.group_of(s.attributes[0]) in s.groups


def test_schema_known_groups_and_orders() -> None:
    pa = load_schema("PA100K")  # case-insensitive
    assert pa.attributes[:4] == ["Female", "AgeOver60", "Age18-60", "AgeLess18"]
    assert pa.groups["view"] == ["Front", "Side", "Back"]
    assert pa.groups["bag"] == ["HandBag", "ShoulderBag", "Backpack", "HoldObjectsInFront"]
    peta = load_schema("peta")
    assert peta.groups["gender"] == ["personalMale"]
    assert peta.groups["head"] == ["accessoryHat", "accessorySunglasses", "hairLong"]
    upar = load_schema("upar")
    assert len(upar.groups["upper_colour"]) == 12 and len(upar.groups["lower_colour"]) == 12
    market = load_schema("market1501")
    assert market.groups["age"] == ["age-young", "age-teenager", "age-adult", "age-old"]
    assert market.attributes[:5] == ["female", "age-young", "age-teenager", "age-adult", "age-old"]
    rap = load_schema("rapv2")
    assert rap.attributes[0] == "hs-BaldHead" and rap.groups["gender"] == ["Femal"]


def test_schema_errors() -> None:
    with pytest.raises(KeyError, match="known: market1501, pa100k, peta, rapv2, synthetic, unified, upar"):
        load_schema("nope")
    with pytest.raises(ValueError, match="'b' is in groups"):
        DatasetSchema("x", ["a", "b"], {"gender": ["a", "b"], "age": ["b"]})
    with pytest.raises(ValueError, match="without a group"):
        DatasetSchema("x", ["a", "b"], {"gender": ["a"]})
    with pytest.raises(ValueError, match="unknown groups"):
        DatasetSchema("x", ["a"], {"shoes": ["a"]})
    with pytest.raises(KeyError, match="valid: a, b"):
        DatasetSchema("x", ["a", "b"], {"gender": ["a", "b"]}).group_of("c")
    s = load_schema("peta")
    s.attributes.append("mutated")
    assert "mutated" not in load_schema("peta").attributes  # callers get copies


def test_schema_module_needs_neither_numpy_nor_torch() -> None:
    code = (
        "import sys; from clear_sdk.schema import load_schema; load_schema('upar'); "
        "bad = [m for m in ('numpy', 'torch') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_and_schema_agree() -> None:
    names = list_datasets()
    assert set(SCHEMA_SIZES) | {"pkl"} <= set(names)
    with pytest.raises(KeyError, match="valid names: .*market1501.*peta"):
        create_dataset("no-such-set", "/tmp")
    from clear_sdk.training.data.base import _REGISTRY

    for name in SCHEMA_SIZES:
        cls = _REGISTRY[name]
        assert issubclass(cls, PARDataset) and cls.name == name
        assert cls.attributes == load_schema(name).attributes and cls.groups == load_schema(name).groups


# --------------------------------------------------------------------------- PETA (real PETA.mat)


@pytest.fixture(scope="module")
def peta_raw() -> dict:
    if not PETA_MAT.is_file():
        pytest.skip(f"{PETA_MAT} not present")
    p = scipy_io.loadmat(str(PETA_MAT))["peta"][0][0]
    parts = [p["partion_attribute"][k][0][0][0] for k in range(5)]
    return {"data": p["data"], "parts": [{s: t[s][:, 0] for s in ("train", "val", "test")} for t in parts]}


@pytest.fixture()
def peta_root(tmp_path: Path, peta_raw: dict) -> Path:
    link_or_copy(PETA_MAT, tmp_path / "PETA.mat")
    firsts = {int(part[s][0]) for part in peta_raw["parts"] for s in ("train", "val", "test")}
    write_images(tmp_path / "images", [f"{i:05d}.png" for i in sorted(firsts)])
    for i in set(range(1, 19001)) - firsts:  # the loader lists names; only the firsts are decoded
        (tmp_path / "images" / f"{i:05d}.png").touch()
    return tmp_path


def test_peta_real_partitions_and_labels(peta_root: Path, peta_raw: dict) -> None:
    ds = create_dataset("peta", peta_root)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 9500, "val": 1900, "trainval": 11400, "test": 7600}
    assert ds.attributes == load_schema("peta").attributes
    first = ds.split("train")[0]
    assert first.path == str(peta_root / "images" / "13183.png")  # partition 0 starts with image 13183
    # hand-read from PETA.mat: image 13183 (skirt, muffler, messenger bag, under 30, not male)
    positives = {ds.attributes[i] for i in np.flatnonzero(first.labels)}
    assert positives == {
        "accessoryMuffler",
        "upperBodyCasual",
        "upperBodyOther",
        "lowerBodyCasual",
        "lowerBodyShortSkirt",
        "carryingMessengerBag",
        "personalLess30",
    }
    raw_idx = load_schema("peta").meta["raw_mat_indices"]
    expect = peta_raw["data"][:, 4:][:, raw_idx]
    for split in ("train", "val", "test"):
        idx = peta_raw["parts"][0][split].astype(int) - 1
        np.testing.assert_array_equal(ds.labels(split), expect[idx])
        assert [r.path for r in ds.split(split)[:3]] == [
            str(peta_root / "images" / f"{i + 1:05d}.png") for i in idx[:3]
        ]
    assert ds.labels("trainval").dtype == np.uint8 and ds.labels("trainval").shape == (11400, 35)
    # image 00001 (row 0): the first row of the raw matrix, through the attribute mapping
    assert expect[0].tolist() == [int(a in {"accessoryNothing", "upperBodyShortSleeve", "upperBodyThinStripes",
        "upperBodyTshirt", "lowerBodyCasual", "lowerBodyJeans", "footwearSneaker", "carryingNothing",
        "personalLess30", "personalMale"}) for a in ds.attributes]  # fmt: skip


def test_peta_other_partition_and_bad_partition(peta_root: Path, peta_raw: dict) -> None:
    ds = create_dataset("peta", peta_root, partition=4)
    assert ds.split("train")[0].path.endswith("00777.png")
    assert len(ds.split("test")) == 7600
    for bad in (5, -1):
        with pytest.raises(ValueError, match="partition must be 0..4"):
            create_dataset("peta", peta_root, partition=bad)


def test_peta_missing_files(tmp_path: Path, peta_root: Path) -> None:
    with pytest.raises(DatasetError, match=r"missing under .*PETA\.mat, images"):
        create_dataset("peta", tmp_path / "empty")
    (peta_root / "images" / "13183.png").unlink()
    ds = create_dataset("peta", peta_root)  # only a split that needs the image fails
    with pytest.raises(DatasetError, match=r"1 of 9500 images of split 'train' are missing .*13183\.png"):
        ds.split("train")
    assert len(ds.split("test")) == 7600


def test_peta_reads_jpg_and_a_root_with_only_some_splits(tmp_path: Path, peta_raw: dict) -> None:
    """The layout of ../shared/data/peta-trainval: train + val as NNNNN.jpg, no test images, PETA.mat elsewhere."""
    images = tmp_path / "trainval" / "images"
    images.mkdir(parents=True)
    part = peta_raw["parts"][0]
    for i in np.concatenate([part["train"], part["val"]]).astype(int):
        (images / f"{i:05d}.jpg").touch()
    ds = create_dataset("peta", tmp_path / "trainval", annotation=PETA_MAT)
    assert ds.split("train")[0].path == str(images / "13183.jpg")
    assert len(ds.split("val")) == 1900 and len(ds.split("trainval")) == 11400
    with pytest.raises(DatasetError, match=r"7600 of 7600 images of split 'test' are missing"):
        ds.split("test")
    with pytest.raises(DatasetError, match="annotation file .* does not exist"):
        create_dataset("peta", tmp_path / "trainval", annotation=tmp_path / "nope.mat")


def test_peta_colours_option_appends_the_raw_colour_labels(peta_root: Path, peta_raw: dict) -> None:
    ds = create_dataset("peta", peta_root, colours=True)
    std = load_schema("peta").attributes
    assert ds.attributes[:35] == std and len(ds.attributes) == 57
    assert ds.groups["upper_colour"][0] == "upperBodyBlack" and len(ds.groups["upper_colour"]) == 11
    assert ds.groups["lower_colour"][-1] == "lowerBodyYellow" and len(ds.groups["lower_colour"]) == 11
    # raw columns 35..56 of peta.data[:, 4:] are upperBodyBlack..lowerBodyYellow (read from PETA.mat)
    idx = peta_raw["parts"][0]["train"].astype(int) - 1
    np.testing.assert_array_equal(ds.labels("train")[:, 35:], peta_raw["data"][:, 4:][idx][:, 35:57])
    np.testing.assert_array_equal(ds.labels("train")[:, :35], create_dataset("peta", peta_root).labels("train"))
    assert PARDataset.attributes is not ds.attributes and len(type(ds).attributes) == 35  # class schema untouched


# --------------------------------------------------------------------------- Market-1501 (real .mat)


@pytest.fixture(scope="module")
def market_raw() -> dict:
    if not MARKET_MAT.is_file():
        pytest.skip(f"{MARKET_MAT} not present")
    ma = scipy_io.loadmat(str(MARKET_MAT))["market_attribute"][0][0]
    out = {}
    for split in ("train", "test"):
        s = ma[split][0][0]
        ids = [int(x[0]) for x in s["image_index"][0]]
        out[split] = {"ids": ids, "fields": {f: s[f][0] for f in s.dtype.names if f != "image_index"}}
    return out


@pytest.fixture(scope="module")
def market_root(tmp_path_factory: pytest.TempPathFactory, market_raw: dict) -> Path:
    root = tmp_path_factory.mktemp("market")
    link_or_copy(MARKET_MAT, root / "market_attribute.mat")
    train = [f"{pid:04d}_c{1 + k}s1_{pid:06d}_0{k}.jpg" for pid in market_raw["train"]["ids"] for k in range(2)]
    test = [f"{pid:04d}_c{3 + k}s2_{pid:06d}_0{k}.jpg" for pid in market_raw["test"]["ids"] for k in range(2)]
    junk = ["-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg", "readme.jpg"]
    write_images(root / "bounding_box_train", train + junk)
    write_images(root / "bounding_box_test", test + junk)
    write_images(root / "query", [f"{pid:04d}_c6s1_000001_00.jpg" for pid in market_raw["test"]["ids"][:10]])
    return root


def test_market_parse_name() -> None:
    assert parse_market_name("0002_c1s1_000451_03.jpg") == (2, 0)
    assert parse_market_name("-1_c3s2_012345_01.jpg") == (-1, 2)
    assert parse_market_name("0002_c1s1_000451_03.png") is None


def test_market_real_splits_and_labels(market_root: Path, market_raw: dict) -> None:
    ds = create_dataset("market1501", market_root)
    assert ds.attributes == load_schema("market1501").attributes and len(ds.attributes) == 30
    sizes = {k: len(v) for k, v in ds.splits.items()}
    assert sizes["trainval"] == 2 * 751 and sizes["test"] == 2 * 750 and sizes["query"] == 10  # junk skipped
    train_ids = {r.pid for r in ds.split("train")}
    val_ids = {r.pid for r in ds.split("val")}
    assert len(val_ids) == 75 and not train_ids & val_ids and len(train_ids | val_ids) == 751
    assert sizes["train"] + sizes["val"] == sizes["trainval"]
    assert {r.pid for r in ds.split("test")} == set(market_raw["test"]["ids"])

    # identity 0002 (first train ID), hand-read from the .mat: age 2 (teenager), red short-sleeved top,
    # blue short pants, no bags, short hair, male
    rec = next(r for r in ds.split("trainval") if r.pid == 2)
    assert rec.camid == 0 and rec.path.endswith("0002_c1s1_000002_00.jpg")
    positives = {ds.attributes[i] for i in np.flatnonzero(rec.labels)}
    assert positives == {"age-teenager", "upper-short-sleeve", "upper-red", "lower-short", "lower-pants", "lower-blue"}

    # the test struct stores its fields in another order: check every label against the .mat by field name
    fields = load_schema("market1501").meta["mat_fields"]
    raw = market_raw["test"]
    by_pid = {r.pid: r.labels for r in ds.split("test")}
    for j, pid in enumerate(raw["ids"]):
        expect = [int(raw["fields"][field][j] == value) for _, field, value in fields]
        assert by_pid[pid].tolist() == expect
    assert all(r.labels[1:5].sum() == 1 for r in ds.split("test"))  # age is one-hot


def test_market_unique_label_vectors(market_root: Path) -> None:
    """CLEAR's Table 1: 508 train and 484 test person categories (unique attribute combinations)."""
    ds = create_dataset("market1501", market_root)
    test_vectors = {r.pid: r.labels for r in ds.split("test")}
    assert len(test_vectors) == 750
    assert len(np.unique(np.stack(list(test_vectors.values())), axis=0)) == 484
    train_vectors = {r.pid: r.labels for r in ds.split("trainval")}
    assert len(np.unique(np.stack(list(train_vectors.values())), axis=0)) == 508


def test_market_val_split_is_deterministic(market_root: Path) -> None:
    def val_ids(**kw: object) -> set[int]:
        return {r.pid for r in create_dataset("market1501", market_root, **kw).split("val")}

    assert val_ids() == val_ids(seed=0)
    assert val_ids(seed=1) != val_ids(seed=0)
    assert len(val_ids(val_fraction=0.2)) == 150
    assert val_ids(val_fraction=0.0) == set()
    with pytest.raises(ValueError, match="val_fraction"):
        create_dataset("market1501", market_root, val_fraction=1.0)


def test_market_missing_files(tmp_path: Path, market_raw: dict) -> None:
    link_or_copy(MARKET_MAT, tmp_path / "market_attribute.mat")
    with pytest.raises(DatasetError, match="missing under .*bounding_box_train"):
        create_dataset("market1501", tmp_path)
    (tmp_path / "bounding_box_train").mkdir()  # bounding_box_test may be absent (a train-only root) ...
    with pytest.raises(DatasetError, match="no annotated images in .*bounding_box_train"):
        create_dataset("market1501", tmp_path)  # ... but the train images may not


# --------------------------------------------------------------------------- PA100K (fixture annotation.mat)


def write_pa100k(root: Path, attributes: list[str] | None = None) -> dict[str, tuple[list[str], np.ndarray]]:
    attributes = attributes or load_schema("pa100k").attributes
    rng = np.random.default_rng(0)
    splits, start = {}, 1
    for split, n in (("train", 6), ("val", 3), ("test", 4)):
        names = [f"{i:06d}.jpg" for i in range(start, start + n)]
        start += n
        splits[split] = (names, rng.integers(0, 2, (n, 26)).astype(np.uint8))
    mat = {"attributes": cell(attributes, (26, 1))}
    for split, (names, labels) in splits.items():
        mat[f"{split}_images_name"] = cell(names, (len(names), 1))
        mat[f"{split}_label"] = labels
    scipy_io.savemat(str(root / "annotation.mat"), mat)
    write_images(root / "data", [n for names, _ in splits.values() for n in names])
    return splits


def test_pa100k_fixture(tmp_path: Path) -> None:
    raw = write_pa100k(tmp_path)
    ds = create_dataset("pa100k", tmp_path)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 6, "val": 3, "test": 4, "trainval": 9}
    for split, (names, labels) in raw.items():
        np.testing.assert_array_equal(ds.labels(split), labels)
        assert [r.path for r in ds.split(split)] == [str(tmp_path / "data" / n) for n in names]
    assert ds.split("trainval")[6].path.endswith("000007.jpg")
    assert ds.labels("train").dtype == np.uint8
    with pytest.raises(KeyError, match="has no split 'query'"):
        ds.split("query")


def test_pa100k_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="annotation.mat, data"):
        create_dataset("pa100k", tmp_path)
    wrong = list(load_schema("pa100k").attributes)
    wrong[0], wrong[1] = wrong[1], wrong[0]
    write_pa100k(tmp_path, wrong)
    with pytest.raises(DatasetError, match="attribute names do not match"):
        create_dataset("pa100k", tmp_path)


# --------------------------------------------------------------------------- RAPv2 (fixture RAP_annotation.mat)


def write_rapv2(root: Path, n: int = 20, gender_name: str = "Femal") -> dict:
    """RAP_annotation.mat in the published layout, with the 54 selected attributes scattered among 152."""
    rng = np.random.default_rng(1)
    raw_sel = list(load_schema("rapv2").meta["raw_selected_order"])
    raw_sel[raw_sel.index("Femal")] = gender_name
    positions = np.sort(rng.choice(152, 54, replace=False))  # raw columns of the selected attributes
    raw_names = [f"extra-{i}" for i in range(152)]
    for pos, name in zip(positions, raw_sel, strict=True):
        raw_names[pos] = name
    data = rng.integers(0, 3, (n, 152)).astype(np.uint8)  # 2 = uncertain
    names = [f"CAM01_img_{i:03d}.png" for i in range(n)]
    parts = []
    for _ in range(5):
        perm = rng.permutation(n) + 1
        parts.append({"train_index": perm[None, :10], "val_index": perm[None, 10:14], "test_index": perm[None, 14:]})
    ann = {
        "name": cell(names, (n, 1)),
        "attribute": cell(raw_names, (152, 1)),
        "data": data,
        "selected_attribute": (positions + 1)[None, :],
        "partition_attribute": cell(parts, (1, 5)),
    }
    scipy_io.savemat(str(root / "RAP_annotation.mat"), {"RAP_annotation": ann})
    write_images(root / "RAP_dataset", names)
    return {"data": data, "positions": positions, "parts": parts, "names": names}


def test_rapv2_fixture(tmp_path: Path) -> None:
    raw = write_rapv2(tmp_path)
    schema = load_schema("rapv2")
    order = schema.meta["selected_group_order"]
    cols = raw["positions"][order]
    expect = np.where(raw["data"][:, cols] == 2, 0, raw["data"][:, cols])
    for k in (0, 3):
        ds = create_dataset("rapv2", tmp_path, partition=k)
        assert ds.attributes == schema.attributes
        assert {s: len(v) for s, v in ds.splits.items()} == {"train": 10, "val": 4, "trainval": 14, "test": 6}
        for split in ("train", "val", "test"):
            idx = raw["parts"][k][f"{split}_index"][0] - 1
            np.testing.assert_array_equal(ds.labels(split), expect[idx])
            assert ds.split(split)[0].path == str(tmp_path / "RAP_dataset" / raw["names"][idx[0]])
    # attribute 0 of the model is hs-BaldHead: read it by name from the raw columns
    bald = raw["positions"][schema.meta["raw_selected_order"].index("hs-BaldHead")]
    ds = create_dataset("rapv2", tmp_path)
    first = raw["parts"][0]["train_index"][0][0] - 1
    assert ds.split("train")[0].labels[0] == int(raw["data"][first, bald] == 1)


def test_rapv2_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="RAP_annotation.mat"):
        create_dataset("rapv2", tmp_path)
    write_rapv2(tmp_path, gender_name="Female")  # the spelling in the paper is accepted too
    assert len(create_dataset("rapv2", tmp_path).split("test")) == 6
    for bad in (5, -1):
        with pytest.raises(ValueError, match="partition must be 0..4"):
            create_dataset("rapv2", tmp_path, partition=bad)
    write_rapv2(tmp_path, gender_name="Male")
    with pytest.raises(DatasetError, match="attribute names do not match"):
        create_dataset("rapv2", tmp_path)


# --------------------------------------------------------------------------- UPAR (fixture CSVs)


def write_upar_csv(path: Path, names: list[str], labels: np.ndarray, header: list[str] | None = None) -> None:
    header = header or ["# image", *load_schema("upar").attributes]
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join([n, *map(str, row.tolist())]) for n, row in zip(names, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def test_upar_fixture(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    train_names = [f"data/Market1501/bounding_box_train/{i:04d}_c1s1_000001_00.jpg" for i in range(5)]
    val_names = [f"data/PA100k/data/{i:06d}.jpg" for i in range(3)]
    train_labels = rng.integers(0, 2, (5, 40))
    val_labels = rng.integers(0, 2, (3, 40))
    write_upar_csv(tmp_path / "phase1/annotations/phase1/train/train.csv", train_names, train_labels)
    write_upar_csv(tmp_path / "phase2/annotations/val_gt/val_gt.csv", val_names, val_labels)
    write_images(tmp_path, train_names + val_names)
    ds = create_dataset("upar", tmp_path)
    assert ds.attributes == load_schema("upar").attributes
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 5, "val": 3}
    np.testing.assert_array_equal(ds.labels("train"), train_labels)
    np.testing.assert_array_equal(ds.labels("val"), val_labels)
    assert ds.split("val")[2].path == str(tmp_path / val_names[2])

    write_upar_csv(tmp_path / "mine.csv", val_names, val_labels)
    ds = create_dataset("upar", tmp_path, train_csv="mine.csv", val_csv=None)
    assert list(ds.splits) == ["train"] and len(ds.split("train")) == 3


def test_upar_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="phase1/annotations/phase1/train/train.csv"):
        create_dataset("upar", tmp_path)
    names = ["a.jpg"]
    write_images(tmp_path, names)
    header = ["# image", *load_schema("upar").attributes]
    header[4], header[5] = header[5], header[4]
    write_upar_csv(tmp_path / "swapped.csv", names, np.zeros((1, 40), int), header)
    with pytest.raises(DatasetError, match=r"header does not match.*\(4, 'Hair-Length-Short', 'Gender-Female'\)"):
        create_dataset("upar", tmp_path, train_csv="swapped.csv", val_csv=None)
    bad = np.zeros((1, 40), int)
    bad[0, 3] = 3
    write_upar_csv(tmp_path / "bad.csv", names, bad)
    with pytest.raises(DatasetError, match=r"bad\.csv:2: labels must be 0 or 1"):
        create_dataset("upar", tmp_path, train_csv="bad.csv", val_csv=None)
    write_upar_csv(tmp_path / "noimg.csv", ["missing.jpg"], np.zeros((1, 40), int))
    with pytest.raises(DatasetError, match="missing.jpg"):
        create_dataset("upar", tmp_path, train_csv="noimg.csv", val_csv=None)


# --------------------------------------------------------------------------- Rethinking_of_PAR dataset_all.pkl


def pkl_content(root: Path) -> dict:
    names = [f"{i:06d}.jpg" for i in range(10)]
    label = np.arange(40).reshape(10, 4) % 3  # values 0, 1, 2 (2 = uncertain -> 0)
    write_images(root / "imgs", names)
    return {
        "description": "fixture",
        "root": "imgs",
        "image_name": names,
        "label": label,
        "attr_name": ["Female", "Hat", "Backpack", "SomethingNew"],
        "label_idx": {"eval": [1, 0, 3]},
        "partition": {
            "train": [np.arange(0, 6), np.arange(4, 10)],
            "val": [np.arange(6, 8), np.arange(0, 2)],
            "trainval": [np.arange(0, 8), np.array([4, 5, 6, 7, 8, 9, 0, 1])],
            "test": [np.arange(8, 10), np.arange(2, 4)],
        },
    }


def test_pkl_plain_dict(tmp_path: Path) -> None:
    content = pkl_content(tmp_path)
    (tmp_path / "dataset_all.pkl").write_bytes(pickle.dumps(content))
    ds = create_dataset("pkl", tmp_path)
    assert ds.attributes == ["Hat", "Female", "SomethingNew"]
    assert ds.groups == {"gender": ["Female"], "head": ["Hat"], "other": ["SomethingNew"]}
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 6, "val": 2, "trainval": 8, "test": 2}
    expect = content["label"][:, [1, 0, 3]]
    expect[expect == 2] = 0
    np.testing.assert_array_equal(ds.labels("train"), expect[:6])
    assert ds.split("test")[0].path == str(tmp_path / "imgs" / "000008.jpg")
    ds1 = create_dataset("pkl", tmp_path, partition=1)
    np.testing.assert_array_equal(ds1.labels("train"), expect[4:10])
    with pytest.raises(ValueError, match="partition 2 out of range; this file has 2"):
        create_dataset("pkl", tmp_path, partition=2)
    other = tmp_path / "elsewhere"
    write_images(other, ["000000.jpg", "000006.jpg", "000008.jpg"])
    assert create_dataset("pkl", tmp_path, image_root=other).split("train")[0].path == str(other / "000000.jpg")


def test_pkl_single_partition_and_nested_test(tmp_path: Path) -> None:
    content = pkl_content(tmp_path)
    del content["label_idx"]  # zero-shot files: every attribute is evaluated
    content["partition"] = {
        "train": np.arange(0, 6),
        "test": [[np.array([6, 7]), np.array([9])]],  # UPAR: per-partition list of per-sub-dataset arrays
    }
    pkl_path = tmp_path / "sub" / "zs.pkl"
    pkl_path.parent.mkdir()
    pkl_path.write_bytes(pickle.dumps(content, protocol=5))
    ds = create_dataset("pkl", tmp_path, pkl_path=pkl_path, image_root=tmp_path / "imgs")
    assert ds.attributes == content["attr_name"]
    assert [Path(r.path).name for r in ds.split("test")] == ["000006.jpg", "000007.jpg", "000009.jpg"]
    with pytest.raises(ValueError, match="single partition"):
        create_dataset("pkl", tmp_path, pkl_path=pkl_path, image_root=tmp_path / "imgs", partition=1)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pkl_easydict_without_easydict_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: int
) -> None:
    """A pickle of an ``easydict.EasyDict`` (a dict subclass that mirrors keys as attributes) loads as a dict."""
    module = types.ModuleType("easydict")

    class EasyDict(dict):
        def __setattr__(self, key: str, value: object) -> None:
            super().__setattr__(key, value)
            self[key] = value

    EasyDict.__module__ = "easydict"
    EasyDict.__qualname__ = "EasyDict"
    module.EasyDict = EasyDict

    def wrap(d: dict) -> EasyDict:
        out = EasyDict()
        for k, v in d.items():
            setattr(out, k, wrap(v) if isinstance(v, dict) else v)
        return out

    content = pkl_content(tmp_path)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "easydict", module)
        blob = pickle.dumps(wrap(content), protocol=protocol)
    assert b"easydict" in blob and sys.modules.get("easydict") is not module  # loads without the class
    (tmp_path / "dataset_all.pkl").write_bytes(blob)
    loaded = safe_load(blob)
    assert type(loaded) is dict and type(loaded["partition"]) is dict and loaded["label_idx"]["eval"] == [1, 0, 3]
    ds = create_dataset("pkl", tmp_path)
    assert ds.attributes == ["Hat", "Female", "SomethingNew"] and len(ds.split("trainval")) == 8


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_pkl_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    content = pkl_content(tmp_path)
    content["description"] = _Exploit(marker)
    (tmp_path / "dataset_all.pkl").write_bytes(pickle.dumps(content))
    with pytest.raises(DatasetError, match=r"refusing to load (posix|nt|os)\.system"):
        create_dataset("pkl", tmp_path)
    assert not marker.exists()
    for obj in (types.SimpleNamespace(a=1), eval):
        with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
            safe_load(pickle.dumps(obj))
    assert issubclass(SafeUnpickler, pickle.Unpickler)


def test_pkl_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset_all.pkl does not exist"):
        create_dataset("pkl", tmp_path)
    content = pkl_content(tmp_path)
    del content["attr_name"]
    (tmp_path / "dataset_all.pkl").write_bytes(pickle.dumps(content))
    with pytest.raises(DatasetError, match=r"lacks keys \['attr_name'\]"):
        create_dataset("pkl", tmp_path)
    with pytest.raises(ValueError, match="partition must be an int >= 0"):
        create_dataset("pkl", tmp_path, partition=-1)


def test_infer_groups_uses_packaged_schemas() -> None:
    assert infer_groups(["upblack", "personalMale", "Age-Young", "zzz"]) == {
        "gender": ["personalMale"],
        "age": ["Age-Young"],
        "other": ["upblack", "zzz"],  # raw Market field names are not schema names
    }


def test_loaders_declare_their_schema_and_the_base_resolves_it() -> None:
    """``schema = "peta"`` on the class is all a loader writes; the base fills attributes, groups, homepage."""
    from clear_sdk.schema import load_schema
    from clear_sdk.training.data.base import _REGISTRY, PARDataset

    declared = {name: cls for name, cls in _REGISTRY.items() if isinstance(cls, type) and cls.schema}
    assert {"pa100k", "peta", "rapv2", "market1501", "upar"} <= set(declared)
    for name, cls in declared.items():
        s = load_schema(cls.schema)
        assert (cls.attributes, cls.groups) == (s.attributes, s.groups), name
        assert cls.homepage == s.meta.get("homepage", "") and cls.schema_meta == s.meta

    class Custom(PARDataset):  # a loader that lists its own attributes keeps them
        schema = "peta"
        attributes = ["a", "b"]

    assert Custom.attributes == ["a", "b"]
