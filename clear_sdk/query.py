"""Attribute queries for AttributeSearcher: a list, a dict or a short text -> {attribute name: wanted}.

One parser serves every dataset schema (PA100K, PETA, RAPv2, Market-1501, UPAR, synthetic, ...)
because it never lists a schema's names: each attribute name is split into normalised tokens
(separators and CamelCase: ``"lowerBodyTrousers"`` -> lower trouser, ``"hs-LongHair"`` -> long hair,
``"UpperBody-Color-Red"`` -> upper red; category prefixes such as hs/ub/lb/accessory/carrying are
mapped or dropped) and the words of a query are normalised the same way (case, plurals, synonyms:
woman -> female, pants -> trouser, top -> upper, cap -> hat, ...). A phrase then selects the
attributes whose tokens it names, preferring exact matches; an attribute may lack at most one of its
tokens from the phrase (``"red"`` -> ``upper-red`` when only the upper body has a red attribute), and a
tie between such partial matches is an ambiguity error that lists the candidates. Garment words
locate colours (``"blue jeans"`` -> lower blue, plus the trousers attribute where there is one).

Schema-dependent concepts are resolved per schema: gender words map to the schema's Female or Male
attribute (``"man"`` is ``Female: False`` where only Female exists); age words (kid, teenager,
adult, elderly) map to the age bucket containing a representative age (8, 15, 35, 70 years) or the
nearest one. Text syntax: phrases are separated by commas, "and", "with", "wearing", ...; "no X",
"not X", "without X" negate a phrase (up to the next separator; "no hat or glasses" negates both).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from clear_sdk.errors import QueryError

__all__ = [
    "DEFAULT_QUERY_FORM",
    "EXCLUSIVE_GROUPS",
    "QUERY_ENCODINGS",
    "QUERY_FORMS",
    "hard_input",
    "parse_query",
    "query_form_inputs",
    "query_to_vectors",
]

#: How a hard query reaches f_attr: "binary" (CLEAR's: 1 wanted, 0 otherwise, so an attribute the query does
#: not name reads as absent) or "signed" (ours: +1 wanted, -1 must be absent, 0 not asked; a training label the
#: dataset does not annotate is 0 too), which lets one model answer whole-vector and partial queries.
QUERY_ENCODINGS: tuple[str, ...] = ("binary", "signed")

#: The retrieval stage's query forms (the paper's Table 6) and the query-graph inputs each reads: "hard+soft"
#: (HA+SP, the paper's: E^v's two halves face the attribute vector and the pseudo-description), "hard" (HA: the
#: attribute vector alone), "soft" (SP: the pseudo-description), "words" (W: the attribute words, no template).
_FORM_INPUTS: dict[str, tuple[str, ...]] = {
    "hard+soft": ("hard", "soft"),
    "hard": ("hard",),
    "soft": ("soft",),
    "words": ("soft",),
}
QUERY_FORMS: tuple[str, ...] = tuple(_FORM_INPUTS)
#: The form of every bundle and checkpoint written before query forms existed, and training's default.
DEFAULT_QUERY_FORM = "hard+soft"


def query_form_inputs(form: str) -> tuple[str, ...]:
    """The query-graph inputs (``"hard"``, ``"soft"``) a query form reads; both: E^v is two halves."""
    try:
        return _FORM_INPUTS[form]
    except KeyError:
        raise ValueError(f"unknown query_form {form!r}; choose one of {', '.join(QUERY_FORMS)}") from None


#: Groups whose members are mutually exclusive (one age bucket, one view): asking for one member
#: implies the others are absent.
EXCLUSIVE_GROUPS: frozenset[str] = frozenset({"age", "view"})

_LIST_HINT = "The valid names are the searcher's attribute_names (or run `clear-sdk info --bundle BUNDLE`)"

# word -> canonical tokens (applied to query words and to the words of attribute names alike)
_WORD_MAP: dict[str, tuple[str, ...]] = {}


def _syn(tokens: tuple[str, ...], *words: str) -> None:
    for w in words:
        _WORD_MAP[w] = tokens


_syn(("female",), "woman", "women", "lady", "ladies", "girl", "girls", "feminine", "femal", "females")
_syn(("male",), "man", "men", "guy", "guys", "gentleman", "gentlemen", "boy", "boys", "masculine", "males")
_syn(("child",), "kid", "kids", "child", "children", "toddler", "toddlers", "infant", "baby", "babies")
_syn(("teenager",), "teen", "teens", "teenager", "teenagers", "teenage", "adolescent", "adolescents")
_syn(("old",), "old", "elderly", "senior", "seniors", "aged", "older", "elder", "elders")
_syn(("less",), "under", "below", "younger", "less")
_syn(("over",), "over", "above", "larger", "greater")
_syn(("gray",), "grey", "gray")
_syn(("upper",), "up", "ub", "top", "tops", "upperbody", "torso", "upper")
_syn(("lower",), "down", "lb", "bottom", "bottoms", "lowerbody", "lower")
_syn(("trouser",), "pants", "pant", "trousers", "trouser", "slacks")
_syn(("jean",), "jeans", "jean", "denim")
_syn(("shorts",), "shorts")
_syn(("tshirt",), "tshirt", "tshirts", "tee", "tees")
_syn(("short", "sleeve"), "shortsleeve", "shortsleeves")
_syn(("long", "sleeve"), "longsleeve", "longsleeves")
_syn(("shoe",), "footwear", "shoes", "shoe")
_syn(("sneaker",), "sneakers", "sneaker", "trainers")
_syn(("hat",), "hat", "hats", "cap", "caps", "beanie")
_syn(("glass",), "glasses", "spectacles", "eyeglasses")
_syn(("sun", "glass"), "sunglasses", "sunglass", "shades")
_syn(("hand", "bag"), "handbag", "handbags", "purse", "purses")
_syn(("shoulder", "bag"), "shoulderbag", "shoulderbags")
_syn(("backpack",), "backpack", "backpacks", "rucksack", "rucksacks", "knapsack")
_syn(("long", "hair"), "longhair")
_syn(("hold",), "hold", "holds", "holding")
_syn(("object",), "object", "objects", "thing", "things")
_syn(("back",), "back", "behind", "rear")
_syn(("stripe",), "stripe", "stripes", "striped", "stride")
_syn(("sport",), "sport", "sports", "sporty")
_syn(("other",), "other", "others")

# words that carry no attribute meaning (query filler, and the category prefixes of attribute names)
_STOP = frozenset(
    """a an the this that person people pedestrian pedestrians someone somebody who is are was be
    wearing wears wear worn has have having in on of at by from to than as view facing does do did can
    body type color colour coloured colored length accessory accessories attachment carrying personal hs
    gender action age aged clothes clothing some any very dressed""".split()
)

# a garment word implies the body part it is on (it locates a colour: "red shirt" -> upper red)
_PART: dict[str, str] = {
    **dict.fromkeys(
        ("shirt", "tshirt", "jacket", "coat", "sweater", "vest", "sleeve", "blouse", "suit", "vneck", "hoodie"),
        "upper",
    ),
    **dict.fromkeys(("trouser", "jean", "shorts", "skirt", "dress"), "lower"),
    **dict.fromkeys(("sneaker", "boot", "sandal"), "shoe"),
}
_BODY_PARTS = frozenset({"upper", "lower", "shoe"})
_PART_GROUPS = {"upper": ("upper", "upper_colour"), "lower": ("lower", "lower_colour"), "shoe": ("footwear",)}

# when a schema has no attribute with a word, try these instead (empty = the word may be dropped)
_FALLBACK: dict[str, tuple[str, ...]] = {
    "tshirt": ("short", "sleeve"),
    "dress": ("skirt",),
    "skirt": ("dress",),
    "jean": ("trouser",),
    "sun": (),
    "hand": (),
    "shoulder": (),
}

_WEAK = frozenset({"normal"})  # a missing weak token costs half: "glasses" -> Glasses-Normal over Glasses-Sun
_NEGATORS = frozenset({"no", "not", "without", "non", "never", "neither", "nor"})
_SEPARATORS = frozenset(
    {"and", "with", "wearing", "wears", "carrying", "carries", "who", "has", "have", "having", "but", "plus", "also"}
)
_OR = frozenset({"or", "nor"})
_BASE_VOCAB = frozenset(
    {t for toks in _WORD_MAP.values() for t in toks}
    | set(_PART)
    | {"black", "white", "red", "blue", "green", "yellow", "brown", "pink", "purple", "orange"}
    | {"hair", "bag", "long", "short", "front", "side", "coat", "shirt", "skirt", "dress", "boot", "sandal"}
)

# representative age (years) of each age word; an age attribute is a range of years
_AGE_CONCEPTS = {"child": 8.0, "young": 8.0, "teenager": 15.0, "adult": 35.0, "old": 70.0}
_AGE_WORD_RANGES = {"teenager": (13.0, 18.0), "adult": (18.0, 60.0), "old": (60.0, 120.0)}

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


# ------------------------------------------------------------------------------------------ tokens


def _singular(w: str) -> str:
    if len(w) <= 3 or w.isdigit():
        return w
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith(("sses", "shes", "ches", "xes")):
        return w[:-2]
    if w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def _raw_words(text: str) -> list[str]:
    """Lower-case words of a name or phrase: split on separators and CamelCase; t-shirt -> tshirt."""
    words: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", text):
        words.extend(m.lower() for m in _CAMEL.findall(part))
    out: list[str] = []
    for w in words:
        if out and out[-1] in ("t", "v") and w in ("shirt", "shirts", "neck"):
            out[-1] = out[-1] + w
        else:
            out.append(w)
    return out


def _canon(word: str, vocab: frozenset[str] = _BASE_VOCAB) -> tuple[str, ...]:
    """Canonical tokens of one lower-case word (empty for filler words)."""
    if word in _STOP:
        return ()
    if word in _WORD_MAP:
        return _WORD_MAP[word]
    single = _singular(word)
    if single in _STOP:
        return ()
    if single in _WORD_MAP:
        return _WORD_MAP[single]
    if single in vocab or word.isdigit():
        return (single,)
    # compounds such as "downblack", "hairlong": two known words
    for i in range(2, len(word) - 1):
        head, tail = word[:i], word[i:]
        h, t = _canon_known(head, vocab), _canon_known(tail, vocab)
        if h and t:
            return h + t
    return (single,)


def _canon_known(word: str, vocab: frozenset[str]) -> tuple[str, ...] | None:
    if word in _WORD_MAP:
        return _WORD_MAP[word]
    single = _singular(word)
    if single in _WORD_MAP:
        return _WORD_MAP[single]
    return (single,) if single in vocab else None


def _tokens(text: str, vocab: frozenset[str] = _BASE_VOCAB) -> list[str]:
    out: list[str] = []
    for w in _raw_words(text):
        for t in _canon(w, vocab):
            if t not in out:
                out.append(t)
    return out


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


# ------------------------------------------------------------------------------------------ schema


@dataclass(frozen=True)
class _Form:
    attr: int
    tokens: frozenset[str]


@dataclass(frozen=True)
class _Schema:
    names: tuple[str, ...]
    forms: tuple[_Form, ...]
    vocab: frozenset[str]
    exact: Mapping[str, int]
    parts: Mapping[int, frozenset[str]]  # attribute -> body parts it is on (from its tokens and groups)


def _name_forms(name: str) -> list[frozenset[str]]:
    """Token sets an attribute name answers to ("Trousers&Shorts" answers to either word)."""
    pieces = name.split("&")
    if len(pieces) == 1:
        variants = [name]
    else:  # the words around '&' are alternatives; the rest is shared
        left = _raw_words(pieces[0])
        right = _raw_words("&".join(pieces[1:]))
        prefix, a, b, suffix = left[:-1], left[-1:], right[:1], right[1:]
        variants = [" ".join(prefix + a + suffix), " ".join(prefix + b + suffix)]
    forms: list[frozenset[str]] = []
    for v in variants:
        toks = frozenset(_tokens(v))
        if not toks:
            continue
        forms.append(toks)
        # implicit meanings of some dataset names
        if toks == {"upper", "short"}:  # UPAR UpperBody-Length-Short = short sleeves
            forms.append(frozenset({"short", "sleeve"}))
        if toks == {"lower", "short"}:  # Market lower-short, UPAR LowerBody-Length-Short = shorts
            forms.append(frozenset({"lower", "shorts"}))
        if {"long", "trouser"} <= toks:  # RAP lb-LongTrousers = trousers
            forms.append(toks - {"long"})
    return forms


def _age_range(tokens: frozenset[str], has_teen: bool) -> tuple[float, float] | None:
    nums = sorted(float(t) for t in tokens if t.isdigit())
    words = tokens - {t for t in tokens if t.isdigit()}
    if words == {"less"} and len(nums) == 1:
        return (0.0, nums[0])
    if words == {"over"} and len(nums) == 1:
        return (nums[0] + 1e-6, 120.0)
    if not words and len(nums) == 2:
        return (nums[0], nums[1] + 1.0 - 1e-6)
    if words == {"young"} and not nums:
        return (0.0, 13.0 if has_teen else 18.0)
    if len(words) == 1 and not nums and next(iter(words)) in _AGE_WORD_RANGES:
        return _AGE_WORD_RANGES[next(iter(words))]
    return None


@lru_cache(maxsize=64)
def _schema(names: tuple[str, ...], groups_items: tuple[tuple[str, tuple[str, ...]], ...]) -> _Schema:
    groups = dict(groups_items)
    index = {n: i for i, n in enumerate(names)}
    forms: list[_Form] = []
    for i, name in enumerate(names):
        forms.extend(_Form(i, toks) for toks in _name_forms(name))
    # age concepts: the bucket containing the representative age (or the nearest bucket)
    age_members = {index[n] for n in groups.get("age", ()) if n in index}
    has_teen = any("teenager" in f.tokens for f in forms)
    ranges: dict[int, tuple[float, float]] = {}
    for f in forms:
        if age_members and f.attr not in age_members:
            continue
        r = _age_range(f.tokens, has_teen)
        if r is not None:
            ranges.setdefault(f.attr, r)
    if ranges:
        for concept, age in _AGE_CONCEPTS.items():
            best = min(ranges, key=lambda a: (max(ranges[a][0] - age, age - ranges[a][1], 0.0), ranges[a][0]))
            forms.append(_Form(best, frozenset({concept})))
    parts: dict[int, set[str]] = {i: set() for i in range(len(names))}
    for f in forms:
        parts[f.attr] |= {p for p in ("upper", "lower", "shoe") if p in f.tokens}
        parts[f.attr] |= {_PART[t] for t in f.tokens if t in _PART}
    for part, group_names in _PART_GROUPS.items():
        for g in group_names:
            for n in groups.get(g, ()):
                if n in index:
                    parts[index[n]].add(part)
    vocab = frozenset(t for f in forms for t in f.tokens)
    exact: dict[str, int] = {}
    for i, name in enumerate(names):
        exact.setdefault(_key(name), i)
    return _Schema(
        names=names,
        forms=tuple(forms),
        vocab=vocab,
        exact=exact,
        parts={a: frozenset(p) for a, p in parts.items()},
    )


def _get_schema(attribute_names: Sequence[str], groups: Mapping[str, Sequence[str]] | None) -> _Schema:
    names = tuple(attribute_names)
    if not names:
        raise QueryError("the schema has no attribute names")
    if not all(isinstance(n, str) for n in names):
        raise TypeError("attribute_names must be strings")
    groups_items = tuple(sorted((g, tuple(m)) for g, m in (groups or {}).items()))
    return _schema(names, groups_items)


# ------------------------------------------------------------------------------------------ matching


def _suggest(text: str, schema: _Schema, unknown: Sequence[str] = ()) -> list[str]:
    """Closest attribute names to a phrase (by name and by token)."""
    keys = {_key(n): n for n in schema.names}
    out = [keys[k] for k in difflib.get_close_matches(_key(text), list(keys), n=5, cutoff=0.5)]
    for word in unknown or _tokens(text):
        for tok in difflib.get_close_matches(word, sorted(schema.vocab), n=3, cutoff=0.7):
            for f in schema.forms:
                if tok in f.tokens and schema.names[f.attr] not in out:
                    out.append(schema.names[f.attr])
    return out[:8]


#: Longest text query read: a query names a few attributes, and every error message quotes it.
MAX_QUERY_CHARS = 1000


def _clip(text: str, limit: int = 80) -> str:
    """A quoted piece of user text, cut to ``limit`` characters so that an error stays one short line."""
    text = str(text)
    return text if len(text) <= limit else f"{text[: limit - 25]}... ({len(text)} characters)"


def _unknown_error(what: str, text: str, schema: _Schema, unknown: Sequence[str] = ()) -> QueryError:
    suggestions = _suggest(text, schema, unknown)
    closest = f"closest: {', '.join(suggestions)}" if suggestions else "no close attribute name"
    return QueryError(f"{what} in query {_clip(text)!r}; {closest}. {_LIST_HINT}")


def _match_phrase(tokens: list[str], text: str, schema: _Schema) -> list[tuple[int, bool]]:
    """Attributes named by one phrase's tokens: [(attribute index, flipped polarity)]."""
    tokens = list(tokens)
    out: list[tuple[int, bool]] = []
    # gender: "man" is Female=False where the schema only has Female (and vice versa)
    for word, other in (("female", "male"), ("male", "female")):
        if word in tokens and word not in schema.vocab and other in schema.vocab:
            tokens.remove(word)
            out.extend((f.attr, True) for f in schema.forms if f.tokens == {other})
    # words the schema lacks: their fallbacks where the schema has those, else garment words stay as
    # locators of a colour ("red shirt" where only upper-red exists); anything else is unknown
    resolved: list[str] = []
    unknown: list[str] = []
    for t in tokens:
        if t in schema.vocab:
            new = [t]
        elif t in _FALLBACK and all(x in schema.vocab for x in _FALLBACK[t]):
            new = list(_FALLBACK[t])
        elif t in _PART:
            new = [t]
        else:
            new = []
            unknown.append(t)
        resolved.extend(x for x in new if x not in resolved)
    if unknown:
        raise _unknown_error(f"no attribute matches {_clip(' '.join(unknown))!r}", text, schema, unknown)
    tokens = resolved
    said = set(tokens)
    # garment words and the body-part words themselves place the phrase: "lower red" is not UpperRed
    implied = {_PART[t] for t in tokens if t in _PART} | (set(tokens) & _BODY_PARTS)
    locators = [t for t in tokens if t in _PART and t not in schema.vocab]  # may stay unexplained
    remaining = set(tokens) - set(locators)
    chosen: list[_Form] = []
    while remaining:
        candidates: list[tuple[float, int, _Form, frozenset[str]]] = []
        for f in schema.forms:
            cov = f.tokens & remaining
            if not cov:
                continue
            missing = f.tokens - said - implied
            if implied and missing & _BODY_PARTS:  # "red trousers" must not become the upper-body red
                continue
            penalty = sum(0.5 if t in _WEAK else 1.0 for t in missing)
            if penalty <= 1.0:
                candidates.append((penalty, -len(cov), f, cov))
        if not candidates:
            raise _unknown_error(f"no attribute matches {_clip(' '.join(sorted(remaining)))!r}", text, schema)
        uncovered = remaining - set().union(*(c[3] for c in candidates))
        if uncovered:  # "lower red" where only upper red exists: say so, rather than "'lower' is ambiguous"
            what, rest = " ".join(sorted(uncovered)), " ".join(t for t in tokens if t not in uncovered)
            where = f" together with {_clip(rest)!r}" if rest else ""
            raise _unknown_error(f"no attribute matches {_clip(what)!r}{where}", text, schema, sorted(uncovered))
        best = min(c[:2] for c in candidates)
        tied = [c for c in candidates if c[:2] == best]
        first = tied[0]
        same = [c for c in tied if c[3] == first[3] and c[2].attr != first[2].attr]
        same_attrs = {first[2].attr, *(c[2].attr for c in same)}
        if same and best[0] > 0:
            names = ", ".join(schema.names[a] for a in sorted(same_attrs))
            raise QueryError(
                f"{' '.join(sorted(first[3]))!r} in query {_clip(text)!r} is ambiguous: it could be {names}; "
                f"name one of them (e.g. {schema.names[first[2].attr]!r})"
            )
        chosen.append(first[2])
        chosen.extend(c[2] for c in same)  # exact synonyms inside the schema: all of them
        remaining -= first[3]
    for t in locators:
        part = _PART[t]
        if not any(part in f.tokens or part in schema.parts[f.attr] for f in chosen):
            raise _unknown_error(f"no attribute matches {t!r}", text, schema, [t])
    out.extend((f.attr, False) for f in chosen)
    return out


