"""Scene plans: every random decision of one synthetic sequence, made up front.

A :class:`ScenePlan` holds the backgrounds, the textured objects (the target, its look-alike
distractors, an occluder) with their boxes in every frame, and the *spells*: stretches of frames
in which one stream loses the target.

- RGB spells (``dark``, ``glare``, ``blur``): the colour frame goes dark, a glare saturates the
  target's surroundings, or a strong motion blur wipes out every pattern; the auxiliary stream
  keeps the target.
- Auxiliary spells, one kind per layout: ``crossover`` (thermal: the target takes the
  background's temperature), ``depth_match`` (depth: the target sits at the background's depth)
  and ``still`` (events: the target stops, so it fires no events); RGB keeps the target.

Spells of the two streams never overlap, so the dominant modality switches within a sequence.
Distractors are hot, near and moving like the target and some share its pattern, so the
auxiliary stream alone cannot tell the target from them; the target's unique combination of
colours and pattern (visible in the template) can.

Everything here is pure numpy with one ``numpy.random.Generator`` per sequence, seeded from
``(seed, split, index)``, so a sequence is the same whatever order or process generates it.
Units: pixels and frames; boxes are ``x, y, w, h`` with pixel ``j`` spanning ``[j, j + 1)``.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from plugins.synthetic.options import AUX_OF_LAYOUT, ContentOptions

#: Side of the canonical object texture in texels; objects are warped from it to their box.
TEXTURE_SIDE = 48
#: RGB spell kinds and how often each is drawn.
RGB_SPELLS = ("dark", "glare", "blur")
RGB_SPELL_ODDS = (0.45, 0.35, 0.2)
#: The auxiliary spell of each auxiliary stream.
AUX_SPELL = {"thermal": "crossover", "depth": "depth_match", "event": "still"}
#: Pattern kinds of object textures.
PATTERNS = ("stripes", "checker", "rings", "dots", "plaid")
#: Thermal modulation of an object's pattern (fraction of full scale) and depth relief (mm).
HEAT_MODULATION = 0.09
DEPTH_RELIEF_MM = 500.0
#: The flat test colour of ``target_texture: flat`` (RGB).
FLAT_TARGET_RGB = (255.0, 0.0, 255.0)
SPLIT_IDS = {"train": 1, "test": 2}
#: Share of sequences without any spell of a given stream.
SPELL_FREE_SHARE = 0.15


@dataclass
class Spell:
    """One stretch of frames ``[start, end)`` in which ``stream`` (``rgb`` or ``aux``) loses the
    target; the effect ramps in and out over ``ramp`` frames (0: abrupt)."""

    kind: str
    stream: str
    start: int
    end: int
    ramp: int

    def strength(self, n: int) -> np.ndarray:
        """``(n,)`` effect strength in [0, 1]: 1 inside the spell, ramping at its ends."""
        k = np.arange(n, dtype=np.float64)
        if self.ramp <= 0:
            return ((k >= self.start) & (k < self.end)).astype(np.float64)
        rise = (k - self.start + 1) / (self.ramp + 1)
        fall = (self.end - k) / (self.ramp + 1)
        return np.clip(np.minimum(rise, fall), 0.0, 1.0) * ((k >= self.start) & (k < self.end))


@dataclass
class Track:
    """One drawn object.

    Attributes:
        role: ``target``, ``distractor`` or ``occluder``.
        variant: how it relates to the target (distractors: ``colours`` = same colours, other
            pattern; ``pattern`` = same pattern, other colours; ``other``).
        texture: ``(S, S, 5)`` float32: R, G, B in 0..255, the pattern signal in -1..1 (what
            the auxiliary stream sees of it), and the shape's alpha in 0..1.
        boxes: ``(N, 4)`` float64 boxes ``x, y, w, h`` in pixels.
        heat: ``(N,)`` thermal level of its body, 0..1 of the sensor's range.
        depth: ``(N,)`` distance of its body in millimetres.
        description: pattern and colours, for the truth file.
    """

    role: str
    variant: str
    texture: np.ndarray
    boxes: np.ndarray
    heat: np.ndarray
    depth: np.ndarray
    description: dict = field(default_factory=dict)


@dataclass
class ScenePlan:
    """Every random decision of one sequence (see the module docstring)."""

    name: str
    width: int
    height: int
    n_frames: int
    aux: str
    background: np.ndarray  # (Hb, Wb, 3) float32 RGB 0..255
    background_heat: np.ndarray  # (Hb, Wb) float32 0..1 (thermal)
    background_depth: np.ndarray  # (Hb, Wb) float32 millimetres
    pan: np.ndarray  # (N, 2) int offsets (x, y) of the view into the backgrounds
    tracks: list[Track]  # drawing order: distractors, target, occluder
    target_index: int
    spells: list[Spell]
    rgb_visibility: np.ndarray  # (N,) 1 = the RGB stream shows the target
    aux_visibility: np.ndarray  # (N,) 1 = the auxiliary stream shows the target
    rgb_effect: list[tuple[str, float]]  # per frame: (spell kind or "", strength)
    illumination: np.ndarray  # (N,) global brightness factor
    glare_centre: np.ndarray  # (N, 2) pixels
    blur_angle: np.ndarray  # (N,) radians of the motion-blur direction
    clutter: float
    fast_frames: np.ndarray  # (N,) bool, frames of a fast-motion burst
    noise: float
    seed_words: tuple[int, ...] = ()

    @property
    def target(self) -> Track:
        """The target's track."""
        return self.tracks[self.target_index]

    @property
    def min_side(self) -> int:
        return min(self.width, self.height)


