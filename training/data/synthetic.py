"""A procedural pedestrian dataset: drawn people whose attributes are known exactly.

Why it exists: the demo, the tests and the camera-stream example need labelled pedestrians
on machines where no dataset can be downloaded. Every person is drawn with OpenCV shapes
(head, hair, hat, torso and sleeves, trousers / shorts / skirt, shoes, backpack, handbag)
from a fixed attribute combination plus an :class:`Appearance` (skin tone, shades, body
proportions), then composed over clutter and degraded the way surveillance crops are
(blur, low resolution, lighting, sensor noise, JPEG). Cues are kept large and distinct enough
to be learnt from a 112x56 crop by a transformer trained from scratch in minutes: hats rise above
the hairline in colours no hair has, hair contrasts with the skin and the top, the head is a little
large, and the background is hazy and out of focus so that it does not mimic clothes. Each of
these was measured on clear-tiny (per-attribute val/test mA; see ``synthetic_tiny.yaml``).

Layout written by :func:`generate_synthetic` (a folder that reads "like a real dataset")::

    out_dir/images/<pid>_<n>.jpg
    out_dir/labels.csv        image,pid,split,<25 attributes as 0/1>
    out_dir/synthetic.json    the config used and the attribute list

numpy + OpenCV only (no torch), so the runtime-side camera example can use it too.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from .base import DatasetError, PARDataset, Record, register_dataset

logger = logging.getLogger(__name__)

__all__ = [
    "SYNTHETIC_ATTRIBUTES",
    "SYNTHETIC_GROUPS",
    "ONE_HOT_GROUPS",
    "Appearance",
    "Pose",
    "SyntheticConfig",
    "SyntheticIdentity",
    "SyntheticDataset",
    "attrs_to_vector",
    "vector_to_attrs",
    "sample_identity_attributes",
    "sample_appearance",
    "sample_pose",
    "sample_identities",
    "render_person_layer",
    "render_person",
    "generate_synthetic",
    "render_street",
    "paste_person",
    "synthetic_video_frames",
    "write_synthetic_video",
]

SYNTHETIC_ATTRIBUTES: list[str] = [
    "Female",
    "AgeLess18",
    "Age18-60",
    "AgeOver60",
    "Front",
    "Side",
    "Back",
    "Hat",
    "LongHair",
    "Backpack",
    "HandBag",
    "ShortSleeve",
    "Trousers",
    "Shorts",
    "Skirt",
    "UpperBlack",
    "UpperWhite",
    "UpperRed",
    "UpperBlue",
    "UpperGreen",
    "UpperYellow",
    "LowerBlack",
    "LowerBlue",
    "LowerGray",
    "LowerBrown",
]

SYNTHETIC_GROUPS: dict[str, list[str]] = {
    "gender": ["Female"],
    "age": ["AgeLess18", "Age18-60", "AgeOver60"],
    "view": ["Front", "Side", "Back"],
    "head": ["Hat", "LongHair"],
    "bag": ["Backpack", "HandBag"],
    "upper": ["ShortSleeve"],
    "lower": ["Trousers", "Shorts", "Skirt"],
    "upper_colour": ["UpperBlack", "UpperWhite", "UpperRed", "UpperBlue", "UpperGreen", "UpperYellow"],
    "lower_colour": ["LowerBlack", "LowerBlue", "LowerGray", "LowerBrown"],
}

#: groups in which every person has exactly one attribute set
ONE_HOT_GROUPS: tuple[str, ...] = ("age", "view", "lower", "upper_colour", "lower_colour")

_INDEX = {name: i for i, name in enumerate(SYNTHETIC_ATTRIBUTES)}
_VIEWS = SYNTHETIC_GROUPS["view"]
LABELS_FILE = "labels.csv"
META_FILE = "synthetic.json"
_SPLITS = ("train", "val", "test")

# -- palettes ------------------------------------------------------------------------
# Named clothing colours as OpenCV HSV ranges (H 0-180). An identity's shade is a point
# inside its colour's box, so two "UpperBlue" people differ in shade but both stay clearly
# blue; None for hue means achromatic (any hue at that low saturation).
_Range = tuple[float, float]
_COLOUR_BOXES: dict[str, tuple[_Range | None, _Range, _Range]] = {
    "UpperBlack": (None, (0, 50), (18, 52)),
    "UpperWhite": (None, (0, 20), (218, 250)),
    "UpperRed": ((-5, 4), (180, 245), (150, 225)),
    "UpperBlue": ((106, 119), (175, 245), (125, 210)),
    "UpperGreen": ((54, 72), (155, 235), (100, 185)),
    "UpperYellow": ((24, 31), (175, 240), (210, 250)),
    "LowerBlack": (None, (0, 45), (18, 48)),
    "LowerBlue": ((104, 116), (120, 210), (100, 175)),
    "LowerGray": (None, (0, 15), (110, 155)),
    "LowerBrown": ((8, 15), (140, 210), (55, 100)),
}
# BGR skin tones, light to dark; an identity interpolates between neighbours.
_SKIN = np.array([(200, 215, 245), (160, 190, 230), (130, 165, 210), (100, 135, 185), (75, 105, 155)], np.float64)
# Hair: black, browns and auburn, all far from every skin tone, so the back of a head never looks like
# somebody's face (blond shades sat on top of the skin tones: back views with blond hair were read as
# front views). Auburn is the one hair colour far from both the darkest skin and a black top.
_HAIR = [(25, 25, 30), (28, 40, 62), (35, 62, 100), (30, 45, 130)]
_GREY_HAIR = [(125, 125, 129), (160, 160, 164), (195, 195, 199)]  # the elderly: grey, not white
# Hats are saturated, in colours no hair has (no white either: a white beanie reads as grey hair).
_HAT = [(40, 40, 200), (200, 110, 30), (50, 170, 60), (150, 50, 150), (190, 170, 40), (160, 110, 240), (200, 60, 90)]
# Bags are neither hair-coloured (black or brown straps down a chest look exactly like long dark hair)
# nor in a clothing colour (a red backpack over a blue top reads as a red top): purples, pinks, teals.
_BAG = [(115, 50, 115), (150, 50, 200), (125, 125, 35), (170, 60, 110), (185, 145, 235), (180, 170, 40)]
_SHOES = [(25, 25, 25), (40, 60, 90), (230, 230, 230), (110, 110, 110)]
_EYE = (40, 30, 30)

BGR = tuple[int, int, int]


def _hsv_to_bgr(h: float, s: float, v: float) -> BGR:
    px = np.array([[[int(round(h)) % 180, int(round(s)), int(round(v))]]], np.uint8)
    b, g, r = cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _named_colour(name: str, shade: Sequence[float]) -> BGR:
    hue, sat, val = _COLOUR_BOXES[name]
    h = 180.0 * shade[0] if hue is None else hue[0] + (hue[1] - hue[0]) * shade[0]
    return _hsv_to_bgr(h, sat[0] + (sat[1] - sat[0]) * shade[1], val[0] + (val[1] - val[0]) * shade[2])


def _scale(c: Sequence[float], f: float) -> BGR:
    return tuple(int(min(255, max(0, round(x * f)))) for x in c)  # type: ignore[return-value]


def _pick_contrasting(palette: Sequence[BGR], tone: float, against: Sequence[BGR], min_dist: float) -> BGR:
    """Pick from ``palette`` by ``tone`` among colours far enough from all of ``against`` (so the item shows).

    When no colour is that far, the farthest one is taken: an item that blends in is a label nobody can see.
    """
    pal = np.asarray(palette, np.float64)
    dist = np.linalg.norm(pal[:, None, :] - np.asarray(against, np.float64)[None], axis=-1).min(axis=1)
    pool = [palette[i] for i in np.flatnonzero(dist >= min_dist)] or [palette[int(dist.argmax())]]
    return pool[min(int(tone * len(pool)), len(pool) - 1)]


# -- attributes ----------------------------------------------------------------------
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


# -- drawing ---------------------------------------------------------------------------
_SHIFT = 3
_ONE = 1 << _SHIFT


class _Layer:
    """A person on a transparent canvas: BGR premultiplied by coverage, plus the coverage mask.

    Every shape is drawn anti-aliased with sub-pixel coordinates into both arrays, so the
    person can be pasted over any background with a soft mask rather than a rectangle.
    """

    def __init__(self, h: int, w: int) -> None:
        self.img = np.zeros((h, w, 3), np.uint8)
        self.mask = np.zeros((h, w), np.uint8)

    def ellipse(
        self, c: Sequence[float], axes: Sequence[float], colour: BGR, angle: float = 0.0, arc: tuple = (0, 360)
    ) -> None:
        cc = (int(round(c[0] * _ONE)), int(round(c[1] * _ONE)))
        ax = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
        cv2.ellipse(self.img, cc, ax, angle, arc[0], arc[1], colour, -1, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(self.mask, cc, ax, angle, arc[0], arc[1], 255, -1, cv2.LINE_AA, _SHIFT)

    def circle(self, c: Sequence[float], r: float, colour: BGR) -> None:
        self.ellipse(c, (r, r), colour)

    def poly(self, pts: Sequence[Sequence[float]], colour: BGR) -> None:
        arr = [np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32)]
        cv2.fillPoly(self.img, arr, colour, cv2.LINE_AA, _SHIFT)
        cv2.fillPoly(self.mask, arr, 255, cv2.LINE_AA, _SHIFT)

    def limb(
        self, p1: Sequence[float], p2: Sequence[float], w1: float, w2: float, colour: BGR, round_ends: bool = True
    ) -> None:
        """A tapered segment (w1 wide at p1, w2 at p2), with round ends unless ``round_ends`` is False."""
        a, b = np.asarray(p1, np.float64), np.asarray(p2, np.float64)
        d = b - a
        n = float(np.hypot(*d))
        if n > 1e-6:
            perp = np.array([-d[1], d[0]]) / n
            self.poly([a + perp * w1 / 2, b + perp * w2 / 2, b - perp * w2 / 2, a - perp * w1 / 2], colour)
        if round_ends:
            self.circle(a, w1 / 2, colour)
            self.circle(b, w2 / 2, colour)


def _rounded_rect(x1: float, y1: float, x2: float, y2: float, r: float) -> np.ndarray:
    r = max(0.0, min(r, (x2 - x1) / 2, (y2 - y1) / 2))
    pts = []
    for cx, cy, a0 in ((x2 - r, y1 + r, -90), (x2 - r, y2 - r, 0), (x1 + r, y2 - r, 90), (x1 + r, y1 + r, 180)):
        for a in np.radians(np.linspace(a0, a0 + 90, 5)):
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return np.asarray(pts)


@dataclasses.dataclass
class _Colours:
    skin: BGR
    hair: BGR
    upper: BGR
    lower: BGR
    shoes: BGR
    hat: BGR
    backpack: BGR
    handbag: BGR
    mouth: BGR


def _colours(a: dict[str, bool], app: Appearance) -> _Colours:
    upper = _named_colour(next(n for n in SYNTHETIC_GROUPS["upper_colour"] if a[n]), app.upper_shade)
    lower = _named_colour(next(n for n in SYNTHETIC_GROUPS["lower_colour"] if a[n]), app.lower_shade)
    # hair stands out from the face and from the top, so long hair falling down the back shows
    hair = _pick_contrasting(_GREY_HAIR if a["AgeOver60"] else _HAIR, app.hair_tone, [app.skin, upper], 70)
    return _Colours(
        skin=app.skin,
        hair=hair,
        upper=upper,
        lower=lower,
        shoes=_SHOES[min(int(app.shoe_tone * len(_SHOES)), len(_SHOES) - 1)],
        hat=_pick_contrasting(_HAT, app.hat_tone, [hair, app.skin], 110),
        backpack=_pick_contrasting(_BAG, app.backpack_tone, [upper, hair], 120),
        handbag=_pick_contrasting(_BAG, app.handbag_tone, [upper, lower, app.skin], 90),
        mouth=(70, 70, 175) if a["Female"] and not a["AgeLess18"] else _scale(app.skin, 0.7),
    )


@dataclasses.dataclass
class _Geo:
    """Body landmarks in canvas pixels (side view faces +x)."""

    u: float  # nominal figure height
    cx: float
    foot_y: float
    hip_y: float
    shoulder_y: float
    hx: float
    hy: float
    ax: float  # head half-width
    ay: float  # head half-height
    sw: float  # shoulder half-width
    hipw: float
    waist: float
    depth: float  # side-view torso half-depth
    hipd: float
    bust: float
    thigh: float
    calf: float
    upper_arm: float
    forearm: float
    shoe_h: float
    stoop: float  # radians, side view only
    phase: float
    stride: float
    arm_swing: float
    female: bool

    def t(self, p: Sequence[float]) -> tuple[float, float]:
        """Upper-body transform: rotate about the hips by the stoop (elderly, side view)."""
        if not self.stoop:
            return float(p[0]), float(p[1])
        x, y = p[0] - self.cx, p[1] - self.hip_y
        c, s = math.cos(self.stoop), math.sin(self.stoop)
        return self.cx + x * c - y * s, self.hip_y + x * s + y * c

    def ts(self, pts: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
        return [self.t(p) for p in pts]


def _side_leg(g: _Geo, theta: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Knee and ankle offsets from the hip for a leg at angle ``theta`` from vertical (positive: forward)."""
    calf_a = theta * 1.7 if theta < 0 else theta * 0.4
    knee = (g.thigh * math.sin(theta), g.thigh * math.cos(theta))
    ankle = (knee[0] + g.calf * math.sin(calf_a), knee[1] + g.calf * math.cos(calf_a))
    return knee, ankle


