"""Who is drawn: attribute sampling with realistic correlations, a look per identity, a pose per image,
and the identities of a whole dataset (disjoint splits that cover every attribute where they can).

Every function here draws a fixed number of random numbers, so a seed gives the same people on
every machine and the same seed with different attributes changes only the attribute's pixels.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import numpy as np

from .attributes import _INDEX, _VIEWS, ONE_HOT_GROUPS, SYNTHETIC_ATTRIBUTES, SYNTHETIC_GROUPS
from .palette import _SKIN, BGR

logger = logging.getLogger(__name__)

_SPLITS = ("train", "val", "test")
# The order in which sample_identities fixes each group's coverage (views are fixed per image, later). Every
# fix draws from the dataset's random stream, so this order is part of what a seed means: changing it
# changes every generated dataset. It is the order the groups had before the schema moved to attributes.json.
_COVERAGE_ORDER = ("gender", "age", "head", "bag", "upper", "lower", "upper_colour", "lower_colour")


def _choice(rng: np.random.Generator, names: Sequence[str], p: Sequence[float]) -> str:
    p = np.asarray(p, np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_identity_attributes(rng: np.random.Generator) -> np.ndarray:
    """One identity's label vector with realistic correlations; the view columns are left 0 (set per image)."""
    v = np.zeros(len(SYNTHETIC_ATTRIBUTES), np.uint8)
    female = rng.random() < 0.45
    age = _choice(rng, SYNTHETIC_GROUPS["age"], (0.16, 0.66, 0.18))
    child, old = age == "AgeLess18", age == "AgeOver60"
    hat = rng.random() < (0.4 if old else 0.3)
    # long hair follows gender (4x as likely) but not so tightly that gender alone predicts it
    long_hair = rng.random() < ((0.55 if child else 0.62) if female else 0.15)
    backpack = rng.random() < (0.5 if child else 0.12 if old else 0.3)
    handbag = rng.random() < ((0.05 if child else 0.45) if female else (0.02 if child else 0.1))
    short = rng.random() < (0.25 if old else 0.42)
    if female:
        lower = _choice(rng, SYNTHETIC_GROUPS["lower"], (0.45, 0.2, 0.35))
    else:
        lower = _choice(rng, SYNTHETIC_GROUPS["lower"], (0.85 if old else 0.76, 0.05 if old else 0.22, 0.02))
    upper_c = _choice(rng, SYNTHETIC_GROUPS["upper_colour"], (0.21, 0.19, 0.15, 0.18, 0.13, 0.14))
    lower_p = {"Trousers": (0.35, 0.35, 0.18, 0.12), "Shorts": (0.25, 0.35, 0.2, 0.2), "Skirt": (0.35, 0.2, 0.25, 0.2)}
    lower_c = _choice(rng, SYNTHETIC_GROUPS["lower_colour"], lower_p[lower])
    for name, on in (("Female", female), ("Hat", hat), ("LongHair", long_hair), ("Backpack", backpack)):
        v[_INDEX[name]] = on
    for name, on in (("HandBag", handbag), ("ShortSleeve", short)):
        v[_INDEX[name]] = on
    for name in (age, lower, upper_c, lower_c):
        v[_INDEX[name]] = 1
    return v


