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
``DescriptionTemplate.grammar``. The built-in templates are ``clear_sdk/data/descriptions.json``
(one entry per dataset of ``attributes.json``), read on first use. Pure standard library: the
runtime imports this without numpy.

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
import functools
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
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
# Built-in templates: data in clear_sdk/data/descriptions.json (attribute names as in attributes.json;
# lookups ignore case and punctuation), read once.

_TEMPLATE_KEYS = frozenset({"grammar", "phrases", "defaults", "notes"})


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[dict[str, DescriptionTemplate], dict[str, str]]:
    """The packaged templates by name (file order: it breaks ties in :func:`template_for`) and name aliases."""
    path = resources.files("clear_sdk").joinpath("data", "descriptions.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    templates: dict[str, DescriptionTemplate] = {}
    for name, entry in data["templates"].items():
        extra = sorted(set(entry) - _TEMPLATE_KEYS)
        if extra:
            raise ValueError(f"{path}: template {name!r} has unknown keys {extra}; valid: {sorted(_TEMPLATE_KEYS)}")
        fields = {k: v for k, v in entry.items() if k != "notes"}  # notes say why a phrase is chosen; not used
        templates[name] = DescriptionTemplate.from_dict(
            {**fields, "name": name, "format_version": data["format_version"]}
        )
    # Other spellings accepted by get_template (after _norm); the zero-shot splits share their parent's schema.
    aliases = dict(data["aliases"])
    bad = sorted(k for k, v in aliases.items() if v not in templates)
    if bad or "generic" not in templates:
        raise ValueError(f"{path}: aliases {bad} name no template, or the 'generic' template is missing")
    return templates, aliases


def list_templates() -> list[str]:
    """Names accepted by :func:`get_template`."""
    return list(_builtin()[0])


def get_template(name: str) -> DescriptionTemplate:
    """A built-in template by dataset name (case- and punctuation-insensitive: "Market-1501" works)."""
    templates, aliases = _builtin()
    key = _norm(name)
    key = aliases.get(key, key)
    if key not in templates:
        raise KeyError(f"no description template {name!r}; valid: {', '.join(templates)}")
    return templates[key]


def template_for(attribute_names: Sequence[str]) -> DescriptionTemplate:
    """The built-in template of a schema, detected from its attribute names.

    A template fits when it has a phrase for every name (so subsets such as the zero-shot splits
    fit too); among those that fit, the one with the fewest names beyond the schema wins, then the
    first in :func:`list_templates` order. Nothing fits: the generic template, with a warning.
    """
    names = list(attribute_names)
    best: tuple[int, DescriptionTemplate] | None = None
    templates = _builtin()[0]
    for template in templates.values():
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
        return templates["generic"]
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