def _geometry(a: dict[str, bool], app: Appearance, pose: Pose, h: int, w: int, view: str) -> _Geo:
    child, old, female = a["AgeLess18"], a["AgeOver60"], a["Female"]
    body = (0.74 if child else 0.9 if old else 0.95) * app.height
    if female and not child:
        body *= 0.97
    u = min(pose.scale * body * h, 0.97 * h)
    foot_y = min(max(pose.foot * h, u * 1.02 + 0.01 * h), h - 1.0)
    head_ratio = (0.2 if child else 0.16) * app.head  # a little large: hat, hair, face and view live here
    leg = (0.46 if child else 0.5) * u
    stride = pose.stride * (0.7 if old else 1.0)
    g = _Geo(
        u=u,
        cx=w / 2 + pose.dx * w - (0.05 * pose.scale * body * h if (old and view == "Side") else 0.0),
        foot_y=foot_y,
        hip_y=0.0,
        shoulder_y=0.0,
        hx=0.0,
        hy=0.0,
        ax=head_ratio * u * (0.46 if view == "Side" else 0.4),
        ay=head_ratio * u / 2,
        # gender shows in the build: narrow shoulders, a waist and wide hips against broad shoulders
        sw=(0.105 if child else 0.095 if female else 0.138) * u * app.build,
        hipw=(0.085 if child else 0.115 if female else 0.086) * u * app.build,
        waist=(0.08 if child else 0.066 if female else 0.097) * u * app.build,
        depth=(0.066 if female else 0.072) * u * app.build,
        hipd=(0.085 if female and not child else 0.066) * u * app.build,
        bust=0.032 * u if female and not child else 0.0,
        thigh=leg / 2,
        calf=leg / 2,
        upper_arm=(0.16 if child else 0.175) * u,
        forearm=(0.15 if child else 0.16) * u,
        shoe_h=0.022 * u,
        stoop=math.radians(14) if (old and view == "Side") else 0.0,
        phase=pose.phase,
        stride=stride,
        arm_swing=pose.arm_swing,
        female=female,
    )
    if view == "Side":
        drop = max(_side_leg(g, s * stride * math.sin(pose.phase))[1][1] for s in (1, -1))
    else:
        drop = leg
    g.hip_y = foot_y - g.shoe_h - drop
    g.shoulder_y = g.hip_y - (0.27 if child else 0.3) * u
    neck = (0.02 if child else 0.008 if old else 0.03) * u
    hx, hy = g.t((g.cx + (0.012 * u if view == "Side" else 0.0), g.shoulder_y - neck - g.ay))
    g.hx, g.hy = hx, hy
    return g