def _phrases(text: str) -> list[tuple[str, bool]]:
    """Split a text query into (phrase, negated)."""
    text = re.sub(r"n't\b", " not", text)
    out: list[tuple[str, bool]] = []
    for segment in re.split(r"[,;|/+\n]+", text):
        words = segment.split()
        current: list[str] = []
        negated = False
        carry_negation = False
        for raw in words:
            w = raw.lower().strip(".!?:()[]\"'")
            if (w in _SEPARATORS or w in _OR) and not current:
                continue  # "no ... with", "doesn't have a": nothing to close yet, negation carries on
            if w in _SEPARATORS or w in _OR:
                if w in _OR and not negated:
                    raise QueryError(
                        f"'or' in query {_clip(text)!r}: a query asks for all of its attributes together; "
                        "run one search per alternative"
                    )
                if current:
                    out.append((" ".join(current), negated))
                current = []
                carry_negation = negated and w in _OR
                negated = carry_negation
            elif w in _NEGATORS:
                if current:
                    out.append((" ".join(current), negated))
                current = []
                negated = True
            else:
                current.append(raw)
        if current:
            out.append((" ".join(current), negated))
        elif negated and not carry_negation:
            raise QueryError(f"negation without an attribute in query {_clip(text)!r}; write e.g. 'no backpack'")
    return out


