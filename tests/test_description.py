"""Pseudo-descriptions (Eq. 7): hand-written sentences per template, tag removal, defaults, detection, round trips."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clear_sdk.description import DescriptionTemplate, describe, get_template, list_templates, template_for
from clear_sdk.errors import QueryError
from clear_sdk.schema import list_schemas, load_schema

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

SYNTHETIC = load_schema("synthetic").attributes

# (schema, positive attributes, expected sentence), written by hand from the template of Eq. 7.
CASES = [
    (
        "pa100k",
        [],
        "This is a photo of a man taken from an unknown angle, is dressed in bottoms and a top with long sleeves "
        "with no motif, walking in shoes, is wearing no hat or glasses, carrying no bag and no backpack.",
    ),
    (
        "pa100k",
        ["Female", "Age18-60", "Back", "HandBag", "ShoulderBag", "ShortSleeve", "UpperLogo", "Trousers", "LowerStripe"],
        "This is a photo of an adult woman taken from the back, is dressed in striped trousers and a top with short "
        "sleeves with logo motif, walking in shoes, is wearing no hat or glasses, carrying a handbag, a shoulder bag "
        "and no backpack.",
    ),
    (
        "pa100k",
        ["AgeOver60", "Side", "Hat", "Glasses", "Backpack", "LongCoat", "Skirt&Dress", "boots", "UpperPlaid"],
        "This is a photo of an old man taken from the side, is dressed in a skirt and a long coat with long sleeves "
        "with plaid motif, walking in boots, is wearing a hat and glasses, carrying no bag and a backpack.",
    ),
    (
        "peta",
        [],
        "This is a photo of a woman with short hair, is dressed in bottoms and a top with long sleeves with no motif, "
        "walking in shoes, is wearing no accessories, carrying no bag and no backpack.",
    ),
    (
        "peta",
        ["personalMale", "personalLess45", "hairLong", "upperBodyFormal", "upperBodyJacket", "lowerBodyFormal"]
        + ["lowerBodyTrousers", "footwearLeatherShoes", "carryingMessengerBag", "accessoryNothing"],
        "This is a photo of an adult man with long hair, is dressed in formal trousers and a formal jacket with long "
        "sleeves with no motif, walking in leather shoes, is wearing no accessories, carrying a messenger bag and no "
        "backpack.",
    ),
    (
        "peta",
        ["personalLarger60", "accessorySunglasses", "accessoryHat", "carryingNothing", "upperBodyTshirt"]
        + ["upperBodyShortSleeve", "upperBodyPlaid", "lowerBodyShorts"],
        "This is a photo of an old woman with short hair, is dressed in shorts and a t-shirt with short sleeves with "
        "plaid motif, walking in shoes, is wearing a hat and sunglasses, carrying no bag and no backpack.",
    ),
    (
        "rapv2",
        [],
        "This is a photo of a man with short hair, is dressed in bottoms and a top with long sleeves, walking in "
        "shoes, is wearing no hat or glasses, carrying no bag and no backpack.",
    ),
    (
        "rapv2",
        ["Femal", "Age17-30", "hs-LongHair", "hs-BlackHair", "ub-TShirt", "ub-ShortSleeve", "lb-Jeans"]
        + ["shoes-Sports", "attachment-Backpack", "Customer", "action-Calling"],
        "This is a photo of a young woman with long black hair, is dressed in jeans and a t-shirt with short sleeves, "
        "walking in sports shoes, is wearing no hat or glasses, carrying no bag and a backpack, is a customer and "
        "calling.",
    ),
    (
        "market1501",
        [],
        "This is a photo of a man with short hair, is dressed in a long dress and a top with long sleeves, is wearing "
        "no hat, carrying no bag and no backpack.",
    ),
    (
        "market1501",
        ["female", "age-adult", "hair-long", "upper-white", "lower-short", "lower-pants", "lower-blue", "handbag"]
        + ["backpack"],
        "This is a photo of an adult woman with long hair, is dressed in short blue pants and a white top with long "
        "sleeves, is wearing no hat, carrying a handbag and a backpack.",
    ),
    (
        "market1501",
        ["age-old", "hat", "upper-short-sleeve", "upper-red", "lower-black"],
        "This is a photo of an old man with short hair, is dressed in a long black dress and a red top with short "
        "sleeves, is wearing a hat, carrying no bag and no backpack.",
    ),
    (
        "upar",
        [],
        "This is a photo of a man with short hair, is dressed in long bottoms and a top with long sleeves, is wearing "
        "no hat or glasses, carrying no bag and no backpack.",
    ),
    (
        "upar",
        ["Age-Young", "Gender-Female", "Hair-Length-Long", "UpperBody-Color-Orange", "LowerBody-Color-Other"]
        + ["LowerBody-Type-Skirt&Dress", "Accessory-Glasses-Sun", "Accessory-Bag"],
        "This is a photo of a young woman with long hair, is dressed in a long other-colored skirt and an orange top "
        "with long sleeves, is wearing sunglasses, carrying a bag and no backpack.",
    ),
    (
        "synthetic",
        [],
        "This is a photo of a man taken from an unknown angle with short hair, is dressed in bottoms and a top with "
        "long sleeves, is wearing no hat, carrying no bag and no backpack.",
    ),
    (
        "synthetic",
        ["Female", "AgeOver60", "Front", "LongHair", "Skirt", "UpperYellow", "LowerBrown", "Hat", "HandBag"],
        "This is a photo of an old woman taken from the front with long hair, is dressed in a brown skirt and a yellow "
        "top with long sleeves, is wearing a hat, carrying a handbag and no backpack.",
    ),
    (
        "synthetic",
        ["Age18-60", "Back", "ShortSleeve", "Shorts", "UpperBlack", "UpperWhite", "LowerGray", "Backpack"],
        "This is a photo of an adult man taken from the back with short hair, is dressed in gray shorts and a black "
        "and white top with short sleeves, is wearing no hat, carrying no bag and a backpack.",
    ),
]


def names_of(schema: str) -> list[str]:
    return load_schema(schema).attributes


@pytest.mark.parametrize(("schema", "positives", "expected"), CASES)
def test_hand_written_sentences(schema: str, positives: list[str], expected: str) -> None:
    names = names_of(schema)
    assert describe(positives, names) == expected  # auto-detected template
    assert describe(positives, names, schema) == expected
    vector = np.array([a in positives for a in names], dtype=np.uint8)
    assert describe(vector, names) == expected
    assert describe(vector.tolist(), names) == expected
    assert describe({a: True for a in positives}, names) == expected
    assert describe({a: (a in positives) for a in names}, names) == expected


def test_missing_tags_are_removed_with_their_words() -> None:
    # PA100K without its view, motif, footwear and bag attributes: those clauses disappear.
    names = ["Female", "AgeLess18", "Age18-60", "Hat", "ShortSleeve", "Trousers"]
    assert describe(["AgeLess18", "Trousers"], names, "pa100k") == (
        "This is a photo of a young man, is dressed in trousers and a top with long sleeves, is wearing no hat or "
        "glasses."
    )
    # no gender, no clothing at all: "person", no "dressed in" clause
    assert describe(["Backpack"], ["Backpack", "HandBag"], "synthetic") == (
        "This is a photo of a person, carrying no bag and a backpack."
    )
    # colours but no garment type: neutral head nouns keep noun phrases
    names = ["UpperRed", "LowerBlue"]
    assert (
        describe(names, names, "synthetic") == "This is a photo of a person, is dressed in blue bottoms and a red top."
    )


def test_defaults_for_all_negative_tags() -> None:
    s = describe([], SYNTHETIC)
    for word in ("a man", "short hair", "long sleeves", "no hat", "no bag and no backpack", "an unknown angle"):
        assert word in s
    # an all-negative tag without a default (age, colours) is left out rather than guessed
    assert "adult" not in s and "black" not in s
    market = load_schema("market1501").attributes
    assert "is dressed in long pants" in describe(["lower-pants"], market)  # lower-short=0 -> "long"


def test_articles_and_lists() -> None:
    names = ["AgeOver60", "Female", "UpperWhite", "UpperRed", "UpperBlue", "LowerBlack", "Trousers", "Skirt"]
    s = describe(["AgeOver60", "UpperWhite", "UpperRed", "UpperBlue", "Trousers", "Skirt"], names, "synthetic")
    assert s.startswith("This is a photo of an old man,")
    # plural noun: no article; several garments: each its own article; several colours: an English list
    assert "is dressed in trousers and a skirt and a white, red and blue top." in s


def test_input_errors_name_the_problem() -> None:
    names = SYNTHETIC
    with pytest.raises(QueryError, match="unknown attributes \\['Wings'\\]; valid: Female, AgeLess18"):
        describe(["Female", "Wings"], names)
    with pytest.raises(QueryError, match="unknown attributes"):
        describe({"wings": True}, names)
    with pytest.raises(QueryError, match="has 3 values but the schema has 25"):
        describe([0, 1, 0], names)
    with pytest.raises(QueryError, match="threshold"):
        describe(np.full(len(names), 0.7), names)
    with pytest.raises(QueryError, match="not a string"):
        describe("Female", names)
    with pytest.raises(QueryError, match="duplicates"):
        describe([], ["Female", "Female"])
    with pytest.raises(QueryError, match="no phrase for attributes \\['Wings'\\]"):
        describe([], ["Female", "Wings"], "synthetic")


@pytest.mark.parametrize("schema", list_schemas())
def test_templates_cover_the_packaged_schemas(schema: str) -> None:
    attrs = load_schema(schema).attributes
    tpl = template_for(attrs)
    assert tpl.name == schema
    colours = [a for names in load_schema(schema).meta.get("colour_groups", {}).values() for a in names]
    assert set(tpl.attribute_names) == set(attrs) | set(colours)  # PETA's colour option included


def test_every_packaged_schema_has_one_template() -> None:
    assert set(list_templates()) == set(list_schemas()) | {"generic"}  # descriptions.json and attributes.json agree
    assert list_templates()[-1] == "generic"


def test_peta_colours_fill_the_colour_tags() -> None:
    names = load_schema("peta").attributes + [a for v in load_schema("peta").meta["colour_groups"].values() for a in v]
    text = describe(["personalMale", "upperBodyRed", "lowerBodyBlack", "lowerBodyTrousers"], names)
    assert "red" in text and "black trousers" in text and template_for(names).name == "peta"


def test_synthetic_template_matches_the_synthetic_dataset() -> None:
    assert template_for(SYNTHETIC).name == "synthetic"
    assert get_template("synthetic").attribute_names == SYNTHETIC  # the renderer's label order
    from clear_sdk.synthetic import SYNTHETIC_ATTRIBUTES

    assert SYNTHETIC_ATTRIBUTES == SYNTHETIC


def test_auto_detection_subsets_case_and_unknown(caplog: pytest.LogCaptureFixture) -> None:
    rap_zs = [a for a in load_schema("rapv2").attributes if a != "Age46-60"]
    assert template_for(rap_zs).name == "rapv2"
    upper = [a.upper() for a in load_schema("market1501").attributes]
    assert template_for(upper).name == "market1501"
    # case-insensitive lookup gives the same sentence
    assert describe(["FEMALE", "HAIR-LONG"], upper) == describe(
        ["female", "hair-long"], load_schema("market1501").attributes
    )
    # names of two schemas at once fit neither
    with caplog.at_level(logging.WARNING, logger="clear_sdk.description"):
        assert template_for(["Female", "personalMale"]).name == "generic"
    assert "generic" in caplog.text


def test_generic_template_lists_positive_names_as_words() -> None:
    names = ["LongHair", "Age18-60", "Skirt&Dress", "hs-BaldHead", "my_attr_name", "TShirt"]
    assert describe(["LongHair", "Age18-60", "TShirt"], names) == (
        "This is a photo of a person with long hair, age 18-60 and t shirt."
    )
    assert describe(["my_attr_name"], names, "generic") == "This is a photo of a person with my attr name."
    assert describe([], names) == "This is a photo of a person."


@pytest.mark.parametrize("name", list_templates())
def test_template_dict_round_trip(name: str) -> None:
    tpl = get_template(name)
    data = json.loads(json.dumps(tpl.to_dict()))  # what a manifest stores
    back = DescriptionTemplate.from_dict(data)
    assert back == tpl
    names = tpl.attribute_names or ["LongHair", "Backpack"]
    positives = names[1::2]
    assert describe(positives, names, data) == describe(positives, names, tpl)


def test_template_validation() -> None:
    with pytest.raises(ValueError, match="unknown tags \\['SHOES'\\]"):
        DescriptionTemplate("x", phrases={"Boots": ("SHOES", "boots")})
    with pytest.raises(ValueError, match="collide"):
        DescriptionTemplate("x", phrases={"Hat": ("ACCESSORY", "a hat"), "hat": ("ACCESSORY", "a hat")})
    with pytest.raises(ValueError, match="newer"):
        DescriptionTemplate.from_dict({**get_template("pa100k").to_dict(), "format_version": 99})
    with pytest.raises(ValueError, match="lacks the key"):
        DescriptionTemplate.from_dict({"phrases": {}})
    with pytest.raises(KeyError, match="valid: pa100k"):
        get_template("nope")
    assert get_template("Market-1501").name == "market1501"
    assert get_template("PETA-ZS").name == "peta"


def test_custom_template() -> None:
    tpl = DescriptionTemplate(
        "shop",
        phrases={
            "IsFemale": ("GENDER", "woman"),
            "RedCoat": ("UPPER_COLOR", "red"),
            "Umbrella": ("BAG", "an umbrella"),
        },
        defaults={"GENDER": "man", "BAG": "nothing"},
    )
    names = ["IsFemale", "RedCoat", "Umbrella"]
    assert describe(["RedCoat"], names, tpl) == "This is a photo of a man, is dressed in a red top, carrying nothing."
    assert describe(["IsFemale", "Umbrella"], names, tpl) == (
        "This is a photo of a woman, is dressed in a top, carrying an umbrella."
    )


def test_real_pa100k_label_rows(shared_data: Path) -> None:
    path = shared_data / "pa100k-2k" / "labels.csv"
    if not path.is_file():
        pytest.skip("pa100k-2k/labels.csv is not in ../shared/data")
    with path.open() as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    unique = {tuple(int(v) for v in r[1:]) for r in rows[1:]}
    sentences = {describe(list(v), names) for v in unique}
    for s in sentences:
        assert s.startswith("This is a photo of ") and s.endswith(".")
        assert "  " not in s and " ," not in s and " ." not in s


def test_runtime_modules_import_no_torch() -> None:
    code = "import sys, clear_sdk.text, clear_sdk.description; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