def _draw_leg_parts(
    layer: _Layer, g: _Geo, a: dict[str, bool], c: _Colours, hip, knee, ankle, shade: float, side_view: bool
) -> None:
    u = g.u
    skin, lower, shoes = _scale(c.skin, shade), _scale(c.lower, shade), _scale(c.shoes, shade)
    tw, kw, aw = (0.072 if g.female else 0.08) * u, 0.052 * u, 0.036 * u
    layer.limb(hip, knee, tw, kw, skin)
    layer.limb(knee, ankle, kw, aw, skin)
    if a["Trousers"]:
        layer.limb(hip, knee, tw + 0.012 * u, kw + 0.016 * u, lower)
        layer.limb(knee, ankle, kw + 0.016 * u, aw + 0.022 * u, lower)
    elif a["Shorts"]:
        hem = (hip[0] + 0.75 * (knee[0] - hip[0]), hip[1] + 0.75 * (knee[1] - hip[1]))
        layer.limb(hip, hem, tw + 0.014 * u, tw * 0.85 + 0.016 * u, lower)
    if side_view:
        layer.ellipse((ankle[0] + 0.022 * u, ankle[1] + 0.008 * u), (0.048 * u, 0.02 * u), shoes)
    else:
        layer.ellipse((ankle[0], ankle[1] + 0.01 * u), (0.034 * u, 0.02 * u), shoes)


def _draw_skirt(layer: _Layer, g: _Geo, c: _Colours, app: Appearance, side_view: bool) -> None:
    u = g.u
    top = g.hip_y - 0.04 * u
    hem = g.hip_y + (0.36 + 0.2 * app.skirt_length) * (g.thigh + g.calf)  # to the knee: longer than shorts
    flare = 0.045 * u + 0.02 * u * abs(math.sin(g.phase))
    if side_view:
        x0, x1 = g.cx - g.hipd, g.cx + g.hipd * 0.9
        pts = [(x0, top), (x1, top), (x1 + flare, hem), (x0 - flare, hem)]
    else:
        pts = [(g.cx - g.hipw, top), (g.cx + g.hipw, top), (g.cx + g.hipw + flare, hem), (g.cx - g.hipw - flare, hem)]
    layer.poly(pts, c.lower)


def _draw_hips(layer: _Layer, g: _Geo, a: dict[str, bool], c: _Colours, side_view: bool) -> None:
    if not (a["Trousers"] or a["Shorts"]):
        return
    u = g.u
    if side_view:
        x0, x1 = g.cx - g.hipd, g.cx + g.hipd * 0.9
        pts = [(x0, g.hip_y - 0.04 * u), (x1, g.hip_y - 0.04 * u), (x1, g.hip_y + 0.04 * u), (x0, g.hip_y + 0.05 * u)]
    else:
        pts = [
            (g.cx - g.hipw, g.hip_y - 0.04 * u),
            (g.cx + g.hipw, g.hip_y - 0.04 * u),
            (g.cx + g.hipw * 1.02, g.hip_y + 0.06 * u),
            (g.cx, g.hip_y + 0.075 * u),
            (g.cx - g.hipw * 1.02, g.hip_y + 0.06 * u),
        ]
    layer.poly(pts, c.lower)


def _draw_arm(
    layer: _Layer, g: _Geo, a: dict[str, bool], c: _Colours, joint, elbow, hand, shade: float
) -> tuple[float, float]:
    u = g.u
    uw, ew, ww = 0.05 * u, 0.042 * u, 0.034 * u
    skin, upper = _scale(c.skin, shade), _scale(c.upper, shade * 0.9)
    if a["ShortSleeve"]:
        layer.limb(joint, elbow, uw, ew, skin)
        layer.limb(elbow, hand, ew, ww, skin)
        cuff = (joint[0] + 0.4 * (elbow[0] - joint[0]), joint[1] + 0.4 * (elbow[1] - joint[1]))
        layer.limb(joint, cuff, uw + 0.016 * u, uw + 0.014 * u, upper)
        # a darker hem band where the sleeve ends: bare arms show even when the top is skin-coloured
        d = np.subtract(elbow, joint)
        n = float(np.hypot(*d))
        if n > 1e-6:
            end = np.asarray(cuff) + d / n * 0.012 * u
            start = end - d / n * 0.03 * u
            layer.limb(start, end, uw + 0.016 * u, uw + 0.016 * u, _scale(upper, 0.6), round_ends=False)
    else:
        layer.limb(joint, elbow, uw + 0.008 * u, ew + 0.008 * u, upper)
        layer.limb(elbow, hand, ew + 0.008 * u, ww + 0.008 * u, upper)
    end = (hand[0] + 0.1 * (hand[0] - elbow[0]), hand[1] + 0.1 * (hand[1] - elbow[1]))  # the hand, past the wrist
    layer.circle(end, 0.023 * u, skin)
    return end


def _draw_handbag(layer: _Layer, g: _Geo, c: _Colours, app: Appearance, hand: Sequence[float]) -> None:
    u = g.u
    bw = (0.13 + 0.05 * app.handbag_tone) * u
    bh = (0.11 + 0.04 * (1 - app.handbag_tone)) * u
    top = hand[1] + 0.035 * u
    x = hand[0]
    dark = _scale(c.handbag, 0.55)
    for dx in (-0.3 * bw, 0.3 * bw):
        layer.limb(hand, (x + dx, top + 0.01 * u), 0.011 * u, 0.011 * u, dark)
    outer = [(x - 0.42 * bw - 1, top - 1), (x + 0.42 * bw + 1, top - 1), (x + bw / 2 + 1, top + bh + 1)]
    outer += [(x - bw / 2 - 1, top + bh + 1)]
    layer.poly(outer, dark)
    layer.poly([(x - 0.42 * bw, top), (x + 0.42 * bw, top), (x + bw / 2, top + bh), (x - bw / 2, top + bh)], c.handbag)
    layer.poly(
        [(x - 0.42 * bw, top), (x + 0.42 * bw, top), (x + 0.4 * bw, top + 0.22 * bh), (x - 0.4 * bw, top + 0.22 * bh)],
        dark,
    )


def _draw_cane(layer: _Layer, g: _Geo, hand: Sequence[float], forward: float) -> None:
    layer.limb(hand, (hand[0] + forward * 0.05 * g.u, g.foot_y), 0.014 * g.u, 0.012 * g.u, (30, 45, 70))


