"""The unified attribute schema, its per-dataset views, and unknown labels in the loss and the metrics.

Hand-made cases: each mapping kind (exact, complement, union, derived), the masks, and the mapping
file's own consistency (every name it uses exists). Real PETA / Market-1501 files are read from
../shared/data when present, and skipped otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clear_sdk.errors import QueryError
from clear_sdk.metrics import UNKNOWN, attribute_metrics
from clear_sdk.schema import UNIFIED, _entry, attribute_labels, list_views, load_schema, load_view
from clear_sdk.views import from_unified, output_view, to_unified

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# --------------------------------------------------------------------------- the mapping file


def test_every_view_names_only_known_attributes() -> None:
    unified = load_schema(UNIFIED)
    assert list_views() == ["market1501", "pa100k", "peta"]
    for name in list_views():
        view = load_view(name)  # raises on any unknown name
        natives = load_schema(name).attributes + [
            a for g in load_schema(name).meta.get("colour_groups", {}).values() for a in g
        ]
        assert set(view.names) <= set(natives)
        assert set(view.names).isdisjoint(view.not_covered)
        assert set(view.names) | set(view.not_covered) == set(natives)  # every native attribute is accounted for
        for e in view.entries:
            assert set(e.of) <= set(unified.attributes)
            assert e.how in ("exact", "complement", "union")
            assert e.how == "exact" or e.why, f"{name}.{e.native}: a non-exact mapping says why"
    # every unified attribute is learnt from at least one training view, and has a label a person reads
    trained = {u for n in ("peta", "market1501") for e in load_view(n).entries if e.how != "union" for u in e.of}
    trained |= set(load_view("peta").derived)
    assert trained == set(unified.attributes)
    labels = unified.meta["labels"]
    assert set(labels) == set(unified.attributes) and all(labels[a] != a for a in ("hat", "backpack", "age_30_45"))


def test_the_checker_refuses_bad_entries() -> None:
    known = {"female", "hat"}
    with pytest.raises(ValueError, match="unknown attributes \\['hats'\\]"):
        _entry("Hat", {"how": "exact", "of": ["hats"]}, "x", known)
    with pytest.raises(ValueError, match="how='same'"):
        _entry("Hat", {"how": "same", "of": ["hat"]}, "x", known)
    with pytest.raises(ValueError, match="one name"):
        _entry("Hat", {"how": "exact", "of": ["hat", "female"]}, "x", known)
    with pytest.raises(KeyError, match="known views: market1501, pa100k, peta"):
        load_view("rapv2")


def test_shared_meanings_are_one_attribute() -> None:
    peta, market, pa = ({e.native: e for e in load_view(n).entries} for n in ("peta", "market1501", "pa100k"))
    assert peta["personalMale"].how == "complement" and peta["personalMale"].of == ("female",)
    assert market["female"].of == pa["Female"].of == ("female",)
    assert peta["accessoryHat"].of == market["hat"].of == pa["Hat"].of == ("hat",)
    assert peta["carryingBackpack"].of == market["backpack"].of == pa["Backpack"].of == ("backpack",)
    assert peta["upperBodyGrey"].of == market["upper-gray"].of == ("upper_grey",)
    assert pa["Trousers"].how == "union" and set(pa["Trousers"].of) == {"trousers", "jeans"}
    assert attribute_labels(["personalMale", "carryingBackpack"], "peta") == {
        "personalMale": "male",
        "carryingBackpack": "carries a backpack",
    }


# --------------------------------------------------------------------------- labels into the unified schema


def test_to_unified_by_hand() -> None:
    view = load_view("peta")
    names = [e.native for e in view.entries]
    y = np.zeros((2, len(names)), np.uint8)
    y[0, names.index("personalMale")] = 1
    y[1, names.index("lowerBodyShortSkirt")] = 1
    y[1, names.index("accessoryHat")] = 1
    u = to_unified(view, names, y)
    col = {a: i for i, a in enumerate(view.unified)}
    assert u[0, col["female"]] == 0 and u[1, col["female"]] == 1  # complement
    assert u[1, col["hat"]] == 1 and u[0, col["hat"]] == 0  # exact
    assert u[0, col["lower_short"]] == 0 and u[1, col["lower_short"]] == 1  # derived: shorts or short skirt
    # what PETA does not annotate is unknown, never a negative
    for a in ("skirt_or_dress", "age_child", "bag", "handbag"):
        assert (u[:, col[a]] == UNKNOWN).all()

    mview = load_view("market1501")
    mnames = [e.native for e in mview.entries]
    ym = np.zeros((1, len(mnames)), np.uint8)
    ym[0, mnames.index("lower-pants")] = 1  # pants: not a skirt or dress
    um = to_unified(mview, mnames, ym)
    assert um[0, col["skirt_or_dress"]] == 0 and um[0, col["jeans"]] == UNKNOWN and um[0, col["hat"]] == 0


def test_from_unified_by_hand() -> None:
    view = load_view("pa100k")
    unified = list(view.unified)
    probs = np.full((1, len(unified)), 0.1, np.float32)
    probs[0, unified.index("female")] = 0.9
    probs[0, unified.index("short_sleeve")] = 0.7
    probs[0, unified.index("jeans")] = 0.6
    probs[0, unified.index("trousers")] = 0.2
    dec = probs > 0.5
    p, d = from_unified(view, unified, probs, dec)
    got = dict(zip(view.names, p[0].tolist()))
    dgot = dict(zip(view.names, d[0].tolist()))
    assert got["Female"] == pytest.approx(0.9) and dgot["Female"]
    assert got["LongSleeve"] == pytest.approx(0.3) and not dgot["LongSleeve"]  # complement
    assert got["Trousers"] == pytest.approx(0.6) and dgot["Trousers"]  # union: the larger, and any decision
    assert "Front" not in got and "Front" in view.not_covered


def test_output_view_errors_and_groups() -> None:
    unified = load_schema(UNIFIED)
    ov = output_view(UNIFIED, unified.attributes, unified.groups, "market1501")
    assert list(ov.names) == load_schema("market1501").attributes
    assert ov.groups["gender"] == ["female"] and "upper_colour" in ov.groups
    assert output_view("peta", ["a"], {}, None).view is None
    with pytest.raises(QueryError, match="only a unified-schema model"):
        output_view("peta", ["a"], {}, "market1501")
    with pytest.raises(QueryError, match="no view 'nope'"):
        output_view(UNIFIED, unified.attributes, unified.groups, "nope")


# --------------------------------------------------------------------------- masks in metrics and loss


def test_metrics_leave_unknown_out() -> None:
    labels = np.array([[1, UNKNOWN], [0, 1], [UNKNOWN, 0]], np.uint8)
    probs = np.array([[0.9, 0.9], [0.8, 0.9], [0.9, 0.1]])
    m = attribute_metrics(probs, labels)
    # attribute 0 over samples 0, 1: TP 1 (of 1 positive), TN 0 (of 1 negative) -> 0.5
    # attribute 1 over samples 1, 2: TP 1, TN 1 -> 1.0
    assert m["per_attribute_mA"].tolist() == pytest.approx([0.5, 1.0])
    assert m["mA"] == pytest.approx(0.75)
    # instance-based: sample 0 {a0} vs pred {a0}; sample 1 {a1} vs {a0, a1}; sample 2 {} vs {}
    assert m["precision"] == pytest.approx((1 + 0.5 + 0) / 3)
    # the same numbers as evaluating only the known entries by hand: unknown is not a negative
    known_as_negative = attribute_metrics(probs, np.where(labels == UNKNOWN, 0, labels))
    assert known_as_negative["mA"] != pytest.approx(m["mA"])
    all_unknown = attribute_metrics(probs, np.array([[1, UNKNOWN], [0, UNKNOWN], [1, UNKNOWN]], np.uint8))
    assert np.isnan(all_unknown["per_attribute_mA"][1]) and all_unknown["mA"] == pytest.approx(0.5)  # attribute 0 alone


def test_loss_masks_unknown_and_its_gradient() -> None:
    torch = pytest.importorskip("torch")
    from clear_sdk.training.losses import bce_loss

    logits = torch.tensor([[2.0, -1.0, 0.5], [0.3, 1.0, -2.0]], requires_grad=True)
    targets = torch.tensor([[1.0, UNKNOWN, 0.0], [0.0, 1.0, UNKNOWN]])
    ratio = torch.tensor([0.3, 0.5, 0.2])
    loss = bce_loss(logits, targets, ratio)
    loss.backward()
    known = targets <= 1
    t = torch.where(known, targets, torch.zeros_like(targets))
    w = torch.where(t > 0.5, torch.exp(1 - ratio), torch.exp(ratio))
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits.detach(), t, weight=w, reduction="none")
    assert loss.item() == pytest.approx(per[known].mean().item(), rel=1e-6)
    assert logits.grad[0, 1] == 0 and logits.grad[1, 2] == 0 and logits.grad[0, 0] != 0
    # all known: the plain (weighted) mean, as before
    full = bce_loss(logits.detach(), t, ratio)
    assert full.item() == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(logits.detach(), t, weight=w).item()
    )


# --------------------------------------------------------------------------- loaders on the shared data


@pytest.fixture(scope="module")
def unified_ds():
    pytest.importorskip("scipy")
    if not (SHARED / "market1501-train").is_dir() or not (SHARED / "peta-trainval").is_dir():
        pytest.skip("../shared/data not present")
    from clear_sdk.training.data import create_dataset

    return create_dataset("unified", SHARED)


def test_market_partial_root_and_fixed_val(unified_ds) -> None:
    from clear_sdk.training.data import DatasetError, create_dataset

    ds = create_dataset(
        "market1501", SHARED / "market1501-train", annotation=SHARED / "annotations" / "market_attribute.mat"
    )
    assert len(ds.split("trainval")) == 12936
    assert (
        ds.val_ids[:3]
        == create_dataset(
            "market1501", SHARED / "market1501-train", annotation=SHARED / "annotations" / "market_attribute.mat"
        ).val_ids[:3]
    )
    assert len(ds.val_ids) == 75 and not {r.pid for r in ds.split("train")} & set(ds.val_ids)
    with pytest.raises(DatasetError, match="split 'test' needs .*bounding_box_test"):
        ds.split("test")
    with pytest.raises(DatasetError, match="annotation file .* does not exist"):
        create_dataset("market1501", SHARED / "market1501-train", annotation=SHARED / "nope.mat")


def test_unified_loader_masks_what_a_source_lacks(unified_ds) -> None:
    ds = unified_ds
    col = {a: i for i, a in enumerate(ds.attributes)}
    peta, market = ds.labels("peta:val"), ds.labels("market1501:val")
    assert len(peta) == 1900 and len(ds.split("val")) == len(peta) + len(market)
    assert (peta[:, col["age_child"]] == UNKNOWN).all() and (peta[:, col["female"]] != UNKNOWN).all()
    assert (market[:, col["jeans"]] == UNKNOWN).all() and (market[:, col["female"]] != UNKNOWN).all()
    assert {r.source for r in ds.split("train")} == {"peta", "market1501"}
    r = ds.positive_ratio("train")
    assert 0 < r[col["age_child"]] < 1  # counted over Market-1501's images only


def test_calibrated_thresholds_ignore_unknown_labels() -> None:
    pytest.importorskip("torch")
    from clear_sdk.export.bundle_writer import best_thresholds

    probs = np.array([[0.9, 0.2], [0.6, 0.8], [0.3, 0.7], [0.1, 0.4]])
    labels = np.array([[1, 0], [1, UNKNOWN], [0, 1], [0, UNKNOWN]], np.uint8)
    thr = best_thresholds(probs, labels)
    assert 0.3 < thr[0] < 0.6  # separates 0.9, 0.6 (positives) from 0.3, 0.1
    assert 0.2 < thr[1] < 0.7  # only the two annotated rows count: 0.7 positive, 0.2 negative
    # had the unknowns been negatives, 0.8 would push the cut above 0.8 or below 0.7
    assert best_thresholds(probs[:, 1:], np.where(labels[:, 1:] == UNKNOWN, 0, labels[:, 1:]))[0] != thr[1]


def test_unified_age_holds_two_binnings_that_do_not_exclude_each_other() -> None:
    from clear_sdk.query import parse_query, query_to_vectors

    s = load_schema(UNIFIED)
    parsed = parse_query("adult, age 30-45", s.attributes, s.groups)
    hard, mask = query_to_vectors(parsed, s.attributes, s.groups)  # an adult may be 30-45: no error
    known = {s.attributes[i] for i in np.flatnonzero(mask)}
    assert {"age_child", "age_old", "age_under30", "age_over60"} <= known
    with pytest.raises(QueryError, match="only one age can be true"):
        query_to_vectors({"age_child": True, "age_adult": True}, s.attributes, s.groups)