def _phrase_to_attrs(phrase: str, schema: _Schema, negated: bool, query: str | None = None) -> list[tuple[str, bool]]:
    """The attributes (name, wanted) of one phrase; a phrase of filler words only gives none.

    ``query``: the whole query the phrase comes from, which errors quote (default: the phrase).
    """
    if _key(phrase) in schema.exact:
        return [(schema.names[schema.exact[_key(phrase)]], not negated)]
    tokens = _tokens(phrase, schema.vocab | _BASE_VOCAB)
    return [(schema.names[a], not (negated ^ flip)) for a, flip in _match_phrase(tokens, query or phrase, schema)]


def _add(result: dict[str, bool], name: str, value: bool, text: str) -> None:
    if name in result and result[name] != value:
        raise QueryError(f"query {_clip(text)!r} asks for {name!r} to be both present and absent")
    result[name] = value


def parse_query(
    query: str | Sequence[str] | Mapping[str, bool],
    attribute_names: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, bool]:
    """Resolve a query to {attribute name: True (wanted) / False (must be absent)}.

    ``query`` is a text (``"male with a hat, no backpack"``), a list of attribute names or phrases
    (``["Female", "no backpack"]``) or a dict name/phrase -> bool. Names match case- and
    separator-insensitively; anything that matches no attribute is a QueryError listing the closest
    names. ``groups`` (the schema's groups) locates colour/age attributes where names do not say it.
    """
    schema = _get_schema(attribute_names, groups)
    result: dict[str, bool] = {}
    if isinstance(query, str):
        if len(query) > MAX_QUERY_CHARS:
            raise QueryError(
                f"query is {len(query)} characters long; a query names a few attributes "
                f"(at most {MAX_QUERY_CHARS} characters), e.g. {', '.join(schema.names[:3])}"
            )
        if not query.strip():
            raise QueryError(f"empty query; name attributes, e.g. {', '.join(schema.names[:3])}")
        for phrase, negated in _phrases(query):
            for name, value in _phrase_to_attrs(phrase, schema, negated, query):
                _add(result, name, value, query)
        if not result:
            raise _unknown_error("no attribute", query, schema)
        return result
    if isinstance(query, Mapping):
        items = list(query.items())
    elif isinstance(query, Sequence) and not isinstance(query, (bytes, bytearray)):
        items = [(q, True) for q in query]
    else:
        raise QueryError(
            f"a query is a text, a list of attribute names or a dict name -> bool, got {type(query).__name__}"
        )
    if not items:
        raise QueryError("empty query; name at least one attribute")
    for item, value in items:
        if not isinstance(item, str):
            raise QueryError(f"query items must be attribute names (str), got {_clip(repr(item))}")
        if isinstance(value, (bool, np.bool_)) or value in (0, 1):
            want = bool(value)
        else:
            raise QueryError(f"query value for {_clip(item)!r} must be True or False, got {_clip(repr(value))}")
        if _key(item) in schema.exact:
            _add(result, schema.names[schema.exact[_key(item)]], want, str(item))
            continue
        matched = False
        for phrase, negated in _phrases(item):
            for name, v in _phrase_to_attrs(phrase, schema, negated, item):
                _add(result, name, v if want else not v, item)
                matched = True
        if not matched:
            raise _unknown_error("no attribute", item, schema)
    return result