def sequence_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of sequence ``index`` of ``split``: independent of every other sequence."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split], index]))


# --------------------------------------------------------------------------- colours, textures


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def _luma(colour: np.ndarray) -> float:
    return float(colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32))


def _colour_pair(rng: np.random.Generator, avoid: tuple[float, ...] = ()) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Two clearly different saturated colours: hues at least 0.2 apart and away from
    ``avoid``, and luminances at least 70 grey levels apart, so the pattern also shows in
    grey (thermal-like structure, event edges)."""
    for _ in range(200):
        h1 = float(rng.random())
        h2 = (h1 + rng.uniform(0.2, 0.8)) % 1.0
        if not all(min(abs(h - a), 1 - abs(h - a)) > 0.08 for h in (h1, h2) for a in avoid):
            continue
        c1 = _hsv(h1, rng.uniform(0.55, 1.0), rng.uniform(0.8, 1.0))
        c2 = _hsv(h2, rng.uniform(0.6, 1.0), rng.uniform(0.25, 0.6))
        if _luma(c1) - _luma(c2) >= 70.0:
            break
    else:  # pragma: no cover - practically unreachable; fall back to a light/dark pair
        c1, c2 = _hsv(h1, 0.5, 1.0), _hsv(h2, 0.9, 0.25)
    return c1, c2, [round(h1, 3), round(h2, 3)]


def _pattern(kind: str, params: dict, side: int) -> np.ndarray:
    """``(side, side)`` float32 in [0, 1]: which of the two colours each texel takes, with
    edges about two texels soft so that shrinking the texture does not alias."""
    c = (np.arange(side, dtype=np.float32) + 0.5) / side * 2.0 - 1.0
    u, v = np.meshgrid(c, c)
    angle, freq = params["angle"], params["freq"]
    ru = u * math.cos(angle) + v * math.sin(angle)
    rv = -u * math.sin(angle) + v * math.cos(angle)
    if kind == "stripes":
        signal = np.sin(math.pi * freq * ru)
    elif kind == "checker":
        signal = np.sin(math.pi * freq * ru * 0.75) * np.sin(math.pi * freq * rv * 0.75)
    elif kind == "rings":
        signal = np.sin(math.pi * freq * np.sqrt(u * u + v * v) + params["phase"])
    elif kind == "dots":
        signal = 0.45 - np.sqrt(np.sin(math.pi * freq * ru * 0.75) ** 2 + np.sin(math.pi * freq * rv * 0.75) ** 2)
    elif kind == "plaid":
        signal = np.sin(math.pi * freq * ru) + np.sin(math.pi * freq * rv * 0.6) - 0.4
    else:  # pragma: no cover - PATTERNS lists every kind
        raise ValueError(kind)
    sharp = side / (2.0 * max(freq, 1.0))  # about two texels per edge
    return (0.5 + 0.5 * np.tanh(sharp * signal)).astype(np.float32)


def _shape_alpha(shape: float, side: int) -> np.ndarray:
    """``(side, side)`` alpha of a superellipse ``|u|^p + |v|^p <= 1`` (p = 2: ellipse, large:
    rectangle) that touches the texture's edges, antialiased over about one texel."""
    c = (np.arange(side, dtype=np.float32) + 0.5) / side * 2.0 - 1.0
    u, v = np.meshgrid(np.abs(c), np.abs(c))
    r = (u**shape + v**shape) ** (1.0 / shape)
    # r = 1 at the box edge; one texel is 2 / side in these units.
    return np.clip((1.0 - r) * side / 2.0 + 0.5, 0.0, 1.0).astype(np.float32)


