"""Attribute-query parsing across dataset schemas: lists, dicts, texts, synonyms, negation, errors."""

from __future__ import annotations

import numpy as np
import pytest

from clear_sdk.errors import QueryError
from clear_sdk.query import parse_query, query_to_vectors
from clear_sdk.schema import load_schema

SYNTHETIC = [
    "Female", "AgeLess18", "Age18-60", "AgeOver60", "Front", "Side", "Back", "Hat", "LongHair", "Backpack",
    "HandBag", "ShortSleeve", "Trousers", "Shorts", "Skirt", "UpperBlack", "UpperWhite", "UpperRed", "UpperBlue",
    "UpperGreen", "UpperYellow", "LowerBlack", "LowerBlue", "LowerGray", "LowerBrown",
]  # fmt: skip


def _schema(name: str) -> tuple[list[str], dict[str, list[str]] | None]:
    if name == "synthetic":
        return SYNTHETIC, None  # no groups: everything must come from the names alone
    s = load_schema(name)
    return s.attributes, s.groups


def _parse(schema: str, query):
    names, groups = _schema(schema)
    return parse_query(query, names, groups)


# ------------------------------------------------------------------------------------------ lists, dicts


def test_list_of_names_is_case_and_separator_insensitive():
    assert _parse("pa100k", ["Female", "backpack", "AGE18-60", "skirt & dress"]) == {
        "Female": True, "Backpack": True, "Age18-60": True, "Skirt&Dress": True,
    }  # fmt: skip
    assert _parse("rapv2", ["hs longhair", "ub_tshirt", "Femal"]) == {
        "hs-LongHair": True, "ub-TShirt": True, "Femal": True,
    }  # fmt: skip
    assert _parse("peta", ["lowerbodytrousers", "personal male"]) == {"lowerBodyTrousers": True, "personalMale": True}
    # list items may be phrases, negations included
    assert _parse("market1501", ["woman", "no backpack", "long hair"]) == {
        "female": True, "backpack": False, "hair-long": True,
    }  # fmt: skip


def test_dict_queries():
    assert _parse("pa100k", {"Female": True, "Backpack": False, "hat": 1}) == {
        "Female": True, "Backpack": False, "Hat": True,
    }  # fmt: skip
    assert _parse("pa100k", {"man": True}) == {"Female": False}
    assert _parse("peta", {"woman": False}) == {"personalMale": True}
    with pytest.raises(QueryError, match="must be True or False"):
        _parse("pa100k", {"Female": "yes"})


def test_unknown_names_list_the_closest():
    with pytest.raises(QueryError) as info:
        _parse("pa100k", ["Female", "Backpak"])
    msg = str(info.value)
    assert "Backpak" in msg and "Backpack" in msg and "attribute_names" in msg
    with pytest.raises(QueryError, match="closest: .*UpperBody-Color-Blue"):
        _parse("upar", {"UpperBody-Colour-Bleu": True})
    with pytest.raises(QueryError, match="xyzzy"):
        _parse("synthetic", "female, xyzzy")
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------------------------------------ texts

CASES = [
    # schema, text, expected
    ("synthetic", "female, backpack, long hair", {"Female": True, "Backpack": True, "LongHair": True}),
    ("synthetic", "male with a hat, no backpack", {"Female": False, "Hat": True, "Backpack": False}),
    ("pa100k", "male with a hat, no backpack", {"Female": False, "Hat": True, "Backpack": False}),
    ("peta", "male with a hat, no backpack", {"personalMale": True, "accessoryHat": True, "carryingBackpack": False}),
    ("peta", "Woman with long hair", {"personalMale": False, "hairLong": True}),
    ("rapv2", "female, backpack, long hair", {"Femal": True, "attachment-Backpack": True, "hs-LongHair": True}),
    ("upar", "a lady with long hair", {"Gender-Female": True, "Hair-Length-Long": True}),
    ("market1501", "Men", {"female": False}),
    # plurals and case
    ("pa100k", "BACKPACKS, Hats, boots", {"Backpack": True, "Hat": True, "boots": True}),
    ("pa100k", "women in shorts", {"Female": True, "Shorts": True}),
    # synonyms
    ("pa100k", "purse", {"HandBag": True}),
    ("rapv2", "handbag", {"attachment-HandBag": True}),
    ("market1501", "hand bag", {"handbag": True}),
    ("upar", "purse", {"Accessory-Bag": True}),
    ("pa100k", "cap", {"Hat": True}),
    ("pa100k", "sunglasses", {"Glasses": True}),
    ("peta", "glasses", {"accessorySunglasses": True}),
    ("upar", "glasses", {"Accessory-Glasses-Normal": True}),
    ("upar", "sunglasses", {"Accessory-Glasses-Sun": True}),
    ("pa100k", "short sleeves", {"ShortSleeve": True}),
    ("pa100k", "t-shirt", {"ShortSleeve": True}),
    ("peta", "T-Shirt", {"upperBodyTshirt": True}),
    ("upar", "short sleeves", {"UpperBody-Length-Short": True}),
    ("pa100k", "dress", {"Skirt&Dress": True}),
    ("synthetic", "dress", {"Skirt": True}),
    ("rapv2", "trousers", {"lb-LongTrousers": True}),
    ("pa100k", "jeans", {"Trousers": True}),
    ("rapv2", "bald", {"hs-BaldHead": True}),
    ("synthetic", "from behind", {"Back": True}),
    # age words resolved against each schema's buckets
    ("synthetic", "kid", {"AgeLess18": True}),
    ("pa100k", "child", {"AgeLess18": True}),
    ("pa100k", "elderly", {"AgeOver60": True}),
    ("pa100k", "adult", {"Age18-60": True}),
    ("peta", "old man", {"personalLarger60": True, "personalMale": True}),
    ("rapv2", "kids", {"AgeLess16": True}),
    ("market1501", "teenager", {"age-teenager": True}),
    ("upar", "children", {"Age-Young": True}),
    ("pa100k", "over 60", {"AgeOver60": True}),
    ("pa100k", "under 18", {"AgeLess18": True}),
    # colours
    ("synthetic", "red top", {"UpperRed": True}),
    ("synthetic", "red shirt", {"UpperRed": True}),
    ("synthetic", "red upper", {"UpperRed": True}),
    ("synthetic", "blue trousers", {"LowerBlue": True, "Trousers": True}),
    ("synthetic", "grey pants", {"LowerGray": True, "Trousers": True}),
    ("market1501", "red shirt, blue pants", {"upper-red": True, "lower-blue": True, "lower-pants": True}),
    ("market1501", "blue jeans", {"lower-blue": True, "lower-pants": True}),
    ("upar", "woman in a red top with blue trousers", {
        "Gender-Female": True, "UpperBody-Color-Red": True, "LowerBody-Color-Blue": True,
        "LowerBody-Type-Trousers&Shorts": True,
    }),
    ("rapv2", "long black hair", {"hs-LongHair": True, "hs-BlackHair": True}),
    # negation
    ("pa100k", "not female", {"Female": False}),
    ("pa100k", "without hat", {"Hat": False}),
    ("pa100k", "doesn't have a backpack", {"Backpack": False}),
    ("pa100k", "female, no hat or glasses", {"Female": True, "Hat": False, "Glasses": False}),
    ("synthetic", "no red top", {"UpperRed": False}),
    ("peta", "not a man", {"personalMale": False}),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "text", "expected"), CASES, ids=[f"{s}:{t}" for s, t, _ in CASES])