def _draw_hat(layer: _Layer, g: _Geo, c: _Colours, app: Appearance, view: str) -> None:
    """Every style rises well above the hairline and juts out past the head (visor, cuff or brim).

    At 128x64 the head is ~16 px tall: a hat that only recolours the top of the skull reads as hair
    once blurred and JPEG-compressed, so the silhouette changes as well as the colour.
    """
    hx, hy, ax, ay = g.hx, g.hy, g.ax, g.ay
    band = _scale(c.hat, 0.6)
    if app.hat_style == 0:  # cap: tall crown and a visor
        layer.ellipse((hx, hy - 0.15 * ay), (1.2 * ax, 1.3 * ay), c.hat, arc=(180, 360))
        if view == "Side":
            layer.ellipse((hx + 1.15 * ax, hy - 0.2 * ay), (0.85 * ax, 0.22 * ay), band)
        elif view == "Front":
            layer.ellipse((hx, hy - 0.15 * ay), (1.35 * ax, 0.32 * ay), band)
        else:
            layer.ellipse((hx, hy - 0.17 * ay), (1.2 * ax, 0.18 * ay), band)
    elif app.hat_style == 1:  # beanie: a high dome with a folded cuff
        layer.ellipse((hx, hy - 0.1 * ay), (1.2 * ax, 1.55 * ay), c.hat, arc=(180, 360))
        layer.poly(
            [(hx - 1.24 * ax, hy - 0.45 * ay), (hx + 1.24 * ax, hy - 0.45 * ay), (hx + 1.24 * ax, hy - 0.02 * ay)]
            + [(hx - 1.24 * ax, hy - 0.02 * ay)],
            band,
        )
    else:  # brimmed hat: crown on a wide brim
        brim_x = 2.1 * ax if view != "Side" else 1.9 * ax
        layer.ellipse((hx, hy - 0.35 * ay), (brim_x, 0.32 * ay), c.hat)
        layer.ellipse((hx, hy - 0.4 * ay), (1.05 * ax, 1.25 * ay), c.hat, arc=(180, 360))
        layer.poly(
            [(hx - 1.03 * ax, hy - 0.68 * ay), (hx + 1.03 * ax, hy - 0.68 * ay), (hx + 1.03 * ax, hy - 0.42 * ay)]
            + [(hx - 1.03 * ax, hy - 0.42 * ay)],
            band,
        )


def _draw_head_front_back(layer: _Layer, g: _Geo, a: dict[str, bool], c: _Colours, back: bool) -> None:
    hx, hy, ax, ay = g.hx, g.hy, g.ax, g.ay
    for s in (-1, 1):
        layer.ellipse((hx + s * 0.97 * ax, hy + 0.1 * ay), (0.17 * ax, 0.25 * ay), _scale(c.skin, 0.92))
    if back:
        layer.ellipse((hx, hy - 0.02 * ay), (1.05 * ax, 1.02 * ay), c.hair)
        return
    layer.ellipse((hx, hy - 0.07 * ay), (1.06 * ax, 1.02 * ay), c.hair)
    layer.ellipse((hx, hy + 0.1 * ay), (0.92 * ax, 0.9 * ay), c.skin)
    if a["LongHair"]:
        layer.ellipse((hx - 0.25 * ax, hy - 0.45 * ay), (0.75 * ax, 0.35 * ay), c.hair, angle=15, arc=(180, 360))
    elif a["Hat"]:  # short hair at the temples below the hat: its colour (grey for the elderly) still shows
        for s in (-1, 1):
            layer.ellipse((hx + s * 0.9 * ax, hy - 0.05 * ay), (0.3 * ax, 0.5 * ay), c.hair)
    r = max(0.8, 0.16 * ax)  # eyes and brows: what tells a face from the back of a head at 16 px
    for s in (-1, 1):
        layer.circle((hx + s * 0.36 * ax, hy + 0.02 * ay), r, _EYE)
        layer.ellipse((hx + s * 0.36 * ax, hy - 0.25 * ay), (0.22 * ax, 0.07 * ay), _scale(c.hair, 0.8))
    layer.ellipse((hx, hy + 0.3 * ay), (0.09 * ax, 0.14 * ay), _scale(c.skin, 0.85))
    layer.ellipse((hx, hy + 0.56 * ay), (0.28 * ax, 0.08 * ay), c.mouth)


def _draw_head_side(layer: _Layer, g: _Geo, c: _Colours) -> None:
    hx, hy, ax, ay = g.hx, g.hy, g.ax, g.ay
    layer.ellipse((hx - 0.06 * ax, hy - 0.04 * ay), (1.04 * ax, 1.03 * ay), c.hair)
    layer.ellipse((hx + 0.17 * ax, hy + 0.13 * ay), (0.86 * ax, 0.86 * ay), c.skin)
    layer.poly(
        [(hx + 0.9 * ax, hy - 0.08 * ay), (hx + 1.22 * ax, hy + 0.3 * ay), (hx + 0.92 * ax, hy + 0.38 * ay)], c.skin
    )
    layer.ellipse((hx - 0.12 * ax, hy + 0.12 * ay), (0.16 * ax, 0.24 * ay), _scale(c.skin, 0.88))
    layer.circle((hx + 0.62 * ax, hy + 0.0 * ay), max(0.7, 0.1 * ax), _EYE)
    layer.ellipse((hx + 0.78 * ax, hy + 0.58 * ay), (0.16 * ax, 0.06 * ay), c.mouth)