def _object_texture(
    rng: np.random.Generator,
    kind: str,
    params: dict,
    colours: tuple[np.ndarray, np.ndarray],
    shape: float,
    flat: np.ndarray | None = None,
) -> np.ndarray:
    """``(S, S, 5)`` float32 texture: RGB, pattern signal (-1..1) and alpha."""
    side = TEXTURE_SIDE
    texture = np.empty((side, side, 5), dtype=np.float32)
    if flat is not None:
        texture[..., :3] = flat
        texture[..., 3] = 1.0
    else:
        p = _pattern(kind, params, side)[..., None]
        rgb = colours[0] * (1.0 - p) + colours[1] * p
        # Soft top-lit shading, as a real object has.
        shade = np.linspace(1.08, 0.88, side, dtype=np.float32)[:, None, None]
        texture[..., :3] = np.clip(rgb * shade, 0.0, 255.0)
        texture[..., 3] = 1.0 - 2.0 * p[..., 0]
    texture[..., 4] = _shape_alpha(shape, side)
    return texture


def _pattern_params(rng: np.random.Generator, kind: str) -> dict:
    return {
        "angle": float(rng.uniform(0, math.pi)),
        "freq": float(rng.uniform(2.0, 3.2)),
        "phase": float(rng.uniform(0, math.pi)),
    }


