"""Colours: named clothing colours as HSV boxes, skin / hair / hat / bag / shoe palettes and colour helpers.

Every colour choice that decides whether a cue is visible (hair against skin, a hat against hair, a
bag against the top) lives here, with the reason next to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

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


def _muted(rng: np.random.Generator, max_sat: float = 70, val: tuple[float, float] = (40, 220)) -> BGR:
    return _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, max_sat), rng.uniform(*val))