def _draw_front_back(layer: _Layer, g: _Geo, a: dict[str, bool], c: _Colours, app: Appearance, back: bool) -> None:
    u, cx, sy = g.u, g.cx, g.shoulder_y
    torso = g.hip_y - sy
    skirt = a["Skirt"]
    # backpack top peeks above the shoulders behind the neck in front view
    if a["Backpack"] and not back:
        layer.poly(_rounded_rect(cx - 0.75 * g.sw, sy - 0.06 * u, cx + 0.75 * g.sw, sy + 0.2 * u, 0.03 * u), c.backpack)
    # legs: in front/back view the walking shows as one foot lifted and legs slightly apart
    spread = (0.006 if skirt else 0.016) * u
    lift = 0.03 * u * math.sin(g.phase)
    for side in (-1, 1):
        hip = (cx + side * 0.5 * g.hipw, g.hip_y)
        up = max(0.0, side * lift)
        ankle = (cx + side * (0.5 * g.hipw + spread), g.foot_y - g.shoe_h - up)
        knee = ((hip[0] + ankle[0]) / 2 + side * 0.004 * u, (hip[1] + ankle[1]) / 2)
        _draw_leg_parts(layer, g, a, c, hip, knee, ankle, 1.0, False)
    _draw_hips(layer, g, a, c, False)
    if skirt:
        _draw_skirt(layer, g, c, app, False)
    # neck and torso
    layer.limb((cx, g.hy + 0.6 * g.ay), (cx, sy + 0.02 * u), 0.05 * u, 0.05 * u, c.skin)
    half = [
        (0.05 * u, sy - 0.006 * u),
        (g.sw - 0.025 * u, sy + 0.004 * u),
        (g.sw, sy + 0.04 * u),
        (g.sw * 0.93, sy + 0.12 * u),
        (g.waist, sy + 0.62 * torso),
        (g.hipw * 1.03, g.hip_y + 0.015 * u),
    ]
    pts = [(cx - x, y) for x, y in half] + [(cx + x, y) for x, y in reversed(half)]
    layer.poly(pts, c.upper)
    for s in (-1, 1):
        layer.circle((cx + s * (g.sw - 0.03 * u), sy + 0.035 * u), 0.035 * u, c.upper)
    if not back:  # the front: a skin V neckline and a placket (zip or buttons) down to the hem
        placket = _scale(c.upper, 0.55) if max(c.upper) > 90 else tuple(min(255, v + 70) for v in c.upper)
        layer.limb((cx, sy + 0.05 * u), (cx, g.hip_y), 0.016 * u, 0.016 * u, placket)
        layer.poly([(cx - 0.05 * u, sy - 0.006 * u), (cx + 0.05 * u, sy - 0.006 * u), (cx, sy + 0.065 * u)], c.skin)
    # arms: swinging forward foreshortens the forearm
    hands = {}
    for side in (-1, 1):
        joint = (cx + side * (g.sw - 0.025 * u), sy + 0.035 * u)
        swing = g.arm_swing * math.sin(g.phase) * -side
        fore = 1.0 - 0.35 * max(0.0, swing)
        elbow = (joint[0] + side * 0.03 * u, joint[1] + g.upper_arm * (1 - 0.15 * max(0.0, swing)))
        hand = (elbow[0] + side * 0.012 * u, elbow[1] + g.forearm * fore)
        hands[side] = _draw_arm(layer, g, a, c, joint, elbow, hand, 1.0)
    # long hair: a curtain down the back, strands over the shoulders in front
    if a["LongHair"]:
        length = sy + (0.17 + 0.13 * app.hair_length) * u  # shoulder blades to mid-back: a large area
        hx, hy, ax = g.hx, g.hy, g.ax
        if back:
            layer.poly(
                [(hx - 1.05 * ax, hy), (hx + 1.05 * ax, hy), (hx + 1.3 * ax, length), (hx - 1.3 * ax, length)], c.hair
            )
        else:
            for s in (-1, 1):
                layer.poly(
                    [
                        (hx + s * 0.7 * ax, hy - 0.5 * g.ay),
                        (hx + s * 1.08 * ax, hy - 0.2 * g.ay),
                        (hx + s * 1.75 * ax, length),
                        (hx + s * 0.65 * ax, length - 0.01 * u),
                        (hx + s * 0.75 * ax, hy + 0.6 * g.ay),
                    ],
                    c.hair,
                )
    # backpack: a box over the back (long hair shows above it), two straps and a chest strap in front
    if a["Backpack"] and back:
        dark = _scale(c.backpack, 0.6)
        # a daypack: narrower and shorter than the back, so the top's colour shows around it
        box = (cx - 0.62 * g.sw, sy + 0.05 * u, cx + 0.62 * g.sw, sy + 0.25 * u)
        layer.poly(_rounded_rect(box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1, 0.035 * u), dark)
        layer.poly(_rounded_rect(*box, 0.035 * u), c.backpack)
        layer.poly(_rounded_rect(cx - 0.38 * g.sw, sy + 0.15 * u, cx + 0.38 * g.sw, sy + 0.22 * u, 0.02 * u), dark)
    elif a["Backpack"]:
        for s in (-1, 1):
            layer.limb((cx + s * 0.55 * g.sw, sy), (cx + s * 0.5 * g.sw, sy + 0.2 * u), 0.05 * u, 0.046 * u, c.backpack)
        layer.limb((cx - 0.5 * g.sw, sy + 0.12 * u), (cx + 0.5 * g.sw, sy + 0.12 * u), 0.02 * u, 0.02 * u, c.backpack)
    _draw_head_front_back(layer, g, a, c, back)
    if a["Hat"]:
        _draw_hat(layer, g, c, app, "Back" if back else "Front")
    bag_side = app.handbag_side
    if a["HandBag"]:
        _draw_handbag(layer, g, c, app, hands[bag_side])
    if a["AgeOver60"] and app.cane:
        _draw_cane(layer, g, hands[-bag_side], -bag_side * 0.3)


def _draw_side(layer: _Layer, g: _Geo, a: dict[str, bool], c: _Colours, app: Appearance) -> None:
    u, cx, sy = g.u, g.cx, g.shoulder_y
    torso = g.hip_y - sy
    d, hd = g.depth, g.hipd
    theta = g.stride * math.sin(g.phase)
    hip = (cx, g.hip_y)

    def arm(sign: float) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        joint = g.t((cx - 0.1 * d, sy + 0.035 * u))
        swing = g.arm_swing * (0.5 if g.stoop else 1.0)
        alpha = -sign * swing * math.sin(g.phase) + (0.12 if g.stoop else 0.0)
        elbow = (joint[0] + g.upper_arm * math.sin(alpha), joint[1] + g.upper_arm * math.cos(alpha))
        beta = alpha + 0.1 + 0.5 * max(0.0, alpha)
        hand = (elbow[0] + g.forearm * math.sin(beta), elbow[1] + g.forearm * math.cos(beta))
        return joint, elbow, hand

    # far arm and far leg first, darker, so the near limbs read in front of them
    far_hand = _draw_arm(layer, g, a, c, *arm(-1.0), 0.78)
    if a["AgeOver60"] and app.cane and a["HandBag"]:  # the bag takes the near hand, the cane the far one
        _draw_cane(layer, g, far_hand, 1.0)
    knee, ankle = _side_leg(g, -theta)
    _draw_leg_parts(
        layer, g, a, c, hip, (cx + knee[0], g.hip_y + knee[1]), (cx + ankle[0], g.hip_y + ankle[1]), 0.8, True
    )
    if a["Backpack"]:
        dark = _scale(c.backpack, 0.6)
        box = _rounded_rect(cx - d - 0.13 * u, sy + 0.01 * u, cx - d + 0.015 * u, sy + 0.3 * u, 0.03 * u)
        layer.poly(g.ts(box + np.sign(box - box.mean(0))), dark)
        layer.poly(g.ts(box), c.backpack)
        pocket = _rounded_rect(cx - d - 0.155 * u, sy + 0.14 * u, cx - d - 0.09 * u, sy + 0.27 * u, 0.015 * u)
        layer.poly(g.ts(pocket), dark)
    knee, ankle = _side_leg(g, theta)
    _draw_leg_parts(
        layer, g, a, c, hip, (cx + knee[0], g.hip_y + knee[1]), (cx + ankle[0], g.hip_y + ankle[1]), 1.0, True
    )
    _draw_hips(layer, g, a, c, True)
    if a["Skirt"]:
        _draw_skirt(layer, g, c, app, True)
    layer.limb((g.hx - 0.1 * g.ax, g.hy + 0.6 * g.ay), g.t((cx, sy + 0.02 * u)), 0.05 * u, 0.05 * u, c.skin)
    pts = [
        (cx - 0.55 * d, sy - 0.01 * u),
        (cx - d, sy + 0.04 * u),
        (cx - d * 0.97, sy + 0.5 * torso),
        (cx - d * 0.85, sy + 0.72 * torso),
        (cx - hd, g.hip_y + 0.015 * u),
        (cx + hd * 0.9, g.hip_y + 0.015 * u),
        (cx + d * 0.8, sy + 0.72 * torso),
        (cx + d * 0.9 + g.bust, sy + 0.32 * torso),
        (cx + d * 0.8, sy + 0.06 * u),
        (cx + 0.35 * d, sy - 0.01 * u),
    ]
    layer.poly(g.ts(pts), c.upper)
    if a["Backpack"]:
        strap = g.ts([(cx - 0.1 * d, sy - 0.005 * u), (cx + 0.75 * d, sy + 0.12 * u), (cx - 0.3 * d, sy + 0.2 * u)])
        layer.limb(strap[0], strap[1], 0.03 * u, 0.03 * u, c.backpack)
        layer.limb(strap[1], strap[2], 0.03 * u, 0.03 * u, c.backpack)
    if a["LongHair"]:
        hx, hy, ax, ay = g.hx, g.hy, g.ax, g.ay
        length = (0.17 + 0.13 * app.hair_length) * u
        bx, by = g.t((cx - d, sy + length))
        layer.poly(
            [
                (hx - 0.2 * ax, hy - 0.8 * ay),
                (hx - 1.1 * ax, hy - 0.1 * ay),
                (bx - 0.02 * u, by),
                (bx + 0.08 * u, by - 0.01 * u),
                (hx - 0.25 * ax, hy + 0.7 * ay),
            ],
            c.hair,
        )
    _draw_head_side(layer, g, c)
    if a["Hat"]:  # hair at the nape below the hat: its colour (grey for the elderly) still shows
        layer.ellipse((g.hx - 0.72 * g.ax, g.hy + 0.1 * g.ay), (0.45 * g.ax, 0.55 * g.ay), c.hair)
        _draw_hat(layer, g, c, app, "Side")
    hand = _draw_arm(layer, g, a, c, *arm(1.0), 1.0)
    if a["HandBag"]:
        _draw_handbag(layer, g, c, app, hand)
    elif a["AgeOver60"] and app.cane:
        _draw_cane(layer, g, hand, 1.0)