# --------------------------------------------------------------------------- backgrounds


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int, channels: int = 1) -> np.ndarray:
    """Smooth noise in [0, 1] with features about ``cell`` pixels wide."""
    small = rng.random((h // cell + 3, w // cell + 3, channels)).astype(np.float32)
    big = cv2.resize(small, ((w // cell + 3) * cell, (h // cell + 3) * cell), interpolation=cv2.INTER_CUBIC)
    if big.ndim == 2:
        big = big[..., None]
    return np.clip(big[cell : cell + h, cell : cell + w], 0.0, 1.0)


def _backgrounds(
    rng: np.random.Generator, h: int, w: int, clutter: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB (0..255), heat (0..1) and depth (mm) backgrounds of ``h x w`` with clutter shapes
    that partly show in the other two streams too."""
    base = _smooth_noise(rng, h, w, 64, 3)
    grey = base.mean(axis=2, keepdims=True)
    tint = _hsv(float(rng.random()), 0.35, 1.0) / 255.0
    rgb = (grey * 0.6 + base * 0.4) * tint * 150.0 + 50.0
    rgb += (_smooth_noise(rng, h, w, 8, 3) - 0.5) * 30.0

    heat = 0.18 + 0.25 * _smooth_noise(rng, h, w, 96)[..., 0]
    horizon = rng.uniform(0.25, 0.5) * h
    far = rng.uniform(6000.0, 9000.0)
    near = rng.uniform(1200.0, 1800.0)
    rows = np.arange(h, dtype=np.float32)[:, None]
    below = np.clip((h - rows) / max(h - horizon, 1.0), 0.0, 1.0) ** 2
    depth = np.where(rows > horizon, near + (far - near) * below, far).astype(np.float32)
    depth = depth + np.linspace(-300.0, 300.0, w, dtype=np.float32)[None, :] * rng.uniform(-1, 1)
    depth = np.array(np.broadcast_to(depth, (h, w)), dtype=np.float32)

    count = int(round(clutter * h * w / 2600.0))
    side = min(h, w)
    for _ in range(count):
        kind = rng.choice(["rect", "ellipse", "line", "stripes"], p=[0.35, 0.3, 0.15, 0.2])
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sx, sy = rng.uniform(0.03, 0.22, size=2) * side
        colour = _hsv(float(rng.random()), rng.uniform(0.1, 0.75), rng.uniform(0.25, 0.9))
        mask = np.zeros((h, w), dtype=np.uint8)
        if kind == "ellipse":
            cv2.ellipse(mask, (int(cx), int(cy)), (int(sx), int(sy)), float(rng.uniform(0, 180)), 0, 360, 255, -1)
        elif kind == "line":
            end = (int(cx + rng.uniform(-2, 2) * sx), int(cy + rng.uniform(-2, 2) * sy))
            cv2.line(mask, (int(cx), int(cy)), end, 255, int(rng.integers(2, 7)))
        else:
            cv2.rectangle(mask, (int(cx - sx), int(cy - sy)), (int(cx + sx), int(cy + sy)), 255, -1)
        sel = mask > 0
        if not sel.any():
            continue
        if kind == "stripes":  # textured clutter: background look-alikes of patterned objects
            other = _hsv(float(rng.random()), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8))
            period = rng.uniform(6, 16)
            yy, xx = np.nonzero(sel)
            a = rng.uniform(0, math.pi)
            phase = ((xx * math.cos(a) + yy * math.sin(a)) / period) % 1.0 < 0.5
            rgb[yy, xx] = np.where(phase[:, None], colour, other)
        else:
            rgb[sel] = colour
        if rng.random() < 0.4:
            heat[sel] = rng.uniform(0.3, 0.62)
        if rng.random() < 0.5:
            depth[sel] = np.minimum(depth[sel], rng.uniform(2500.0, far))
    rgb = cv2.GaussianBlur(np.clip(rgb, 0, 255).astype(np.float32), (0, 0), 0.7)
    heat = cv2.GaussianBlur(heat.astype(np.float32), (0, 0), 1.5)
    depth = cv2.GaussianBlur(depth, (0, 0), 1.0)
    return rgb, heat, depth


# --------------------------------------------------------------------------- spells


def _place_intervals(rng: np.random.Generator, n: int, lengths: list[int], lead: int, gap: int) -> list[tuple[int, int]] | None:
    """Non-overlapping ``[start, end)`` intervals of the given lengths in ``[lead, n)`` with at
    least ``gap`` frames between them, or None when they do not fit."""
    for _ in range(200):
        starts = [int(rng.integers(lead, max(lead + 1, n - length + 1))) for length in lengths]
        spans = sorted((s, s + length) for s, length in zip(starts, lengths))
        if spans and spans[-1][1] > n:
            continue
        if all(b[0] - a[1] >= gap for a, b in zip(spans, spans[1:])):
            return spans
    return None


def _spells(rng: np.random.Generator, n: int, aux: str, content: ContentOptions) -> list[Spell]:
    """Alternating RGB and auxiliary spells; the first frames stay clean for initialisation."""
    lead = max(5, n // 20)
    mean = content.spells_per_100 * n / 100.0
    low, high = content.spell_frames
    high = max(low, min(high, n // 4))
    for _ in range(20):
        # Usually at least one spell of each stream (so the dominant stream switches), but a
        # share of sequences keeps a stream clean, so attribute tables have both groups.
        counts = []
        for _stream in range(2):
            if mean >= 1.0:
                count = 0 if rng.random() < SPELL_FREE_SHARE else 1 + int(rng.poisson(mean - 1.0))
            else:
                count = int(rng.poisson(mean))
            counts.append(count)
        n_rgb, n_aux = counts
        if mean > 0 and n_rgb + n_aux == 0:
            continue
        kinds = ["rgb"] * n_rgb + ["aux"] * n_aux
        order = list(rng.permutation(len(kinds)))
        kinds = [kinds[i] for i in order]
        lengths = [int(rng.integers(low, high + 1)) for _ in kinds]
        spans = _place_intervals(rng, n, lengths, lead, gap=4)
        if spans is None:
            continue
        spells = []
        for stream, (start, end) in zip(kinds, spans):
            kind = str(rng.choice(RGB_SPELLS, p=RGB_SPELL_ODDS)) if stream == "rgb" else AUX_SPELL[aux]
            ramp = 0 if rng.random() < 0.3 else int(rng.integers(2, 4))
            ramp = min(ramp, (end - start) // 3)
            spells.append(Spell(kind, stream, start, end, ramp))
        return spells
    return []


# --------------------------------------------------------------------------- motion


def _trajectory(
    rng: np.random.Generator,
    n: int,
    width: int,
    height: int,
    size: float,
    speed: float,
    moving: np.ndarray,
    min_speed: np.ndarray,
    boost: np.ndarray,
    scale_amp: float,
    aspect_amp: float,
    start: np.ndarray | None = None,
    attract: tuple[np.ndarray, float] | None = None,
) -> np.ndarray:
    """``(n, 4)`` boxes of an object that wanders with smoothly turning heading, bounces off
    the frame's edges, and changes scale and aspect ratio over its own time (which stands
    still where ``moving`` is 0, so a still object does not even deform)."""
    tau = np.concatenate([[0.0], np.cumsum(moving[1:])])  # progress made up to frame k
    aspect0 = math.exp(rng.uniform(-0.45, 0.45))
    period_s, period_a = rng.uniform(40, 120), rng.uniform(15, 50)
    phase_s, phase_a = rng.uniform(0, 2 * math.pi, size=2)
    scale = size * np.exp(scale_amp * np.sin(2 * math.pi * tau / period_s + phase_s))
    aspect = aspect0 * np.exp(aspect_amp * np.sin(2 * math.pi * tau / period_a + phase_a))
    w = np.minimum(scale * np.sqrt(aspect), 0.6 * width)
    h = np.minimum(scale / np.sqrt(aspect), 0.6 * height)
    margin = 2.0
    if start is None:
        start = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height])
    centre = np.array(start, dtype=np.float64)
    heading = rng.uniform(0, 2 * math.pi)
    wobble = rng.uniform(0, 2 * math.pi)
    boxes = np.empty((n, 4), dtype=np.float64)
    for k in range(n):
        if k:
            heading += rng.normal(0.0, 0.18) * moving[k]
            if attract is not None:  # a follower steers towards the target's position
                goal, gain = attract
                dx, dy = goal[k] - centre
                want = math.atan2(dy, dx)
                turn = (want - heading + math.pi) % (2 * math.pi) - math.pi
                heading += gain * turn * moving[k]
            v = speed * (1.0 + 0.35 * math.sin(0.2 * k + wobble)) * boost[k]
            v = max(v, min_speed[k]) * moving[k]
            centre = centre + v * np.array([math.cos(heading), math.sin(heading)])
        for axis, extent, limit in ((0, w[k], width), (1, h[k], height)):
            low, high = margin + extent / 2, limit - margin - extent / 2
            if centre[axis] < low:
                centre[axis] = min(2 * low - centre[axis], high)
                heading = math.pi - heading if axis == 0 else -heading
            elif centre[axis] > high:
                centre[axis] = max(2 * high - centre[axis], low)
                heading = math.pi - heading if axis == 0 else -heading
        boxes[k] = (centre[0] - w[k] / 2, centre[1] - h[k] / 2, w[k], h[k])
    return boxes


def _pan(rng: np.random.Generator, n: int, amount: float) -> np.ndarray:
    """``(n, 2)`` integer view offsets of a slowly panning camera, within ``[0, 2 * amount]``."""
    if amount <= 0:
        return np.zeros((n, 2), dtype=np.int64)
    steps = rng.normal(0.0, 1.0, size=(n, 2))
    velocity = cv2.GaussianBlur(steps.astype(np.float32), (1, 0), sigmaX=0.1, sigmaY=6.0)
    path = np.cumsum(velocity, axis=0)
    path -= path.mean(axis=0)
    peak = np.abs(path).max() or 1.0
    path = path / peak * amount
    return np.rint(path + amount).astype(np.int64)


# --------------------------------------------------------------------------- the plan


def plan_sequence(
    name: str,
    seed: int,
    split: str,
    index: int,
    layout: str,
    n_frames: int,
    width: int,
    height: int,
    content: ContentOptions,
) -> ScenePlan:
    """Draw every random decision of sequence ``index`` of ``split`` (see the module docstring)."""
    rng = sequence_rng(seed, split, index)
    aux = AUX_OF_LAYOUT[layout]
    n = n_frames
    side = min(width, height)

    spells = _spells(rng, n, aux, content)
    rgb_strength = np.zeros(n)
    aux_strength = np.zeros(n)
    rgb_effect: list[tuple[str, float]] = [("", 0.0)] * n
    for spell in spells:
        s = spell.strength(n)
        if spell.stream == "rgb":
            rgb_strength = np.maximum(rgb_strength, s)
            for k in np.nonzero(s)[0]:
                rgb_effect[k] = (spell.kind, float(s[k]))
        else:
            aux_strength = np.maximum(aux_strength, s)
    rgb_visibility = 1.0 - rgb_strength
    aux_visibility = 1.0 - aux_strength

    # Motion: speeds, bursts, and (for events) the target's stillness and least speed.
    size = rng.uniform(*content.target_size) * side
    speed = rng.uniform(*content.speed) * side
    boost = np.ones(n)
    fast = np.zeros(n, dtype=bool)
    if rng.random() < content.fast_motion and n > 20:
        length = int(rng.integers(6, 16))
        start = int(rng.integers(n // 10, n - length))
        fast[start : start + length] = True
        boost[fast] = max(1.0, rng.uniform(0.35, 0.6) * size / max(speed, 1e-6))
    moving = np.ones(n)
    min_speed = np.zeros(n)
    if aux == "event":
        moving = aux_visibility.copy()  # a still spell: the target decelerates to a stop
        min_speed = np.where(rgb_strength > 0, 0.015, 0.005) * side
        boost[aux_strength > 0] = 1.0
    scale_amp = rng.uniform(0.2, 0.4) if rng.random() < 0.4 else rng.uniform(0.0, 0.08)
    aspect_amp = rng.uniform(0.2, 0.4) if rng.random() < 0.3 else rng.uniform(0.0, 0.08)
    target_boxes = _trajectory(
        rng, n, width, height, size, speed, moving, min_speed, boost, scale_amp, aspect_amp
    )
    target_centre = target_boxes[:, :2] + target_boxes[:, 2:] / 2

    # The target's look: a pattern in two colours (or the flat test colour).
    shape = float(rng.choice([2.0, 2.0, 4.0, 10.0]))
    kind = str(rng.choice(PATTERNS))
    params = _pattern_params(rng, kind)
    colours = _colour_pair(rng)
    flat = np.array(FLAT_TARGET_RGB, dtype=np.float32) if content.target_texture == "flat" else None
    target_texture = _object_texture(rng, kind, params, colours[:2], shape, flat)
    heat0 = rng.uniform(0.72, 0.9)
    depth0 = rng.uniform(1500.0, 3200.0)
    target_heat = np.full(n, heat0)
    target_depth = depth0 * np.exp(rng.uniform(-0.25, 0.25) * np.linspace(0, 1, n))
    target = Track(
        "target",
        "target",
        target_texture,
        target_boxes,
        target_heat,
        target_depth,
        {"pattern": kind, "hues": colours[2], "shape": shape, "texture": content.target_texture},
    )

    # Look-alike distractors: hot, near and moving too.
    tracks: list[Track] = []
    low, high = content.distractors
    for d in range(int(rng.integers(low, high + 1))):
        variant = str(rng.choice(["colours", "pattern", "other"]))
        d_kind, d_params, d_colours = kind, dict(params), colours
        if variant in ("colours", "other"):
            d_kind = str(rng.choice([p for p in PATTERNS if p != kind]))
            d_params = _pattern_params(rng, d_kind)
        if variant in ("pattern", "other"):
            d_colours = _colour_pair(rng, avoid=tuple(colours[2]))
        elif rng.random() < 0.5:
            d_colours = (colours[1], colours[0], colours[2][::-1])
        d_shape = shape if rng.random() < 0.7 else float(rng.choice([2.0, 4.0, 10.0]))
        d_size = size * math.exp(rng.uniform(-0.3, 0.3))
        follower = d == 0 or rng.random() < 0.3
        d_boxes = _trajectory(
            rng,
            n,
            width,
            height,
            d_size,
            speed * rng.uniform(0.7, 1.4),
            np.ones(n),
            np.full(n, 0.004 * side),
            np.ones(n),
            rng.uniform(0.0, 0.25),
            rng.uniform(0.0, 0.25),
            attract=(target_centre, 0.08) if follower else None,
        )
        tracks.append(
            Track(
                "distractor",
                variant,
                _object_texture(rng, d_kind, d_params, d_colours[:2], d_shape),
                d_boxes,
                np.full(n, rng.uniform(0.68, 0.95)),
                np.full(n, depth0 * math.exp(rng.uniform(-0.3, 0.3))),
                {"pattern": d_kind, "hues": list(d_colours[2]), "shape": d_shape},
            )
        )
    target_index = len(tracks)
    tracks.append(target)

    # An occluder crossing the target's path (a plain board: cold and nearer than the target).
    duration = rng.uniform(10, 20)  # frames the occluder overlaps the target
    first = int(max(n // 5, max(5, n // 20) + duration / 2 + 1))  # the first frames stay clear
    last = n - max(n // 5, 1)
    if rng.random() < content.occlusion and first < last:
        t0 = int(rng.integers(first, last))
        tx, ty, tw, th = target_boxes[t0]
        vertical = rng.random() < 0.5
        cover = rng.uniform(0.5, 1.4)
        if vertical:  # a pole passing sideways
            ow, oh = tw * cover, max(th * rng.uniform(1.5, 3.0), 0.3 * height)
        else:  # a bar passing up or down
            ow, oh = max(tw * rng.uniform(1.5, 3.0), 0.3 * width), th * cover
        axis = 0 if vertical else 1
        # It crosses the target at a fixed speed relative to the target, so the overlap lasts
        # `duration` frames around t0 whatever the target does.
        speed = ((ow + tw) if vertical else (oh + th)) / duration * rng.choice([-1, 1])
        offset = rng.uniform(-0.25, 0.25, size=2) * np.array([tw, th])
        centres = np.tile(np.array([tx + tw / 2, ty + th / 2]) + offset, (n, 1))
        centres[:, axis] = target_centre[:, axis] + offset[axis] + speed * (np.arange(n) - t0)
        occ_boxes = np.concatenate([centres - [ow / 2, oh / 2], np.tile([ow, oh], (n, 1))], axis=1)
        board = _hsv(float(rng.random()), rng.uniform(0.05, 0.4), rng.uniform(0.3, 0.8))
        texture = np.empty((TEXTURE_SIDE, TEXTURE_SIDE, 5), dtype=np.float32)
        grain = _smooth_noise(rng, TEXTURE_SIDE, TEXTURE_SIDE, 6)[..., 0]
        texture[..., :3] = board * (0.85 + 0.3 * grain[..., None])
        texture[..., 3] = grain * 2 - 1
        texture[..., 4] = _shape_alpha(12.0, TEXTURE_SIDE)
        tracks.append(
            Track(
                "occluder",
                "vertical" if vertical else "horizontal",
                texture,
                occ_boxes,
                np.full(n, rng.uniform(0.25, 0.4)),
                np.full(n, max(500.0, depth0 - rng.uniform(500.0, 900.0))),
                {"crossing_frame": t0},
            )
        )

    # Camera, illumination, glare and blur geometry.
    pan_amount = rng.uniform(0.03, 0.08) * side if rng.random() < content.camera_motion else 0.0
    pan = _pan(rng, n, pan_amount)
    if aux == "event":
        # An event camera sees a still target only when the camera holds still too.
        steps = np.diff(pan.astype(np.float64), axis=0) * moving[1:, None]
        pan = np.concatenate([pan[:1], pan[:1] + np.cumsum(steps, axis=0)])
        pan = np.clip(np.rint(pan), 0, 2 * math.ceil(pan_amount)).astype(np.int64)
    margin = int(math.ceil(pan_amount))
    clutter = content.clutter * rng.uniform(0.6, 1.4)
    background, heat, depth = _backgrounds(rng, height + 2 * margin, width + 2 * margin, clutter)
    drift = rng.uniform(0.9, 1.05) + 0.08 * np.sin(2 * math.pi * np.arange(n) / rng.uniform(60, 200) + rng.uniform(0, 6.3))
    jitter = cv2.GaussianBlur(rng.normal(0, 1, size=(n, 2)).astype(np.float32), (1, 0), sigmaX=0.1, sigmaY=3.0)
    glare_centre = target_centre + jitter * 0.25 * size
    blur_angle = np.full(n, rng.uniform(0, math.pi))

    return ScenePlan(
        name=name,
        width=width,
        height=height,
        n_frames=n,
        aux=aux,
        background=background,
        background_heat=heat,
        background_depth=depth,
        pan=pan,
        tracks=tracks,
        target_index=target_index,
        spells=spells,
        rgb_visibility=rgb_visibility,
        aux_visibility=aux_visibility,
        rgb_effect=rgb_effect,
        illumination=drift,
        glare_centre=glare_centre,
        blur_angle=blur_angle,
        clutter=float(clutter),
        fast_frames=fast,
        noise=content.noise,
        seed_words=(seed, SPLIT_IDS[split], index),
    )