def query_to_vectors(
    parsed: Mapping[str, bool],
    attribute_names: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
    exclusive_groups: frozenset[str] | set[str] = EXCLUSIVE_GROUPS,
) -> tuple[np.ndarray, np.ndarray]:
    """The hard (binary) query vector [A] and the mask [A] of attributes the query constrains.

    ``hard`` is 1 for wanted attributes and 0 elsewhere (CLEAR's binary attribute query). ``mask``
    is True for attributes named in the query (wanted or absent) and for the other members of an
    exclusive group (``exclusive_groups``, e.g. age) one of whose members is wanted: those are
    known to be 0.
    """
    names = list(attribute_names)
    index = {n: i for i, n in enumerate(names)}
    hard = np.zeros(len(names), dtype=np.float32)
    mask = np.zeros(len(names), dtype=bool)
    schema = _get_schema(names, groups)
    for name, value in parsed.items():
        if name not in index:
            raise _unknown_error(f"unknown attribute {_clip(name)!r}", name, schema)
        mask[index[name]] = True
        hard[index[name]] = 1.0 if value else 0.0
    for group, members in (groups or {}).items():
        if group not in exclusive_groups:
            continue
        for subset in _exclusive_sets(group, tuple(members)):
            idx = [index[m] for m in subset if m in index]
            wanted = [names[i] for i in idx if hard[i] == 1.0]
            if len(wanted) > 1:
                raise QueryError(f"the query wants {', '.join(wanted)} together, but only one {group} can be true")
            if wanted:
                mask[idx] = True
    return hard, mask