def render_person_layer(
    attrs: Mapping[str, bool] | Sequence[int] | np.ndarray,
    appearance: Appearance,
    size: tuple[int, int] = (256, 128),
    pose: Pose | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one person on a transparent canvas: (BGR uint8 premultiplied by coverage, coverage mask uint8).

    Deterministic (no randomness): the identity is in ``appearance``, the placement in ``pose``.
    Composite with ``out = bg * (1 - mask/255) + image`` (see :func:`paste_person`).
    """
    a = vector_to_attrs(attrs)
    pose = pose or Pose()
    h, w = int(size[0]), int(size[1])
    view = next(v for v in _VIEWS if a[v])
    layer = _Layer(h, w)
    g = _geometry(a, appearance, pose, h, w, view)
    c = _colours(a, appearance)
    if view == "Side":
        _draw_side(layer, g, a, c, appearance)
    else:
        _draw_front_back(layer, g, a, c, appearance, back=view == "Back")
    img, mask = layer.img, layer.mask
    if abs(pose.lean) > 0.05:
        m = cv2.getRotationMatrix2D((g.cx, g.foot_y), pose.lean, 1.0)
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    if pose.flip:
        img, mask = img[:, ::-1].copy(), mask[:, ::-1].copy()
    return img, mask


# -- backgrounds, compositing and camera degradations ------------------------------------
def _muted(rng: np.random.Generator, max_sat: float = 70, val: tuple[float, float] = (40, 220)) -> BGR:
    return _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, max_sat), rng.uniform(*val))


def _gradient(h: int, w: int, top: Sequence[float], bottom: Sequence[float]) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(col, (h, w, 3)).astype(np.uint8)


def _clutter(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A crop background: wall/ground gradients with rectangles and lines, muted, hazy and out of focus.

    The camera is focused on the pedestrian, so the scene behind is softer and lower in contrast.
    That matters for learning: sharp, full-contrast clutter mimics clothes (a dark rectangle behind
    the legs reads as black trousers, a pale one as a white top), and with it clear-tiny reached val
    mA 0.75 after 6.5k training images against 0.81 on plain backgrounds.
    """
    horizon = int(h * rng.uniform(0.45, 0.85))
    img = np.empty((h, w, 3), np.uint8)
    img[:horizon] = _gradient(horizon, w, _muted(rng, val=(60, 200)), _muted(rng, val=(60, 200)))
    img[horizon:] = _gradient(h - horizon, w, _muted(rng, 40, (60, 200)), _muted(rng, 40, (60, 200)))
    for _ in range(int(rng.integers(2, 7))):
        x1, x2 = sorted(rng.uniform(-0.2, 1.2, 2) * w)
        y1, y2 = sorted(rng.uniform(-0.1, 1.0, 2) * h)
        thick = -1 if rng.random() < 0.7 else int(rng.integers(1, 4))
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), _muted(rng), thick, cv2.LINE_AA)
    for _ in range(int(rng.integers(1, 5))):
        if rng.random() < 0.5:
            x = rng.uniform(0, w)
            p1, p2 = (x, rng.uniform(-0.1, 0.5) * h), (x + rng.uniform(-3, 3), rng.uniform(0.5, 1.1) * h)
        else:
            y = rng.uniform(0, h)
            p1, p2 = (-5.0, y), (w + 5.0, y + rng.uniform(-0.1, 0.1) * h)
        pt1, pt2 = (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1]))
        cv2.line(img, pt1, pt2, _muted(rng), int(rng.integers(1, 5)), cv2.LINE_AA)
    haze, sigma = rng.uniform(0.3, 0.55), rng.uniform(0.8, 1.6) * h / 128
    out = img.astype(np.float32)
    mean = out.reshape(-1, 3).mean(axis=0)
    out = cv2.GaussianBlur(mean + haze * (out - mean), (0, 0), sigma)
    return np.clip(out, 0, 255).astype(np.uint8)


def paste_person(
    frame: np.ndarray, image: np.ndarray, mask: np.ndarray, x: int, y: int, min_alpha: int = 64
) -> tuple[int, int, int, int] | None:
    """Blend a person layer into ``frame`` (in place) with its top-left corner at (x, y); clips at the borders.

    Returns the tight box (x1, y1, x2, y2), x2/y2 exclusive, of the visible person (mask >= min_alpha)
    in frame pixels, or None when nothing of it lies inside the frame.
    """
    fh, fw = frame.shape[:2]
    h, w = mask.shape
    x1, y1, x2, y2 = max(0, x), max(0, y), min(fw, x + w), min(fh, y + h)
    if x1 >= x2 or y1 >= y2:
        return None
    sub_m = mask[y1 - y : y2 - y, x1 - x : x2 - x]
    sub_i = image[y1 - y : y2 - y, x1 - x : x2 - x]
    # integer "over" with a premultiplied foreground: bg * (255 - a) / 255 + fg
    acc = frame[y1:y2, x1:x2].astype(np.uint16)
    acc *= (255 - sub_m).astype(np.uint16)[..., None]
    acc += 127
    acc //= 255
    acc += sub_i
    np.minimum(acc, 255, out=acc)
    frame[y1:y2, x1:x2] = acc
    bx, by, bw, bh = cv2.boundingRect((sub_m >= min_alpha).astype(np.uint8))
    if bw == 0 or bh == 0:
        return None
    return x1 + bx, y1 + by, x1 + bx + bw, y1 + by + bh


