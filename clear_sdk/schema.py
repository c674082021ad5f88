"""Attribute schemas of the supported datasets: ordered attribute names and their groups.

The schemas ship with the package (``clear_sdk/data/attributes.json``) so that the runtime can
show predictions grouped (gender, age, upper colour, ...) and build pseudo-descriptions without
the datasets, and so that the training loaders and the runtime agree on one attribute order.
Pure standard library: the runtime imports this without numpy or torch.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from importlib import resources
from typing import Any

#: Canonical group names, in display order. A schema uses the subset that applies to it.
GROUP_ORDER: tuple[str, ...] = (
    "gender",
    "age",
    "view",
    "head",
    "upper",
    "upper_colour",
    "lower",
    "lower_colour",
    "footwear",
    "bag",
    "accessory",
    "other",
)


@dataclasses.dataclass
class DatasetSchema:
    """One dataset's attribute list (model output order) and its grouping.

    ``meta`` carries the rest of the dataset's JSON entry (sources, raw indices the loaders
    need, display name, homepage); it is informational and not compared.
    """

    name: str
    attributes: list[str]
    groups: dict[str, list[str]]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_groups(self.name, self.attributes, self.groups)

    def group_of(self, attribute: str) -> str:
        """The group an attribute belongs to; unknown names are an error listing the valid ones."""
        for group, names in self.groups.items():
            if attribute in names:
                return group
        raise KeyError(f"{self.name} has no attribute {attribute!r}; valid: {', '.join(self.attributes)}")


def _check_groups(name: str, attributes: list[str], groups: dict[str, list[str]]) -> None:
    """Every attribute must sit in exactly one group, and groups may name only known attributes."""
    if len(set(attributes)) != len(attributes):
        dup = sorted({a for a in attributes if attributes.count(a) > 1})
        raise ValueError(f"schema {name!r}: duplicate attributes {dup}")
    unknown_groups = [g for g in groups if g not in GROUP_ORDER]
    if unknown_groups:
        raise ValueError(f"schema {name!r}: unknown groups {unknown_groups}; valid: {', '.join(GROUP_ORDER)}")
    seen: dict[str, str] = {}
    for group, names in groups.items():
        for a in names:
            if a in seen:
                raise ValueError(f"schema {name!r}: attribute {a!r} is in groups {seen[a]!r} and {group!r}")
            seen[a] = group
    missing = [a for a in attributes if a not in seen]
    extra = [a for a in seen if a not in set(attributes)]
    if missing or extra:
        raise ValueError(f"schema {name!r}: attributes without a group {missing}; grouped but not attributes {extra}")


@functools.lru_cache(maxsize=1)
def _load_all() -> dict[str, Any]:
    text = resources.files("clear_sdk").joinpath("data", "attributes.json").read_text(encoding="utf-8")
    return json.loads(text)


def list_schemas() -> list[str]:
    """Names accepted by :func:`load_schema` (the dataset registry names)."""
    return sorted(_load_all()["datasets"])


def load_schema(dataset: str) -> DatasetSchema:
    """The packaged schema of ``dataset`` (case-insensitive); a fresh copy the caller may modify."""
    datasets = _load_all()["datasets"]
    key = dataset.lower()
    if key not in datasets:
        raise KeyError(f"no attribute schema for {dataset!r}; known: {', '.join(sorted(datasets))}")
    entry = copy.deepcopy(datasets[key])
    attributes = entry.pop("attributes")
    groups = entry.pop("groups")
    return DatasetSchema(name=key, attributes=attributes, groups=groups, meta=entry)


# -- the unified schema and its per-dataset views ------------------------------------------------------
#: the packaged schema every dataset's view maps into (``clear_sdk/data/attributes.json``, "unified")
UNIFIED = "unified"
#: how a native attribute relates to unified ones: the same, its negation, or any of several
VIEW_KINDS = ("exact", "complement", "union")


@dataclasses.dataclass(frozen=True)
class ViewEntry:
    """One native attribute of a dataset view: ``how`` it follows the unified attributes ``of`` (and why)."""

    native: str
    how: str
    of: tuple[str, ...]
    why: str = ""
    label: str = ""  # what a person reads, for entries that are not exact (exact ones read as their unified attribute)


@dataclasses.dataclass(frozen=True)
class View:
    """A dataset's attributes expressed in the unified schema (the mapping lives in attributes.json).

    ``entries`` follow the dataset's own attribute order and hold every native attribute the unified
    schema covers; ``derived`` maps a unified attribute to the native ones whose union fully
    determines it in that dataset's labels; ``not_covered`` names the rest, with why.
    """

    dataset: str
    unified: tuple[str, ...]
    entries: tuple[ViewEntry, ...]
    derived: dict[str, ViewEntry]
    not_covered: dict[str, str]

    @property
    def names(self) -> list[str]:
        """The view's native attribute names, in the dataset's order."""
        return [e.native for e in self.entries]


def _native_names(dataset: str) -> list[str]:
    """Every attribute name a dataset's loader can produce (PETA's colours included)."""
    s = load_schema(dataset)
    extra = [a for names in s.meta.get("colour_groups", {}).values() for a in names]
    return s.attributes + extra


def _entry(native: str, spec: dict[str, Any], where: str, known: set[str]) -> ViewEntry:
    how, of = spec.get("how"), spec.get("of")
    if how not in VIEW_KINDS:
        raise ValueError(f"{where}: {native!r} has how={how!r}; use one of {', '.join(VIEW_KINDS)}")
    if not isinstance(of, list) or not of or (how != "union" and len(of) != 1):
        raise ValueError(f"{where}: {native!r} ({how}) needs 'of': one name (exact, complement) or several (union)")
    unknown = [u for u in of if u not in known]
    if unknown:
        raise ValueError(f"{where}: {native!r} maps to unknown attributes {unknown}")
    return ViewEntry(native, how, tuple(of), spec.get("why", ""), spec.get("label", ""))


@functools.cache
def load_view(dataset: str) -> View:
    """The packaged view of ``dataset`` onto the unified schema; every name in the mapping is checked."""
    key = dataset.lower()
    unified = load_schema(UNIFIED)
    views = unified.meta.get("views", {})
    if key not in views:
        raise KeyError(f"no view {dataset!r} of the unified schema; known views: {', '.join(sorted(views))}")
    spec = views[key]
    natives = _native_names(key)
    where = f"attributes.json unified.views.{key}"
    unknown = [n for n in [*spec["attributes"], *spec.get("not_covered", {})] if n not in natives]
    if unknown:
        raise ValueError(f"{where}: names {unknown} are not attributes of {key!r}")
    order = {n: i for i, n in enumerate(natives)}
    entries = [_entry(n, s, where, set(unified.attributes)) for n, s in spec["attributes"].items()]
    entries.sort(key=lambda e: order[e.native])
    derived = {u: _entry(u, s, where + ".derived", set(natives)) for u, s in spec.get("derived", {}).items()}
    bad = [u for u in derived if u not in unified.attributes]
    if bad:
        raise ValueError(f"{where}.derived: unknown unified attributes {bad}")
    return View(key, tuple(unified.attributes), tuple(entries), derived, dict(spec.get("not_covered", {})))


def list_views() -> list[str]:
    """The datasets that have a view onto the unified schema."""
    return sorted(load_schema(UNIFIED).meta.get("views", {}))


def attribute_labels(attributes: list[str], dataset: str | None = UNIFIED) -> dict[str, str]:
    """A label a person reads for each attribute ("carries a backpack"), the name itself where none is known.

    ``dataset``: whose names these are; a dataset with a view reads its exact entries as their unified
    attribute and the others by their own label (PETA's ``personalMale``: "male").
    """
    labels = dict(_load_all()["datasets"][UNIFIED].get("labels", {}))
    key = dataset.lower() if dataset else UNIFIED
    if key != UNIFIED and key in list_views():
        for e in load_view(key).entries:
            labels[e.native] = e.label or labels.get(e.of[0], e.native)
    elif key != UNIFIED:
        labels = {}
    return {a: labels.get(a, a) for a in attributes}
