"""Pseudo-descriptions of attribute queries (CLEAR, Sec. 3.3, Eq. 7).

The soft query of CLEAR is the frozen language model's token embeddings of a sentence built from
the query attributes with the template of Eq. 7::

    This is a photo of [AGE] [GENDER] taken from [CAMERA ANGLE] with [HAIR LENGTH] hair, is dressed
    in a [LOWER COLOR] [LOWER BODY CLOTHING] and a [UPPER COLOR] [UPPER BODY CLOTHING] with
    [SLEEVES LENGTH] sleeves with [UPPER BODY MOTIF] motif, is [WEARING] a [ACCESSORY], carrying
    [BAG] and [BACKPACK].

Training and the runtime must build the *same* sentence for the same attributes, so the per-dataset
part (which attribute fills which tag with which words) is data: a :class:`DescriptionTemplate`,
serialised into the model bundle's manifest, while the sentence grammar lives here, versioned by
``DescriptionTemplate.grammar``. Pure standard library: the runtime imports this without numpy.

How a sentence is built (the choices the paper leaves open):

* **Tags a schema lacks are removed with their auxiliary words** (the paper's "add or remove these
  tags"): no camera-angle attribute means no "taken from ...", no motif means no "with ... motif".
  A tag is *in the schema* when at least one of the schema's attribute names maps to it.
* **Tags the schema has but whose attributes are all negative take the template's default word**,
  chosen to say what the negatives mean: a single binary attribute takes its other value
  (``Female=0`` -> "man", ``LongHair=0`` -> "short" hair, ``ShortSleeve=0`` -> "long" sleeves,
  Market ``lower-pants=0`` -> "dress"); a possession takes "no ..." ("no bag", "no backpack",
  "no hat", "no motif"); footwear takes "shoes"; a view takes "an unknown angle". Tags without a
  sensible neutral word (age, colours, hair colour, clothing style, lower-body pattern/length where
  not binary, RAPv2's body/role/action) are dropped for that query instead of guessing.
* **Several positives in one tag** are listed in the schema's attribute order ("a, b and c").
* **Head nouns the schema lacks** are filled with neutral words so the phrase stays a noun phrase:
  "person" (no gender attribute), "top" (upper colour but no garment type), "bottoms" (lower colour
  but no garment type).
* **Articles** agree with the phrase ("an old man", "black trousers" with no article before a plural
  noun), where Eq. 7 writes a fixed "a".
* **Tags added** beyond Eq. 7, for attributes some datasets have: [HAIR COLOR], [LOWER LENGTH],
  [LOWER STYLE]/[UPPER STYLE] (casual, formal, tight), [LOWER MOTIF] (striped, patterned), a
  footwear clause "walking in [FOOTWEAR]" and a final "is [OTHER]" clause (RAPv2 body shape, role,
  actions). [WEARING] is the fixed verb "wearing".

A schema no built-in template knows falls back to the **generic** template: "This is a photo of a
person with <a>, <b> and <c>." listing the positive attribute names as words (CamelCase, ``-`` and
``_`` split, lower-cased; "This is a photo of a person." when none is positive).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import QueryError

logger = logging.getLogger(__name__)

__all__ = [
    "TAGS",
    "attribute_sentence",
    "DescriptionTemplate",
    "describe",
    "get_template",
    "list_templates",
    "template_for",
]

FORMAT_VERSION = 1

# Tags in the order they appear in the sentence.
TAGS: tuple[str, ...] = (
    "AGE",
    "GENDER",
    "VIEW",
    "HAIR",
    "HAIR_COLOR",
    "LOWER_LENGTH",
    "LOWER_STYLE",
    "LOWER_COLOR",
    "LOWER_MOTIF",
    "LOWER",
    "UPPER_STYLE",
    "UPPER_COLOR",
    "UPPER",
    "SLEEVES",
    "MOTIF",
    "FOOTWEAR",
    "ACCESSORY",
    "BAG",
    "BACKPACK",
    "OTHER",
)
GRAMMARS = ("eq7", "generic")

_LOWER_MODIFIERS = ("LOWER_LENGTH", "LOWER_STYLE", "LOWER_COLOR", "LOWER_MOTIF")
_UPPER_MODIFIERS = ("UPPER_STYLE", "UPPER_COLOR")
# Head nouns used when the schema has a clause's modifiers but no garment type / gender.
_FALLBACK_HEAD = {"GENDER": "person", "LOWER": "bottoms", "UPPER": "top"}
# Head nouns that take no indefinite article ("black trousers", not "a black trousers").
_PLURALS = frozenset(
    "trousers shorts jeans pants bottoms clothes glasses sunglasses shoes sneakers boots sandals".split()
)


def _norm(name: str) -> str:
    """Lookup key of an attribute name: case-insensitive, punctuation-insensitive."""
    return re.sub(r"[^0-9a-z]", "", name.casefold())


def _join(words: Sequence[str]) -> str:
    """English list: "a", "a and b", "a, b and c"."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _with_article(phrase: str) -> str:
    """Prefix "a"/"an" unless the phrase ends in a plural noun."""
    if phrase.split()[-1] in _PLURALS:
        return phrase
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _words_of(name: str) -> str:
    """An attribute name as words, for the generic template: "LongHair" -> "long hair"."""
    s = re.sub(r"([a-z0-9])([A-Z])|([a-zA-Z])([0-9])", lambda m: " ".join(g for g in m.groups() if g), name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", s)
    s = re.sub(r"(?<![0-9])-|-(?![0-9])", " ", s.replace("_", " "))
    s = s.replace("&", " and ")
    return " ".join(s.lower().split())


def attribute_sentence(name: str) -> str:
    """One attribute expanded into a sentence, PromptPAR-style.

    "LongHair" -> "A photo of a pedestrian with the attribute: long hair." A sentence rather than
    the bare phrase because CLIP's text tower was trained on captions; one fixed frame because
    attribute names are not grammatical (``Female``, ``AgeOver60``, ``upblack``). A model config
    may carry hand-written sentences instead.
    """
    return f"A photo of a pedestrian with the attribute: {_words_of(name)}."


@dataclasses.dataclass
class DescriptionTemplate:
    """One dataset schema's fill-in table for the sentence of Eq. 7.

    ``phrases`` maps an attribute name to ``(tag, phrase)``: when the attribute is positive its
    phrase fills the tag (an empty phrase: the attribute is known but adds no word, e.g. PETA's
    ``carryingNothing``, whose meaning the "no bag" default already says). ``defaults`` maps a tag
    to the words used when the schema has the tag but none of its attributes is positive; a tag
    without a default is dropped for such a query. ``grammar`` names the sentence builder
    ("eq7", or "generic" for unknown schemas) so a bundle records how its sentences were made.
    """

    name: str
    phrases: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    defaults: dict[str, str] = dataclasses.field(default_factory=dict)
    grammar: str = "eq7"

    def __post_init__(self) -> None:
        if self.grammar not in GRAMMARS:
            raise ValueError(f"template {self.name!r}: unknown grammar {self.grammar!r}; valid: {', '.join(GRAMMARS)}")
        self.phrases = {str(k): (str(v[0]), str(v[1])) for k, v in self.phrases.items()}
        self.defaults = {str(k): str(v) for k, v in self.defaults.items()}
        bad = sorted(
            {t for t, _ in self.phrases.values() if t not in TAGS} | {t for t in self.defaults if t not in TAGS}
        )
        if bad:
            raise ValueError(f"template {self.name!r}: unknown tags {bad}; valid: {', '.join(TAGS)}")
        self._lookup: dict[str, tuple[str, str]] = {}
        for attr, entry in self.phrases.items():
            key = _norm(attr)
            if key in self._lookup:
                raise ValueError(f"template {self.name!r}: attribute names collide when case is ignored: {attr!r}")
            self._lookup[key] = entry

    # -- lookup ----------------------------------------------------------------------------------
    @property
    def attribute_names(self) -> list[str]:
        """The attribute names this template has phrases for."""
        return list(self.phrases)

    def lookup(self, attribute: str) -> tuple[str, str] | None:
        """``(tag, phrase)`` of an attribute, matched case- and punctuation-insensitively; None if unknown."""
        return self._lookup.get(_norm(attribute))

    def unknown(self, attribute_names: Iterable[str]) -> list[str]:
        """The names this template has no phrase for (empty for the generic template)."""
        if self.grammar == "generic":
            return []
        return [a for a in attribute_names if self.lookup(a) is None]

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in a bundle's manifest so the runtime builds the training sentences."""
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "grammar": self.grammar,
            "phrases": {k: [t, p] for k, (t, p) in self.phrases.items()},
            "defaults": dict(self.defaults),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DescriptionTemplate:
        """Inverse of :meth:`to_dict`; refuses a newer format than this runtime understands."""
        version = int(data.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"description template format {version} is newer than this clear-sdk understands "
                f"({FORMAT_VERSION}); upgrade clear-sdk"
            )
        try:
            return cls(
                name=data["name"],
                phrases={k: tuple(v) for k, v in data.get("phrases", {}).items()},
                defaults=dict(data.get("defaults", {})),
                grammar=data.get("grammar", "eq7"),
            )
        except KeyError as e:
            raise ValueError(f"description template dict lacks the key {e}; expected the output of to_dict()") from e

    # -- sentence ----------------------------------------------------------------------------------
    def describe(self, attributes: Any, attribute_names: Sequence[str]) -> str:
        """The pseudo-description of one attribute set; see :func:`describe` for the accepted forms."""
        names = list(attribute_names)
        positives = _positives(attributes, names)
        if self.grammar == "generic":
            words = [_words_of(a) for a in names if a in positives]
            return f"This is a photo of a person with {_join(words)}." if words else "This is a photo of a person."
        unknown = self.unknown(names)
        if unknown:
            raise QueryError(
                f"template {self.name!r} has no phrase for attributes {unknown}; pick the template of this schema "
                f"(valid: {', '.join(list_templates())}), pass template='generic', or add phrases to the template"
            )
        present: set[str] = set()
        filled: dict[str, list[str]] = {}
        for a in names:
            tag, phrase = self._lookup[_norm(a)]
            present.add(tag)
            if a in positives and phrase and phrase not in filled.setdefault(tag, []):
                filled[tag].append(phrase)
        for tag in present:
            if not filled.get(tag) and self.defaults.get(tag):
                filled[tag] = [self.defaults[tag]]
        return _render_eq7(present, filled)

    def words(self, attributes: Any, attribute_names: Sequence[str]) -> str:
        """Table 6's W query: the positive attributes' phrases alone ("man, a backpack, red"), no sentence."""
        names = list(attribute_names)
        positives = _positives(attributes, names)
        out: list[str] = []
        for a in names:
            found = self.lookup(a) if a in positives else None
            phrase = found[1] if found else (_words_of(a) if a in positives else "")
            if phrase and phrase not in out:
                out.append(phrase)
        return ", ".join(out) or "a person"


def _positives(attributes: Any, names: list[str]) -> set[str]:
    """Normalise a dict / list of positive names / binary vector to the set of positive names."""
    if len(set(names)) != len(names):
        dup = sorted({a for a in names if names.count(a) > 1})
        raise QueryError(f"attribute_names has duplicates {dup}; pass the schema's attribute list")
    valid = set(names)
    if isinstance(attributes, Mapping):
        unknown = [k for k in attributes if k not in valid]
        if unknown:
            raise QueryError(f"unknown attributes {unknown}; valid: {', '.join(names)}")
        return {k for k, v in attributes.items() if _as_bit(v, k)}
    if isinstance(attributes, (str, bytes)):
        raise QueryError(f"attributes must be a dict, a list of names or a binary vector, not a string: {attributes!r}")
    values = attributes.tolist() if hasattr(attributes, "tolist") else list(attributes)
    if values and all(isinstance(v, str) for v in values):
        unknown = [v for v in values if v not in valid]
        if unknown:
            raise QueryError(f"unknown attributes {unknown}; valid: {', '.join(names)}")
        return set(values)
    if any(isinstance(v, str) for v in values):
        raise QueryError("attributes mixes names and numbers; pass either positive names or a binary vector")
    if not values:
        return set()
    if len(values) != len(names):
        raise QueryError(f"binary attribute vector has {len(values)} values but the schema has {len(names)} attributes")
    return {a for a, v in zip(names, values) if _as_bit(v, a)}


def _as_bit(value: Any, name: str) -> bool:
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    raise QueryError(f"attribute {name!r} has value {value!r}; expected 0/1 or a bool (threshold probabilities first)")


def _render_eq7(present: set[str], filled: dict[str, list[str]]) -> str:
    """Assemble the sentence of Eq. 7 from the filled tags; ``present`` = tags the schema has."""

    def words(tag: str) -> str:
        return _join(filled.get(tag, []))

    def garment(modifiers: tuple[str, ...], tag: str) -> str:
        # modifiers go on the first head noun; each head noun takes its own article
        heads = filled.get(tag) or [_FALLBACK_HEAD[tag]]
        first = " ".join(w for w in (*map(words, modifiers), heads[0]) if w)
        return _join([_with_article(first), *map(_with_article, heads[1:])])

    subject = " ".join(w for w in (words("AGE"), words("GENDER") or _FALLBACK_HEAD["GENDER"]) if w)
    first = "This is a photo of " + _with_article(subject)
    if words("VIEW"):
        first += " taken from " + words("VIEW")
    hair = " ".join(w for w in (words("HAIR"), words("HAIR_COLOR")) if w)
    if hair:
        first += f" with {hair} hair"
    clauses = [first]

    garments = []
    if present & {*_LOWER_MODIFIERS, "LOWER"}:
        garments.append(garment(_LOWER_MODIFIERS, "LOWER"))
    if present & {*_UPPER_MODIFIERS, "UPPER", "SLEEVES", "MOTIF"}:
        garments.append(garment(_UPPER_MODIFIERS, "UPPER"))
    if garments:
        dressed = "is dressed in " + " and ".join(garments)
        if words("SLEEVES"):
            dressed += f" with {words('SLEEVES')} sleeves"
        if words("MOTIF"):
            dressed += f" with {words('MOTIF')} motif"
        clauses.append(dressed)
    if words("FOOTWEAR"):
        clauses.append("walking in " + words("FOOTWEAR"))
    if words("ACCESSORY"):
        clauses.append("is wearing " + words("ACCESSORY"))
    carried = filled.get("BAG", []) + filled.get("BACKPACK", [])
    if carried:
        clauses.append("carrying " + _join(carried))
    if words("OTHER"):
        clauses.append("is " + words("OTHER"))
    return ", ".join(clauses) + "."


# ---------------------------------------------------------------------------------------------------
# Built-in templates. Attribute names are those of clear_sdk/data/attributes.json (and the synthetic
# dataset); lookups ignore case and punctuation.


def _colors(prefix: str, tag: str, colors: Iterable[str], words: Mapping[str, str] | None = None) -> dict:
    words = words or {}
    return {f"{prefix}{c}": (tag, words.get(c, c.lower())) for c in colors}


_PA100K = DescriptionTemplate(
    name="pa100k",
    phrases={
        "Female": ("GENDER", "woman"),
        "AgeOver60": ("AGE", "old"),
        "Age18-60": ("AGE", "adult"),
        "AgeLess18": ("AGE", "young"),
        "Front": ("VIEW", "the front"),
        "Side": ("VIEW", "the side"),
        "Back": ("VIEW", "the back"),
        "Hat": ("ACCESSORY", "a hat"),
        "Glasses": ("ACCESSORY", "glasses"),
        "HandBag": ("BAG", "a handbag"),
        "ShoulderBag": ("BAG", "a shoulder bag"),
        "Backpack": ("BACKPACK", "a backpack"),
        "HoldObjectsInFront": ("BAG", "an object in front"),
        "ShortSleeve": ("SLEEVES", "short"),
        "LongSleeve": ("SLEEVES", "long"),
        "UpperStride": ("MOTIF", "stripe"),
        "UpperLogo": ("MOTIF", "logo"),
        "UpperPlaid": ("MOTIF", "plaid"),
        "UpperSplice": ("MOTIF", "splice"),
        "LowerStripe": ("LOWER_MOTIF", "striped"),
        "LowerPattern": ("LOWER_MOTIF", "patterned"),
        "LongCoat": ("UPPER", "long coat"),  # a coat is upper-body clothing, whatever PA100K's grouping
        "Trousers": ("LOWER", "trousers"),
        "Shorts": ("LOWER", "shorts"),
        "Skirt&Dress": ("LOWER", "skirt"),
        "boots": ("FOOTWEAR", "boots"),
    },
    defaults={
        "GENDER": "man",
        "VIEW": "an unknown angle",
        "SLEEVES": "long",
        "MOTIF": "no",
        "UPPER": "top",
        "LOWER": "bottoms",
        "FOOTWEAR": "shoes",
        "ACCESSORY": "no hat or glasses",
        "BAG": "no bag",
        "BACKPACK": "no backpack",
    },
)

_PETA_COLOURS = ("Black", "Blue", "Brown", "Green", "Grey", "Orange", "Pink", "Purple", "Red", "White", "Yellow")

_PETA = DescriptionTemplate(
    name="peta",
    phrases={
        "accessoryHat": ("ACCESSORY", "a hat"),
        "accessoryMuffler": ("ACCESSORY", "a muffler"),
        "accessoryNothing": ("ACCESSORY", ""),
        "accessorySunglasses": ("ACCESSORY", "sunglasses"),
        "hairLong": ("HAIR", "long"),
        "upperBodyCasual": ("UPPER_STYLE", "casual"),
        "upperBodyFormal": ("UPPER_STYLE", "formal"),
        "upperBodyJacket": ("UPPER", "jacket"),
        "upperBodyLogo": ("MOTIF", "logo"),
        "upperBodyPlaid": ("MOTIF", "plaid"),
        "upperBodyShortSleeve": ("SLEEVES", "short"),
        "upperBodyThinStripes": ("MOTIF", "thin stripe"),
        "upperBodyTshirt": ("UPPER", "t-shirt"),
        "upperBodyOther": ("UPPER", "other top"),
        "upperBodyVNeck": ("UPPER", "v-neck top"),
        "lowerBodyCasual": ("LOWER_STYLE", "casual"),
        "lowerBodyFormal": ("LOWER_STYLE", "formal"),
        "lowerBodyJeans": ("LOWER", "jeans"),
        "lowerBodyShorts": ("LOWER", "shorts"),
        "lowerBodyShortSkirt": ("LOWER", "short skirt"),
        "lowerBodyTrousers": ("LOWER", "trousers"),
        "footwearLeatherShoes": ("FOOTWEAR", "leather shoes"),
        "footwearSandals": ("FOOTWEAR", "sandals"),
        "footwearShoes": ("FOOTWEAR", "shoes"),
        "footwearSneaker": ("FOOTWEAR", "sneakers"),
        "carryingBackpack": ("BACKPACK", "a backpack"),
        "carryingOther": ("BAG", "other things"),
        "carryingMessengerBag": ("BAG", "a messenger bag"),
        "carryingNothing": ("BAG", ""),
        "carryingPlasticBags": ("BAG", "plastic bags"),
        "personalLess30": ("AGE", "young"),
        "personalLess45": ("AGE", "adult"),
        "personalLess60": ("AGE", "middle-aged"),
        "personalLarger60": ("AGE", "old"),
        "personalMale": ("GENDER", "man"),
        # the colour option of the peta loader (PETA's raw upper/lower-body colour labels)
        **_colors("upperBody", "UPPER_COLOR", _PETA_COLOURS),
        **_colors("lowerBody", "LOWER_COLOR", _PETA_COLOURS),
    },
    defaults={
        "GENDER": "woman",
        "HAIR": "short",
        "SLEEVES": "long",
        "MOTIF": "no",
        "UPPER": "top",
        "LOWER": "bottoms",
        "FOOTWEAR": "shoes",
        "ACCESSORY": "no accessories",
        "BAG": "no bag",
        "BACKPACK": "no backpack",
    },
)

_RAPV2 = DescriptionTemplate(
    name="rapv2",
    phrases={
        "hs-BaldHead": ("HAIR", "no"),
        "hs-LongHair": ("HAIR", "long"),
        "hs-BlackHair": ("HAIR_COLOR", "black"),
        "hs-Hat": ("ACCESSORY", "a hat"),
        "hs-Glasses": ("ACCESSORY", "glasses"),
        "ub-Shirt": ("UPPER", "shirt"),
        "ub-Sweater": ("UPPER", "sweater"),
        "ub-Vest": ("UPPER", "vest"),
        "ub-TShirt": ("UPPER", "t-shirt"),
        "ub-Cotton": ("UPPER", "padded coat"),
        "ub-Jacket": ("UPPER", "jacket"),
        "ub-SuitUp": ("UPPER", "suit"),
        "ub-Tight": ("UPPER_STYLE", "tight"),
        "ub-ShortSleeve": ("SLEEVES", "short"),
        "ub-Others": ("UPPER", "other top"),
        "lb-LongTrousers": ("LOWER", "trousers"),
        "lb-Skirt": ("LOWER", "skirt"),
        "lb-ShortSkirt": ("LOWER", "short skirt"),
        "lb-Dress": ("LOWER", "dress"),
        "lb-Jeans": ("LOWER", "jeans"),
        "lb-TightTrousers": ("LOWER", "tight trousers"),
        "shoes-Leather": ("FOOTWEAR", "leather shoes"),
        "shoes-Sports": ("FOOTWEAR", "sports shoes"),
        "shoes-Boots": ("FOOTWEAR", "boots"),
        "shoes-Cloth": ("FOOTWEAR", "cloth shoes"),
        "shoes-Casual": ("FOOTWEAR", "casual shoes"),
        "shoes-Other": ("FOOTWEAR", "other shoes"),
        "attachment-Backpack": ("BACKPACK", "a backpack"),
        "attachment-ShoulderBag": ("BAG", "a shoulder bag"),
        "attachment-HandBag": ("BAG", "a handbag"),
        "attachment-Box": ("BAG", "a box"),
        "attachment-PlasticBag": ("BAG", "a plastic bag"),
        "attachment-PaperBag": ("BAG", "a paper bag"),
        "attachment-HandTrunk": ("BAG", "a suitcase"),
        "attachment-Other": ("BAG", "something else"),
        "AgeLess16": ("AGE", "teenage"),
        "Age17-30": ("AGE", "young"),
        "Age31-45": ("AGE", "adult"),
        "Age46-60": ("AGE", "middle-aged"),
        "Femal": ("GENDER", "woman"),  # the raw RAPv2 spelling (annotation.md writes "Female")
        "BodyFat": ("OTHER", "fat"),
        "BodyNormal": ("OTHER", "of normal build"),
        "BodyThin": ("OTHER", "thin"),
        "Customer": ("OTHER", "a customer"),
        "Employee": ("OTHER", "an employee"),
        "action-Calling": ("OTHER", "calling"),
        "action-Talking": ("OTHER", "talking"),
        "action-Gathering": ("OTHER", "gathering"),
        "action-Holding": ("OTHER", "holding something"),
        "action-Pushing": ("OTHER", "pushing something"),
        "action-Pulling": ("OTHER", "pulling something"),
        "action-CarryingByArm": ("OTHER", "carrying something by arm"),
        "action-CarryingByHand": ("OTHER", "carrying something by hand"),
        "action-Other": ("OTHER", "doing something else"),
    },
    defaults={
        "GENDER": "man",
        "HAIR": "short",
        "SLEEVES": "long",
        "UPPER": "top",
        "LOWER": "bottoms",
        "FOOTWEAR": "shoes",
        "ACCESSORY": "no hat or glasses",
        "BAG": "no bag",
        "BACKPACK": "no backpack",
    },
)

_MARKET_UP = ("black", "white", "red", "purple", "yellow", "gray", "blue", "green")
_MARKET_DOWN = ("black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown")
_MARKET1501 = DescriptionTemplate(
    name="market1501",
    phrases={
        "female": ("GENDER", "woman"),
        "age-young": ("AGE", "young"),
        "age-teenager": ("AGE", "teenage"),
        "age-adult": ("AGE", "adult"),
        "age-old": ("AGE", "old"),
        "hair-long": ("HAIR", "long"),
        "hat": ("ACCESSORY", "a hat"),
        "upper-short-sleeve": ("SLEEVES", "short"),
        **_colors("upper-", "UPPER_COLOR", _MARKET_UP),
        "lower-short": ("LOWER_LENGTH", "short"),
        "lower-pants": ("LOWER", "pants"),  # market_attribute.mat "clothes": 1 = dress, 2 = pants
        **_colors("lower-", "LOWER_COLOR", _MARKET_DOWN),
        "backpack": ("BACKPACK", "a backpack"),
        "bag": ("BAG", "a bag"),
        "handbag": ("BAG", "a handbag"),
    },
    defaults={
        "GENDER": "man",
        "HAIR": "short",
        "SLEEVES": "long",
        "LOWER_LENGTH": "long",
        "LOWER": "dress",
        "ACCESSORY": "no hat",
        "BAG": "no bag",
        "BACKPACK": "no backpack",
    },
)

_UPAR_COLORS = (
    "Black",
    "Blue",
    "Brown",
    "Green",
    "Grey",
    "Orange",
    "Pink",
    "Purple",
    "Red",
    "White",
    "Yellow",
    "Other",
)
_UPAR = DescriptionTemplate(
    name="upar",
    phrases={
        "Age-Young": ("AGE", "young"),
        "Age-Adult": ("AGE", "adult"),
        "Age-Old": ("AGE", "old"),
        "Gender-Female": ("GENDER", "woman"),
        "Hair-Length-Short": ("HAIR", "short"),
        "Hair-Length-Long": ("HAIR", "long"),
        "Hair-Length-Bald": ("HAIR", "no"),
        "UpperBody-Length-Short": ("SLEEVES", "short"),
        **_colors("UpperBody-Color-", "UPPER_COLOR", _UPAR_COLORS, {"Other": "other-colored"}),
        "LowerBody-Length-Short": ("LOWER_LENGTH", "short"),
        **_colors("LowerBody-Color-", "LOWER_COLOR", _UPAR_COLORS, {"Other": "other-colored"}),
        "LowerBody-Type-Trousers&Shorts": ("LOWER", "pants"),
        "LowerBody-Type-Skirt&Dress": ("LOWER", "skirt"),
        "Accessory-Backpack": ("BACKPACK", "a backpack"),
        "Accessory-Bag": ("BAG", "a bag"),
        "Accessory-Glasses-Normal": ("ACCESSORY", "glasses"),
        "Accessory-Glasses-Sun": ("ACCESSORY", "sunglasses"),
        "Accessory-Hat": ("ACCESSORY", "a hat"),
    },
    defaults={
        "GENDER": "man",
        "HAIR": "short",
        "SLEEVES": "long",
        "LOWER_LENGTH": "long",
        "LOWER": "bottoms",
        "ACCESSORY": "no hat or glasses",
        "BAG": "no bag",
        "BACKPACK": "no backpack",
    },
)

_SYNTHETIC = DescriptionTemplate(
    name="synthetic",
    phrases={
        "Female": ("GENDER", "woman"),
        "AgeLess18": ("AGE", "young"),
        "Age18-60": ("AGE", "adult"),
        "AgeOver60": ("AGE", "old"),
        "Front": ("VIEW", "the front"),
        "Side": ("VIEW", "the side"),
        "Back": ("VIEW", "the back"),
        "Hat": ("ACCESSORY", "a hat"),
        "LongHair": ("HAIR", "long"),
        "Backpack": ("BACKPACK", "a backpack"),
        "HandBag": ("BAG", "a handbag"),
        "ShortSleeve": ("SLEEVES", "short"),
        "Trousers": ("LOWER", "trousers"),
        "Shorts": ("LOWER", "shorts"),
        "Skirt": ("LOWER", "skirt"),
        **_colors("Upper", "UPPER_COLOR", ("Black", "White", "Red", "Blue", "Green", "Yellow")),
        **_colors("Lower", "LOWER_COLOR", ("Black", "Blue", "Gray", "Brown")),
    },
    defaults={
        "GENDER": "man",
        "VIEW": "an unknown angle",
        "HAIR": "short",
        "SLEEVES": "long",
        "LOWER": "bottoms",
        "ACCESSORY": "no hat",
        "BAG": "no bag",
        "BACKPACK": "no backpack",
    },
)

_GENERIC = DescriptionTemplate(name="generic", grammar="generic")

_TEMPLATES: dict[str, DescriptionTemplate] = {
    t.name: t for t in (_PA100K, _PETA, _RAPV2, _MARKET1501, _UPAR, _SYNTHETIC, _GENERIC)
}
# Other spellings accepted by get_template (after _norm); the zero-shot splits share their parent's schema.
_ALIASES = {"market": "market1501", "rap": "rapv2", "rap2": "rapv2", "rapzs": "rapv2", "petazs": "peta"}


def list_templates() -> list[str]:
    """Names accepted by :func:`get_template`."""
    return list(_TEMPLATES)


def get_template(name: str) -> DescriptionTemplate:
    """A built-in template by dataset name (case- and punctuation-insensitive: "Market-1501" works)."""
    key = _norm(name)
    key = _ALIASES.get(key, key)
    if key not in _TEMPLATES:
        raise KeyError(f"no description template {name!r}; valid: {', '.join(_TEMPLATES)}")
    return _TEMPLATES[key]


def template_for(attribute_names: Sequence[str]) -> DescriptionTemplate:
    """The built-in template of a schema, detected from its attribute names.

    A template fits when it has a phrase for every name (so subsets such as the zero-shot splits
    fit too); among those that fit, the one with the fewest names beyond the schema wins, then the
    first in :func:`list_templates` order. Nothing fits: the generic template, with a warning.
    """
    names = list(attribute_names)
    best: tuple[int, DescriptionTemplate] | None = None
    for template in _TEMPLATES.values():
        if template.grammar == "generic" or template.unknown(names):
            continue
        extra = len(template.phrases) - len({_norm(a) for a in names})
        if best is None or extra < best[0]:
            best = (extra, template)
    if best is None:
        logger.warning(
            "no built-in description template knows all of %d attribute names (e.g. %s); using the generic one",
            len(names),
            ", ".join(names[:5]),
        )
        return _GENERIC
    return best[1]


def describe(
    attributes: Mapping[str, bool] | Sequence[str] | Sequence[int] | Any,
    attribute_names: Sequence[str],
    template: str | DescriptionTemplate | Mapping[str, Any] = "auto",
) -> str:
    """The pseudo-description (Eq. 7) of one attribute set.

    ``attributes`` is a dict name -> bool (missing names are negative), the list of positive names,
    or a binary vector (list / numpy array of 0/1) in ``attribute_names`` order. ``template`` is
    "auto" (detected from ``attribute_names``), a built-in name, a :class:`DescriptionTemplate`,
    or its :meth:`~DescriptionTemplate.to_dict` form (as stored in a bundle manifest).
    """
    if isinstance(template, DescriptionTemplate):
        tpl = template
    elif isinstance(template, Mapping):
        tpl = DescriptionTemplate.from_dict(template)
    elif template == "auto":
        tpl = template_for(attribute_names)
    else:
        tpl = get_template(template)
    return tpl.describe(attributes, attribute_names)