def test_text_queries(schema, text, expected):
    assert _parse(schema, text) == expected


@pytest.mark.parametrize(
    ("schema", "text", "match"),
    [
        ("pa100k", "long hair", "no attribute matches 'hair'"),  # PA100K has no hair attribute
        ("pa100k", "red top", "no attribute matches 'red'"),
        ("rapv2", "blue jeans", "no attribute matches 'blue'.*closest: lb-Jeans"),
        ("market1501", "red trousers", "no attribute matches 'red'"),  # no lower red: not the upper one either
        ("market1501", "dress", "no attribute matches 'dress'"),
        ("synthetic", "glasses", "no attribute matches 'glass'"),
        ("pa100k", "bag", "ambiguous: it could be HandBag, ShoulderBag"),
        ("upar", "red", "ambiguous: it could be UpperBody-Color-Red, LowerBody-Color-Red"),
        ("pa100k", "lady, man", "both present and absent"),
        ("pa100k", "hat or glasses", "'or'"),
        ("pa100k", "no", "negation without an attribute"),
        ("pa100k", "   ", "empty query"),
        ("pa100k", "the person", "no attribute"),
    ],
)
def test_bad_text_queries(schema, text, match):
    with pytest.raises(QueryError, match=match):
        _parse(schema, text)


def test_bad_query_types():
    with pytest.raises(QueryError, match="a query is a text"):
        _parse("pa100k", 42)
    with pytest.raises(QueryError, match="empty query"):
        _parse("pa100k", [])
    with pytest.raises(QueryError, match="must be attribute names"):
        _parse("pa100k", [1, 2])


def test_single_partial_match_is_accepted():
    # Market has a red attribute for the upper body only
    assert _parse("market1501", "red") == {"upper-red": True}


# ------------------------------------------------------------------------------------------- vectors


def test_query_to_vectors_with_exclusive_groups():
    names, groups = _schema("pa100k")
    parsed = parse_query("kid, female, no backpack", names, groups)
    hard, mask = query_to_vectors(parsed, names, groups)
    assert hard.dtype == np.float32 and hard.shape == (len(names),)
    assert mask.dtype == bool and mask.shape == (len(names),)
    assert [names[i] for i in np.flatnonzero(hard)] == ["Female", "AgeLess18"]
    # asked: Female, AgeLess18, Backpack; implied absent: the other age buckets
    assert sorted(names[i] for i in np.flatnonzero(mask)) == sorted(
        ["Female", "AgeLess18", "AgeOver60", "Age18-60", "Backpack"]
    )
    with pytest.raises(QueryError, match="only one age"):
        query_to_vectors({"AgeLess18": True, "AgeOver60": True}, names, groups)
    with pytest.raises(QueryError, match="unknown attribute 'Backpak'.*Backpack"):
        query_to_vectors({"Backpak": True}, names, groups)


def test_query_to_vectors_without_groups():
    hard, mask = query_to_vectors({"UpperRed": True, "Hat": False}, SYNTHETIC)
    expected_hard = np.zeros(len(SYNTHETIC), np.float32)
    expected_hard[SYNTHETIC.index("UpperRed")] = 1
    np.testing.assert_array_equal(hard, expected_hard)
    assert [SYNTHETIC[i] for i in np.flatnonzero(mask)] == ["Hat", "UpperRed"]