def _degrade(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Camera effects: low resolution, blur, gain / gamma / colour cast, sensor noise; returns (image, JPEG quality).

    Mild on purpose: each effect hits a minority of crops and blur is scaled to the crop size, so the
    16-pixel head (hat, hair, face: half the hard attributes) survives in most of them.
    """
    u = rng.random(10)
    h, w = img.shape[:2]
    if u[0] < 0.15:  # low-resolution camera: down and back up
        f = 0.55 + 0.3 * u[1]
        small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if u[2] < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), (0.3 + 0.5 * u[3]) * h / 128)
    elif u[2] < 0.45:  # horizontal motion blur
        img = cv2.blur(img, (3, 1))
    gain = 0.85 + 0.3 * u[4]
    gamma = 0.9 + 0.3 * u[5]
    cast = 0.94 + 0.12 * rng.random(3)
    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.stack([np.clip(255 * gain * cast[k] * x**gamma, 0, 255) for k in range(3)], axis=-1)
    img = cv2.LUT(img, lut.astype(np.uint8)[None])
    sigma = 4.0 * u[6]
    if sigma > 0.5:
        noisy = rng.standard_normal(img.shape, dtype=np.float32)
        noisy *= sigma
        noisy += img
        img = np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)
    quality = 55 + int(u[7] * 41)
    return img, min(quality, 95)


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _render_jpeg(attrs, appearance: Appearance, rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    h, w = int(size[0]), int(size[1])
    pose = sample_pose(rng)
    bg = _clutter(rng, h, w)
    img, mask = render_person_layer(attrs, appearance, (h, w), pose)
    paste_person(bg, img, mask, 0, 0)
    out, quality = _degrade(bg, rng)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode a rendered person")
    return buf.tobytes()


def render_person(
    attrs: Mapping[str, bool] | Sequence[int] | np.ndarray,
    appearance: Appearance,
    rng: np.random.Generator | int | None = None,
    size: tuple[int, int] = (256, 128),
) -> np.ndarray:
    """A pedestrian crop (BGR uint8, ``size`` = (H, W)) as a camera would give it.

    Pose, placement, background clutter and camera degradations (blur, lighting, noise,
    JPEG quality 55-95) come from ``rng``; the draws do not depend on ``attrs``, so the same
    seed with different attributes changes only the attribute's pixels.
    """
    data = _render_jpeg(attrs, appearance, _as_rng(rng), size)
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


# -- identities and the on-disk dataset ------------------------------------------------
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
    attr_groups = [g for g in SYNTHETIC_GROUPS if g != "view"]
    for name in _SPLITS:
        short = _ensure_coverage(labels, np.sort(split_rows[name]), rng, attr_groups)
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


def _image_name(pid: int, n: int) -> str:
    return f"images/{pid:04d}_{n:02d}.jpg"


def generate_synthetic(
    out_dir: str | Path,
    config: SyntheticConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render a synthetic dataset into ``out_dir`` and return ``out_dir``.

    Deterministic: the same config gives a byte-identical ``labels.csv`` and identical
    images (each image has its own seed derived from (seed, pid, n), so order does not
    matter). ``labels.csv`` is written last, so a half-written folder is never loadable.
    ``progress(done, total)`` is called after every image (for a CLI progress bar).
    """
    cfg = config or SyntheticConfig()
    out = Path(out_dir).expanduser()
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    identities = sample_identities(cfg)
    total = cfg.num_identities * cfg.images_per_identity
    names: set[str] = set()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "pid", "split", *SYNTHETIC_ATTRIBUTES])
    done = 0
    for ident in identities:
        for n in range(cfg.images_per_identity):
            vec = ident.image_labels(n)
            rng = np.random.default_rng([cfg.seed, 2, ident.pid, n])
            name = _image_name(ident.pid, n)
            (out / name).write_bytes(_render_jpeg(vec, ident.appearance, rng, cfg.image_size))
            names.add(name)
            writer.writerow([name, ident.pid, ident.split, *(int(x) for x in vec)])
            done += 1
            if progress is not None:
                progress(done, total)
    if (out / META_FILE).exists():  # a previous synthetic run: drop its images this config does not have
        for old in images.glob("*.jpg"):
            if f"images/{old.name}" not in names:
                old.unlink()
    meta = {
        "format": "clear-sdk-synthetic",
        "version": 1,
        "config": dataclasses.asdict(cfg),
        "attributes": SYNTHETIC_ATTRIBUTES,
        "groups": SYNTHETIC_GROUPS,
        "num_images": total,
        "identities_per_split": {s: sum(i.split == s for i in identities) for s in _SPLITS},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    tmp = out / (LABELS_FILE + ".tmp")
    tmp.write_text(buf.getvalue(), newline="")
    tmp.replace(out / LABELS_FILE)
    logger.info("wrote %d synthetic images of %d identities to %s", total, cfg.num_identities, out)
    return out


@register_dataset("synthetic")
class SyntheticDataset(PARDataset):
    """The folder written by :func:`generate_synthetic`, read back like any labelled dataset.

    ``generate=True`` renders the dataset into ``root`` first when ``labels.csv`` is missing
    (with ``config``, or the default config).
    """

    name = "synthetic"
    attributes = list(SYNTHETIC_ATTRIBUTES)
    groups = {k: list(v) for k, v in SYNTHETIC_GROUPS.items()}
    homepage = "generated locally (`clear-sdk demo` or clear_sdk.training.data.synthetic.generate_synthetic)"

    def __init__(self, root: str | Path, generate: bool = False, config: SyntheticConfig | None = None) -> None:
        super().__init__(root)
        if not (self.root / LABELS_FILE).is_file():
            if not generate:
                raise DatasetError(
                    f"synthetic: no {LABELS_FILE} under {self.root}. The synthetic dataset is generated, not "
                    f"downloaded: run `clear-sdk demo`, call generate_synthetic('{self.root}'), "
                    "or pass generate=True."
                )
            generate_synthetic(self.root, config)
        elif generate and config is not None:
            self._warn_if_other_config(config)
        self.attributes, self.splits = _read_labels(self.root)

    def _warn_if_other_config(self, config: SyntheticConfig) -> None:
        try:
            saved = json.loads((self.root / META_FILE).read_text()).get("config")
        except (OSError, ValueError):
            return
        if saved != json.loads(json.dumps(dataclasses.asdict(config))):
            logger.warning(
                "%s already holds a synthetic dataset with another config; delete it to regenerate", self.root
            )


def _read_labels(root: Path) -> tuple[list[str], dict[str, list[Record]]]:
    """Parse labels.csv generically (header -> attribute columns), checking it against SYNTHETIC_ATTRIBUTES."""
    path = root / LABELS_FILE
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:3] != ["image", "pid", "split"]:
        raise DatasetError(f"{path}: the header must start with image,pid,split; regenerate with generate_synthetic")
    attributes = rows[0][3:]
    if attributes != SYNTHETIC_ATTRIBUTES:
        missing = [a for a in SYNTHETIC_ATTRIBUTES if a not in attributes]
        extra = [a for a in attributes if a not in SYNTHETIC_ATTRIBUTES]
        raise DatasetError(
            f"{path}: attribute columns do not match the synthetic schema (missing {missing}, unexpected {extra}"
            f"{', or out of order' if not (missing or extra) else ''}); regenerate with generate_synthetic"
        )
    splits: dict[str, list[Record]] = {s: [] for s in _SPLITS}
    missing_files: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise DatasetError(f"{path}:{line}: expected {len(rows[0])} columns, found {len(row)}")
        image, pid, split, values = row[0], row[1], row[2], row[3:]
        if split not in splits:
            raise DatasetError(f"{path}:{line}: unknown split {split!r}; expected one of {', '.join(_SPLITS)}")
        if any(v not in ("0", "1") for v in values):
            raise DatasetError(f"{path}:{line}: attribute values must be 0 or 1")
        try:
            pid_int = int(pid)
        except ValueError:
            raise DatasetError(f"{path}:{line}: pid {pid!r} is not an integer") from None
        img_path = root / image
        if not img_path.is_file():
            missing_files.append(image)
        labels = np.array([int(v) for v in values], np.uint8)
        splits[split].append(Record(path=str(img_path), labels=labels, pid=pid_int, camid=None))
    if missing_files:
        raise DatasetError(
            f"{root}: {len(missing_files)} image(s) named in {LABELS_FILE} are missing (first: {missing_files[0]}); "
            "regenerate with generate_synthetic"
        )
    splits["trainval"] = splits["train"] + splits["val"]
    return list(attributes), splits