@lru_cache(maxsize=64)
def _exclusive_sets(group: str, members: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The sets of an exclusive group whose members exclude each other: the unified schema's age holds two
    binnings (PETA's, Market-1501's; ``exclusive_sets`` in attributes.json); any other group is one set."""
    from clear_sdk.schema import UNIFIED, load_schema

    sets = load_schema(UNIFIED).meta.get("exclusive_sets", {}).get(group, [])
    covered = [tuple(m for m in s if m in members) for s in sets]
    if sets and set(members) <= {m for s in sets for m in s}:
        return [s for s in covered if s]
    return [members]


def hard_input(values: np.ndarray, known: np.ndarray, encoding: str = "binary") -> np.ndarray:
    """f_attr's input float32 [..., A] from 0/1 ``values`` and the ``known`` mask (asked, or annotated).

    ``binary``: ``values`` as they are (unknown entries must be 0: the paper's whole-vector query);
    ``signed``: +1 where known and 1, -1 where known and 0, 0 where not known. Training encodes its class
    label vectors and the runtime its queries with this one function, so the two cannot drift apart.
    """
    if encoding not in QUERY_ENCODINGS:
        raise QueryError(f"unknown query encoding {encoding!r}; use one of {', '.join(QUERY_ENCODINGS)}")
    v = np.asarray(values, dtype=np.float32)
    if encoding == "binary":
        return np.where(np.asarray(known, bool), v, 0.0).astype(np.float32)
    return np.where(np.asarray(known, bool), 2.0 * v - 1.0, 0.0).astype(np.float32)
