"""Rendering a :class:`~plugins.synthetic.scene.ScenePlan` frame by frame, in every stream.

Per frame the objects are warped from their canonical textures into the frame (one
``cv2.warpAffine`` per object over its own box, sub-pixel exact, so the ground-truth box is
where the target is drawn), then each stream gets its own physics:

- **RGB**: global illumination, then the spell's effect (``dark``: gain 0.03 and amplified
  noise; ``glare``: a saturating light centred on the target; ``blur``: a long motion blur
  over a hazy frame), then sensor noise.
- **Thermal**: the objects' heat (the pattern modulates it a little), blurred like a
  microbolometer image. During a ``crossover`` spell the target is blended into the
  background's temperature by the spell's strength.
- **Depth**: millimetres, the pattern as relief; ``depth_match`` blends the target into the
  background's depth.
- **Events**: an event-camera model over the clean log intensity (no darkness, glare or blur:
  the sensor's dynamic range and latency keep it working in RGB spells): a pixel fires one
  event per ``threshold`` of log-intensity change since its last event, timestamps spread over
  the frame interval, plus background-activity noise. A target that stands still fires none.

Noise comes from a small bank drawn once per sequence, so noise costs a lookup per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from plugins.synthetic.scene import TEXTURE_SIDE, DEPTH_RELIEF_MM, HEAT_MODULATION, ScenePlan

#: Microseconds between frame boundaries of event sequences (25 frames a second).
FRAME_INTERVAL_US = 40_000
#: Most events one pixel may fire in one frame interval.
MAX_EVENTS_PER_PIXEL = 3
#: Background-activity noise: events per pixel per frame.
EVENT_NOISE_RATE = 0.0015
NOISE_BANK = 6
#: Depth times disparity of the simulated depth sensor (mm x steps).
DISPARITY_MM = 500_000.0


@dataclass
class Frame:
    """One rendered frame.

    Attributes:
        rgb: ``H x W x 3`` uint8, RGB order.
        aux: thermal ``H x W`` uint8, depth ``H x W`` uint16 (mm), or for events the rendered
            event frame ``H x W x 3`` uint8 (RGB order).
        events: for events, ``(x, y, t, p)`` of this frame's interval, sorted by ``t``.
        occlusion: share of the target's area hidden by the occluder, 0..1.
    """

    rgb: np.ndarray
    aux: np.ndarray
    events: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
    occlusion: float


def _roi(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Integer ``x0, y0, x1, y1`` covering ``box`` (plus a pixel of antialiasing), clipped."""
    x, y, w, h = box
    x0, y0 = max(int(math.floor(x)) - 1, 0), max(int(math.floor(y)) - 1, 0)
    x1, y1 = min(int(math.ceil(x + w)) + 1, width), min(int(math.ceil(y + h)) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def warp_texture(texture: np.ndarray, box: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """Warp an ``(S, S, C)`` texture onto ``box`` inside ``roi``; ``(roi h, roi w, C)``.

    Texel ``i`` spans ``[i, i + 1)`` of the texture and maps to ``x + [i, i + 1) * w / S`` in
    the frame; OpenCV addresses pixel centres, hence the half-pixel terms.
    """
    x, y, w, h = box
    x0, y0, x1, y1 = roi
    sx, sy = w / TEXTURE_SIDE, h / TEXTURE_SIDE
    matrix = np.array(
        [[sx, 0.0, x + 0.5 * sx - 0.5 - x0], [0.0, sy, y + 0.5 * sy - 0.5 - y0]], dtype=np.float64
    )
    return cv2.warpAffine(
        texture,
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    ).reshape(y1 - y0, x1 - x0, texture.shape[2])


class Renderer:
    """Renders the frames of one plan in order (:meth:`frame` must be called for 0, 1, ...).

    Args:
        plan: the sequence's plan.
        rng: generator for noise (the sequence's own, after planning).
        event_threshold: contrast threshold of the event model (log intensity).
    """

    def __init__(self, plan: ScenePlan, rng: np.random.Generator, event_threshold: float = 0.25) -> None:
        self.plan = plan
        self.rng = rng
        self.threshold = float(event_threshold)
        h, w = plan.height, plan.width
        amount = plan.noise
        self.rgb_noise = (rng.standard_normal((NOISE_BANK, h, w, 3), dtype=np.float32) * amount)
        self.aux_noise = rng.standard_normal((NOISE_BANK, h, w), dtype=np.float32) * amount
        self.noise_pick = rng.integers(0, NOISE_BANK, size=(plan.n_frames, 2))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self._grid = (xx, yy)
        self._log_reference: np.ndarray | None = None

    # -- composition ---------------------------------------------------------------------

    def _compose(self, k: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Clean RGB (float32 0..255) and auxiliary (heat 0..1 or depth mm) of frame ``k``,
        and the occluded share of the target."""
        plan = self.plan
        h, w = plan.height, plan.width
        ox, oy = plan.pan[k]
        rgb = plan.background[oy : oy + h, ox : ox + w].copy()
        if plan.aux == "depth":
            aux = plan.background_depth[oy : oy + h, ox : ox + w].copy()
        elif plan.aux == "thermal":
            aux = plan.background_heat[oy : oy + h, ox : ox + w].copy()
        else:
            aux = None
        target_alpha = None
        occlusion = 0.0
        for index, track in enumerate(plan.tracks):
            box = track.boxes[k]
            roi = _roi(box, w, h)
            if roi is None:
                continue
            x0, y0, x1, y1 = roi
            patch = warp_texture(track.texture, box, roi)
            alpha = patch[..., 4:5]
            region = rgb[y0:y1, x0:x1]
            region += alpha * (patch[..., :3] - region)
            if aux is not None:
                if plan.aux == "thermal":
                    level = track.heat[k] + HEAT_MODULATION * patch[..., 3]
                else:
                    level = track.depth[k] + DEPTH_RELIEF_MM * patch[..., 3]
                a = alpha[..., 0]
                if index == plan.target_index:
                    a = a * np.float32(plan.aux_visibility[k])
                region_aux = aux[y0:y1, x0:x1]
                region_aux += a * (level.astype(np.float32) - region_aux)
            if index == plan.target_index:
                target_alpha = (roi, alpha[..., 0].copy())
            elif track.role == "occluder" and target_alpha is not None:
                occlusion = _overlap(target_alpha, (roi, alpha[..., 0]))
        return rgb, aux, occlusion

    # -- streams -------------------------------------------------------------------------

    def _rgb(self, k: int, clean: np.ndarray) -> np.ndarray:
        plan = self.plan
        img = clean * np.float32(plan.illumination[k])
        kind, strength = plan.rgb_effect[k]
        sigma = 2.0
        if kind == "dark":
            img *= np.float32(1.0 - 0.97 * strength)
            sigma = 2.0 + 2.0 * strength
        elif kind == "glare":
            xx, yy = self._grid
            gx, gy = plan.glare_centre[k]
            bw, bh = plan.target.boxes[k, 2:]
            radius = 0.8 * max(bw, bh) + 4.0
            light = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2.0 * radius * radius))
            veil = img * np.float32(1.0 - 0.35 * strength) + np.float32(90.0 * strength)
            img = veil + (np.float32(700.0 * strength) * light)[..., None] * np.array([1.0, 0.97, 0.85], dtype=np.float32)
        elif kind == "blur":
            size = math.sqrt(plan.target.boxes[k, 2] * plan.target.boxes[k, 3])
            length = int(round(strength * max(2.0 * size, 15.0)))
            if length >= 3:
                kernel = np.zeros((length, length), dtype=np.float32)
                c = (length - 1) / 2.0
                angle = plan.blur_angle[k]
                dx, dy = math.cos(angle) * c, math.sin(angle) * c
                cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
                kernel /= kernel.sum()
                img = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
                img = cv2.GaussianBlur(img, (0, 0), 1.0 + 0.1 * size * strength)
                # Haze: a blurred frame also loses contrast (fog, a smeared lens).
                img = img * np.float32(1.0 - 0.6 * strength) + np.float32(0.6 * strength) * img.mean()
        img += self.rgb_noise[self.noise_pick[k, 0]] * np.float32(sigma)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def _thermal(self, k: int, heat: np.ndarray) -> np.ndarray:
        img = cv2.GaussianBlur(heat, (0, 0), 1.0) * np.float32(255.0)
        img += self.aux_noise[self.noise_pick[k, 1]] * np.float32(2.0)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def _depth(self, k: int, depth: np.ndarray) -> np.ndarray:
        # A stereo / structured-light sensor measures disparity in steps: depth is quantised
        # ever more coarsely with distance (about 8 mm steps at 2 m, 50 mm at 5 m) and its
        # noise flips pixels between neighbouring steps.
        disparity = np.float32(DISPARITY_MM) / np.maximum(depth, np.float32(1.0))
        disparity += self.aux_noise[self.noise_pick[k, 1]] * np.float32(0.3)
        disparity = np.maximum(np.rint(disparity), np.float32(1.0))
        return np.clip(np.rint(np.float32(DISPARITY_MM) / disparity), 0, 65535).astype(np.uint16)

    def _events(self, k: int, clean: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Events of frame ``k``'s interval ``[k, k + 1) * FRAME_INTERVAL_US`` (the changes from
        frame ``k - 1`` to ``k``) and their rendering."""
        plan = self.plan
        h, w = plan.height, plan.width
        grey = cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY)
        log_i = np.log(grey + np.float32(10.0))
        t0 = k * FRAME_INTERVAL_US
        c = np.float32(self.threshold)
        if self._log_reference is None:
            self._log_reference = log_i
            count = np.zeros((h, w), dtype=np.int64)
            diff = np.zeros((h, w), dtype=np.float32)
        else:
            diff = log_i - self._log_reference
            steps = np.floor(np.abs(diff) / c)
            count = np.minimum(steps, MAX_EVENTS_PER_PIXEL).astype(np.int64)
            # A pixel that fired its most events this interval resets to the new level (like a
            # sensor's refractory period) instead of firing the rest later: a scene that stops
            # changing stops firing at once.
            self._log_reference = np.where(
                steps > MAX_EVENTS_PER_PIXEL, log_i, self._log_reference + np.sign(diff) * count * c
            ).astype(np.float32)
        ys, xs = np.nonzero(count)
        reps = count[ys, xs]
        ex = np.repeat(xs, reps)
        ey = np.repeat(ys, reps)
        d = np.repeat(diff[ys, xs], reps)
        # j-th crossing of a pixel happens after j thresholds of its (linear) change.
        first = np.repeat(np.cumsum(reps) - reps, reps)
        j = np.arange(len(ex)) - first + 1
        frac = np.clip(j * c / np.maximum(np.abs(d), 1e-6), 0.0, 1.0)
        et = t0 + np.minimum((frac * FRAME_INTERVAL_US).astype(np.int64), FRAME_INTERVAL_US - 1)
        ep = (d > 0).astype(np.uint8)
        # Background activity: a few random events anywhere.
        noisy = self.rng.poisson(EVENT_NOISE_RATE * h * w)
        nx = self.rng.integers(0, w, size=noisy)
        ny = self.rng.integers(0, h, size=noisy)
        nt = t0 + self.rng.integers(0, FRAME_INTERVAL_US, size=noisy)
        np_ = self.rng.integers(0, 2, size=noisy).astype(np.uint8)
        x = np.concatenate([ex, nx]).astype(np.uint16)
        y = np.concatenate([ey, ny]).astype(np.uint16)
        t = np.concatenate([et, nt]).astype(np.int64)
        p = np.concatenate([ep, np_])
        order = np.argsort(t, kind="stable")
        x, y, t, p = x[order], y[order], t[order], p[order]
        return render_events(x, y, p, w, h), (x, y, t, p)

    def frame(self, k: int) -> Frame:
        """Render frame ``k`` in RGB and the plan's auxiliary stream."""
        clean, aux, occlusion = self._compose(k)
        rgb = self._rgb(k, clean)
        events = None
        if self.plan.aux == "thermal":
            aux_img = self._thermal(k, aux)
        elif self.plan.aux == "depth":
            aux_img = self._depth(k, aux)
        else:
            aux_img, events = self._events(k, clean)
        return Frame(rgb, aux_img, events, occlusion)


def render_events(x: np.ndarray, y: np.ndarray, p: np.ndarray, width: int, height: int) -> np.ndarray:
    """VisEvent-style event frame: white, red where ON events dominate a pixel, blue where OFF
    do (``H x W x 3`` uint8, RGB order)."""
    index = y.astype(np.int64) * width + x.astype(np.int64)
    net = np.bincount(index, weights=np.where(p > 0, 1.0, -1.0), minlength=height * width)
    net = net.reshape(height, width)
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    img[net > 0] = (255, 0, 0)
    img[net < 0] = (0, 0, 255)
    return img


def _overlap(target: tuple, occluder: tuple) -> float:
    """Share of the target's alpha mass that the occluder's alpha covers."""
    (tx0, ty0, tx1, ty1), ta = target
    (ox0, oy0, ox1, oy1), oa = occluder
    total = float(ta.sum())
    if total <= 0:
        return 0.0
    x0, y0, x1, y1 = max(tx0, ox0), max(ty0, oy0), min(tx1, ox1), min(ty1, oy1)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    covered = ta[y0 - ty0 : y1 - ty0, x0 - tx0 : x1 - tx0] * oa[y0 - oy0 : y1 - oy0, x0 - ox0 : x1 - ox0]
    return float(covered.sum()) / total