# -- identity appearance and per-image pose ----------------------------------------------
@dataclasses.dataclass(frozen=True)
class Appearance:
    """What stays fixed for one identity besides its attributes: skin, shades, proportions, accessories' looks.

    Colours that depend on attributes (the named clothing colours, grey hair when elderly)
    are resolved at draw time from these tones, so the same appearance can be drawn with
    different attributes and only the attribute's pixels change.
    """

    skin: BGR = (130, 165, 210)
    hair_tone: float = 0.0  # picks the hair colour (grey shades when elderly)
    upper_shade: tuple[float, float, float] = (0.5, 0.5, 0.5)  # position inside the named colour's HSV box
    lower_shade: tuple[float, float, float] = (0.5, 0.5, 0.5)
    shoe_tone: float = 0.0
    hat_tone: float = 0.0
    hat_style: int = 0  # 0 cap, 1 beanie, 2 brimmed hat
    backpack_tone: float = 0.0
    handbag_tone: float = 0.0
    handbag_side: int = 1  # +1: right of the image, -1: left
    hair_length: float = 0.5  # how far long hair falls, 0..1
    skirt_length: float = 0.5
    height: float = 1.0  # body-size jitter around the age/gender norm
    build: float = 1.0  # width jitter
    head: float = 1.0  # head-size jitter
    cane: bool = False  # only drawn for the elderly


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A random identity look; consumes a fixed number of draws so seeds line up across attributes."""
    u = rng.random(22)
    k = u[0] * (len(_SKIN) - 1)
    lo = int(k)
    hi = min(lo + 1, len(_SKIN) - 1)
    skin = _SKIN[lo] + (_SKIN[hi] - _SKIN[lo]) * (k - lo)
    return Appearance(
        skin=(int(skin[0]), int(skin[1]), int(skin[2])),
        hair_tone=float(u[1]),
        upper_shade=(float(u[2]), float(u[3]), float(u[4])),
        lower_shade=(float(u[5]), float(u[6]), float(u[7])),
        shoe_tone=float(u[8]),
        hat_tone=float(u[9]),
        hat_style=int(u[10] * 3) % 3,
        backpack_tone=float(u[11]),
        handbag_tone=float(u[12]),
        handbag_side=1 if u[13] < 0.5 else -1,
        hair_length=float(u[14]),
        skirt_length=float(u[15]),
        height=float(0.95 + 0.08 * u[16]),
        build=float(0.92 + 0.16 * u[17]),
        head=float(0.94 + 0.12 * u[18]),
        cane=bool(u[19] < 0.4),
    )


@dataclasses.dataclass(frozen=True)
class Pose:
    """Per-image placement and walking pose, as fractions of the canvas so it works at any size."""

    phase: float = 0.0  # walking cycle, radians
    stride: float = 0.3  # leg swing amplitude (radians)
    arm_swing: float = 0.3  # arm swing amplitude (radians)
    scale: float = 0.92  # figure height / canvas height before the identity's own size
    dx: float = 0.0  # horizontal offset, fraction of canvas width
    foot: float = 0.97  # ground line, fraction of canvas height
    lean: float = 0.0  # whole-body rotation about the feet, degrees
    flip: bool = False  # mirror: a side view then faces left


def sample_pose(rng: np.random.Generator) -> Pose:
    """A random pose for one crop (fixed number of draws)."""
    u = rng.random(8)
    return Pose(
        phase=float(2 * math.pi * u[0]),
        stride=float(0.12 + 0.28 * u[1]),
        arm_swing=float(0.1 + 0.35 * u[2]),
        scale=float(0.8 + 0.18 * u[3]),
        dx=float(-0.07 + 0.14 * u[4]),
        foot=float(0.93 + 0.065 * u[5]),
        lean=float(-4 + 8 * u[6]),
        flip=bool(u[7] < 0.5),
    )


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """What :func:`generate_synthetic` draws; saved in ``synthetic.json`` beside the data."""

    num_identities: int = 400
    images_per_identity: int = 6
    image_size: tuple[int, int] = (256, 128)  # (H, W)
    seed: int = 0
    train_fraction: float = 0.7
    val_fraction: float = 0.1
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.num_identities < 1 or self.images_per_identity < 1:
            raise ValueError("num_identities and images_per_identity must be >= 1")
        if len(self.image_size) != 2 or min(self.image_size) < 32:
            raise ValueError(f"image_size must be (H, W) with both >= 32, got {self.image_size}")
        fracs = (self.train_fraction, self.val_fraction, self.test_fraction)
        if min(fracs) < 0 or abs(sum(fracs) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fracs}")
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticIdentity:
    """One drawn person: fixed attributes (view columns 0), look, split and the view of each image."""

    pid: int
    split: str
    labels: np.ndarray  # uint8 [25], view columns 0
    appearance: Appearance
    views: tuple[str, ...]

    def image_labels(self, n: int) -> np.ndarray:
        """The label vector of image ``n`` (identity attributes plus that image's view)."""
        v = self.labels.copy()
        v[_INDEX[self.views[n]]] = 1
        return v


def _ensure_coverage(
    labels: np.ndarray, rows: np.ndarray, rng: np.random.Generator, groups: Sequence[str]
) -> list[str]:
    """Edit as few rows as needed so every attribute of ``groups`` has positives and negatives among ``rows``.

    One-hot groups only take a donor row whose category is shared by another row, so a fix
    never removes the last example of something else. Returns the groups that ``rows`` is
    too small to cover.
    """
    n = len(rows)
    if n == 0:
        return []
    if n < 2:
        return list(groups)
    short: list[str] = []
    for group in groups:
        idx = [_INDEX[name] for name in SYNTHETIC_GROUPS[group]]
        one_hot = group in ONE_HOT_GROUPS
        for j in idx:
            col = labels[rows, j]
            if col.all():
                r = rows[rng.integers(n)]
                if one_hot:
                    others = [k for k in idx if k != j]
                    labels[r, idx] = 0
                    labels[r, others[rng.integers(len(others))]] = 1
                else:
                    labels[r, j] = 0
            elif not col.any():
                if one_hot:
                    counts = labels[np.ix_(rows, idx)].sum(0)
                    cats = labels[np.ix_(rows, idx)].argmax(1)
                    donors = rows[counts[cats] >= 2]
                    if len(donors) == 0:
                        if group not in short:
                            short.append(group)
                        continue
                    r = donors[rng.integers(len(donors))]
                    labels[r, idx] = 0
                    labels[r, j] = 1
                else:
                    labels[rows[rng.integers(n)], j] = 1
    return short


def sample_identities(config: SyntheticConfig) -> list[SyntheticIdentity]:
    """Draw every identity of a dataset: attributes, disjoint split, per-image views and appearance.

    Attributes are sampled with realistic correlations, then minimally edited so that each
    split holds positives and negatives of every attribute wherever its size allows it.
    """
    rng = np.random.default_rng([config.seed, 0])
    n, k = config.num_identities, config.images_per_identity
    labels = np.stack([sample_identity_attributes(rng) for _ in range(n)])
    order = rng.permutation(n)
    n_train = int(round(config.train_fraction * n))
    n_val = min(int(round(config.val_fraction * n)), n - n_train)
    split_rows = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    for name in _SPLITS:
        short = _ensure_coverage(labels, np.sort(split_rows[name]), rng, _COVERAGE_ORDER)
        if short:
            logger.warning(
                "the %s split has %d identities, too few for every category of %s to appear in it",
                name,
                len(split_rows[name]),
                ", ".join(short),
            )
    # views: each identity shows as many distinct views as it has images (up to 3), then random ones
    view_p = np.array([0.4, 0.3, 0.3])
    view_idx = np.empty((n, k), np.int64)
    for pid in range(n):
        first = rng.permutation(3)[: min(k, 3)]
        rest = rng.choice(3, size=max(0, k - 3), p=view_p)
        view_idx[pid] = rng.permutation(np.concatenate([first, rest]))
    if k < 3:  # too few images per identity for the permutation to guarantee every view per split
        one_hot = np.zeros((n * k, len(SYNTHETIC_ATTRIBUTES)), np.uint8)
        one_hot[np.arange(n * k), [_INDEX[_VIEWS[v]] for v in view_idx.ravel()]] = 1
        for name in _SPLITS:
            rows = np.sort(np.concatenate([np.arange(p * k, (p + 1) * k) for p in split_rows[name]] or [[]])).astype(
                int
            )
            _ensure_coverage(one_hot, rows, rng, ["view"])
        view_idx = (one_hot[:, [_INDEX[v] for v in _VIEWS]].argmax(1)).reshape(n, k)
    split_of = {int(pid): name for name in _SPLITS for pid in split_rows[name]}
    return [
        SyntheticIdentity(
            pid=pid,
            split=split_of[pid],
            labels=labels[pid].copy(),
            appearance=sample_appearance(np.random.default_rng([config.seed, 1, pid])),
            views=tuple(_VIEWS[v] for v in view_idx[pid]),
        )
        for pid in range(n)
    ]
