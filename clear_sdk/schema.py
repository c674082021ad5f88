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
