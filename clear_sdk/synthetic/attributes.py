"""The synthetic dataset's label vector: its 25 attribute names, their groups and the one-hot rule.

The names and groups are the ``synthetic`` entry of ``clear_sdk/data/attributes.json``, like every
other dataset's schema; this module adds what only the renderer needs: which groups are one-hot and
the checked conversion between a name->bool mapping and a uint8 vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from clear_sdk.schema import load_schema

_SCHEMA = load_schema("synthetic")
SYNTHETIC_ATTRIBUTES: list[str] = _SCHEMA.attributes
SYNTHETIC_GROUPS: dict[str, list[str]] = _SCHEMA.groups

#: groups in which every person has exactly one attribute set
ONE_HOT_GROUPS: tuple[str, ...] = ("age", "view", "lower", "upper_colour", "lower_colour")

_INDEX = {name: i for i, name in enumerate(SYNTHETIC_ATTRIBUTES)}
_VIEWS = SYNTHETIC_GROUPS["view"]


def attrs_to_vector(attrs: Mapping[str, bool | int] | Sequence[int] | np.ndarray) -> np.ndarray:
    """A uint8 [25] label vector from a name->bool mapping (missing names are False) or a vector.

    Raises ValueError on unknown names, a wrong length or a one-hot group that is not
    exactly one-hot, so a mislabelled person is never drawn.
    """
    if isinstance(attrs, Mapping):
        unknown = sorted(set(attrs) - set(_INDEX))
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; valid names: {', '.join(SYNTHETIC_ATTRIBUTES)}")
        vec = np.zeros(len(SYNTHETIC_ATTRIBUTES), np.uint8)
        for name, value in attrs.items():
            vec[_INDEX[name]] = 1 if value else 0
    else:
        arr = np.asarray(attrs)
        if arr.shape != (len(SYNTHETIC_ATTRIBUTES),):
            raise ValueError(f"label vector must have shape ({len(SYNTHETIC_ATTRIBUTES)},), got {arr.shape}")
        if not np.isin(arr, (0, 1)).all():
            raise ValueError("label vector must hold only 0/1 values")
        vec = arr.astype(np.uint8)
    for group in ONE_HOT_GROUPS:
        names = SYNTHETIC_GROUPS[group]
        if sum(int(vec[_INDEX[n]]) for n in names) != 1:
            raise ValueError(f"exactly one of the {group} group {names} must be set")
    return vec


def vector_to_attrs(vec: Sequence[int] | np.ndarray) -> dict[str, bool]:
    """The name->bool mapping of a validated label vector."""
    v = attrs_to_vector(vec)
    return {name: bool(v[i]) for i, name in enumerate(SYNTHETIC_ATTRIBUTES)}
