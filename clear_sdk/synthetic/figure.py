"""Drawing one person with OpenCV shapes on a transparent canvas (front, back and side views).

Body landmarks come from the attributes (age, gender), the identity's :class:`Appearance` and the
image's :class:`Pose`; then legs, clothes, arms, hair, head, hat, bags and cane are drawn back to
front. Anti-aliased with sub-pixel coordinates into a colour and a coverage layer, so the person can
be composited over any background with a soft mask.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from .attributes import _VIEWS, SYNTHETIC_GROUPS, vector_to_attrs
from .identity import Appearance, Pose
from .palette import _BAG, _EYE, _GREY_HAIR, _HAIR, _HAT, _SHOES, BGR, _named_colour, _pick_contrasting, _scale

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


def _draw_long_hair_front_back(layer: _Layer, g: _Geo, c: _Colours, app: Appearance, back: bool) -> None:
    """Long hair: a curtain down the back, strands over the shoulders in front."""
    u, sy = g.u, g.shoulder_y
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
    if a["LongHair"]:
        _draw_long_hair_front_back(layer, g, c, app, back)
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