# -- camera-stream scenes ---------------------------------------------------------------
def render_street(size: tuple[int, int] = (480, 640), rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """A static street background (buildings, pavement, road markings, poles) for the camera example."""
    rng = _as_rng(rng)
    h, w = int(size[0]), int(size[1])
    horizon = int(h * rng.uniform(0.3, 0.42))
    img = np.empty((h, w, 3), np.uint8)
    img[:horizon] = _gradient(horizon, w, _muted(rng, 40), _muted(rng, 40))
    x = 0
    while x < w:
        bw = int(w * rng.uniform(0.12, 0.3))
        top = int(horizon * rng.uniform(0.0, 0.6))
        colour = _muted(rng, 60)
        cv2.rectangle(img, (x, top), (x + bw, horizon), colour, -1)
        win = _scale(colour, 0.6 if rng.random() < 0.5 else 1.3)
        step = max(8, int(h * 0.06))
        for wy in range(top + step // 2, horizon - step // 2, step):
            for wx in range(x + step // 3, x + bw - step // 2, step):
                cv2.rectangle(img, (wx, wy), (wx + step // 2, wy + step // 2), win, -1)
        x += bw
    ground = _muted(rng, 15)
    img[horizon:] = _gradient(h - horizon, w, _scale(ground, 1.15), _scale(ground, 0.85))
    kerb = horizon + int((h - horizon) * 0.12)
    cv2.rectangle(img, (0, horizon), (w, kerb), _scale(ground, 1.3), -1)
    cv2.line(img, (0, kerb), (w, kerb), _scale(ground, 0.6), max(1, h // 160))
    lane = horizon + int((h - horizon) * 0.65)
    for x0 in range(int(rng.uniform(0, 60)), w, max(40, w // 8)):
        cv2.rectangle(img, (x0, lane), (x0 + max(20, w // 16), lane + max(2, h // 120)), (225, 225, 225), -1)
    for _ in range(int(rng.integers(1, 4))):
        px = int(rng.uniform(0.05, 0.95) * w)
        cv2.line(img, (px, int(horizon * 0.2)), (px, kerb), (50, 50, 55), max(2, w // 160), cv2.LINE_AA)
    return img


@dataclasses.dataclass
class _Walker:
    pid: int
    labels: np.ndarray
    appearance: Appearance
    x: float  # centre
    y: float  # foot line
    vx: float
    vy: float
    phase: float
    flip: bool


def synthetic_video_frames(
    num_frames: int,
    size: tuple[int, int] = (480, 640),
    num_people: int = 3,
    seed: int = 0,
    fps: float = 10.0,
    noise: float = 1.5,
) -> Iterator[tuple[np.ndarray, list[dict]]]:
    """Frames of people walking over a static street, with ground truth.

    Yields ``(frame BGR uint8 [H, W, 3], people)`` where each person is
    ``{"pid", "bbox": (x1, y1, x2, y2) exclusive ends, "attrs": {name: bool}, "truncated": bool}``.
    People walk across (side view), toward the camera (front) or away (back), are larger
    lower in the frame, are pasted with their soft masks (so background subtraction and HOG
    see a person, not a box) and are replaced by new identities when they leave.
    """
    rng = np.random.default_rng([seed, 3])
    h, w = int(size[0]), int(size[1])
    bg = render_street((h, w), rng)
    horizon = 0.36 * h
    y_min, y_max = horizon + 0.3 * (h - horizon), h - 0.02 * h
    max_h = 0.6 * h
    next_pid = 0

    def height_at(y: float) -> float:
        return max(16.0, max_h * (y - horizon) / (h - horizon))

    def spawn(inside: bool) -> _Walker:
        nonlocal next_pid
        labels = sample_identity_attributes(rng)
        app = sample_appearance(rng)
        view = _VIEWS[int(rng.choice(3, p=[0.2, 0.6, 0.2]))]
        labels[_INDEX[view]] = 1
        speed = rng.uniform(0.7, 1.2) * 10.0 / fps
        y = rng.uniform(y_min, y_max)
        if view == "Side":
            direction = 1.0 if rng.random() < 0.5 else -1.0
            ph = height_at(y)
            x = rng.uniform(0.1, 0.9) * w if inside else (-0.3 * ph if direction > 0 else w + 0.3 * ph)
            vx, vy, flip = direction * 0.07 * ph * speed, 0.0, direction < 0
        else:
            x = rng.uniform(0.15, 0.85) * w
            toward = view == "Front"
            if not inside:
                y = y_min if toward else y_max
            vx, vy, flip = 0.0, (1 if toward else -1) * 0.012 * (h - horizon) * speed, bool(rng.random() < 0.5)
        walker = _Walker(next_pid, labels, app, x, y, vx, vy, float(rng.uniform(0, 2 * math.pi)), flip)
        next_pid += 1
        return walker

    walkers = [spawn(True) for _ in range(num_people)]
    for _ in range(num_frames):
        frame = bg.copy()
        people = []
        for wk in sorted(walkers, key=lambda p: p.y):  # far first, so nearer people occlude them
            ph = height_at(wk.y)
            ch, cw = int(ph / 0.95) + 2, int(ph * 0.62) + 2
            pose = Pose(phase=wk.phase, stride=0.32, arm_swing=0.3, scale=0.95, foot=0.99, flip=wk.flip)
            img, mask = render_person_layer(wk.labels, wk.appearance, (ch, cw), pose)
            box = paste_person(frame, img, mask, int(round(wk.x - cw / 2)), int(round(wk.y - 0.99 * ch)))
            if box is not None:
                truncated = box[0] == 0 or box[1] == 0 or box[2] == w or box[3] == h
                people.append({"pid": wk.pid, "bbox": box, "attrs": vector_to_attrs(wk.labels), "truncated": truncated})
        if noise > 0:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        yield frame, people
        for i, wk in enumerate(walkers):
            wk.x += wk.vx
            wk.y += wk.vy
            wk.phase += 2 * math.pi * 0.9 / fps
            ph = height_at(wk.y)
            gone = wk.x < -0.4 * ph or wk.x > w + 0.4 * ph or wk.y < y_min - 1 or wk.y > h + 0.25 * ph
            if gone:
                walkers[i] = spawn(False)


_CODECS = {".mp4": ["mp4v"], ".avi": ["MJPG", "XVID"]}


def write_synthetic_video(
    path: str | Path,
    num_frames: int = 100,
    size: tuple[int, int] = (480, 640),
    num_people: int = 3,
    seed: int = 0,
    fps: float = 10.0,
    annotations: str | Path | None = None,
) -> Path:
    """Write :func:`synthetic_video_frames` to a video file; returns the path actually written.

    ``.mp4`` uses mp4v and ``.avi`` MJPG (both work in opencv-python-headless); when the
    requested container cannot be opened the video falls back to MJPG in ``.avi``.
    ``annotations`` (optional) receives the per-frame ground truth as JSON.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() not in _CODECS:
        raise ValueError(f"unsupported video suffix {path.suffix!r}; use .mp4 or .avi")
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = int(size[0]), int(size[1])
    attempts = [(path, c) for c in _CODECS[path.suffix.lower()]]
    if path.suffix.lower() != ".avi":
        attempts.append((path.with_suffix(".avi"), "MJPG"))
    writer = None
    for target, codec in attempts:
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
        if writer.isOpened():
            path = target
            break
        writer.release()
        writer = None
        logger.warning("OpenCV cannot write %s with codec %s; trying the next one", target, codec)
    if writer is None:
        raise RuntimeError(f"OpenCV cannot write {path} with any of mp4v/MJPG/XVID; check its FFMPEG support")
    truth = []
    try:
        for i, (frame, people) in enumerate(synthetic_video_frames(num_frames, (h, w), num_people, seed, fps)):
            writer.write(frame)
            truth.append({"frame": i, "people": [{**p, "bbox": list(p["bbox"])} for p in people]})
    finally:
        writer.release()
    if annotations is not None:
        Path(annotations).expanduser().write_text(json.dumps({"fps": fps, "size": [h, w], "frames": truth}) + "\n")
    return path
