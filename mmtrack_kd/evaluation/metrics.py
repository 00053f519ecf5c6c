"""Per-frame measures between predicted and ground-truth boxes, vectorised over frames.

Boxes are ``(N, 4)`` arrays of ``x, y, w, h`` in pixels (top-left corner, continuous
coordinates). Every function is NaN-safe: a frame whose measure cannot be computed gets a value
that fails every threshold of every protocol (``inf`` for an error, ``0`` for an overlap), and no
floating-point warning is emitted.

Centres follow the OTB family of toolkits (the MATLAB OTB / LasHeR code, ``got10k``, ``rgbt``):
``x + (w - 1) / 2``. The ``- 1 / 2`` cancels in every difference; keeping it (and the toolkits'
order of operations) makes values that land exactly on a threshold fall on the same side.
"""

from __future__ import annotations

import numpy as np


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-1:] != (4,):
        raise ValueError(f"boxes must both be (N, 4); got {pred.shape} and {gt.shape}")
    return pred, gt


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """Centres ``(N, 2)`` in pixels of ``(N, 4)`` boxes, ``x + (w - 1) / 2`` (toolkit form)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return boxes[..., :2] + (boxes[..., 2:] - 1.0) / 2.0


def centre_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance between box centres.

    Args:
        pred: ``(N, 4)`` predicted boxes, pixels.
        gt: ``(N, 4)`` ground-truth boxes, pixels.

    Returns:
        ``(N,)`` float64 distances in pixels; ``inf`` where either box has a NaN.
    """
    pred, gt = _pair(pred, gt)
    delta = box_centres(pred) - box_centres(gt)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.sqrt(np.sum(delta**2, axis=-1))
    error[~np.isfinite(error)] = np.inf
    return error


def normalised_centre_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Centre distance with each axis divided by the ground-truth size (LasHeR's NPR).

    ``error = || (dx / w_gt, dy / h_gt) ||``, computed as the LasHeR toolkit does: each centre
    divided by the ground-truth size, then the difference.

    Args:
        pred: ``(N, 4)`` predicted boxes, pixels.
        gt: ``(N, 4)`` ground-truth boxes, pixels.

    Returns:
        ``(N,)`` float64, unitless (fractions of the target size); ``inf`` where undefined (a NaN,
        or a ground truth of zero width or height).
    """
    pred, gt = _pair(pred, gt)
    size = gt[..., 2:]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        delta = box_centres(pred) / size - box_centres(gt) / size
        error = np.sqrt(np.sum(delta**2, axis=-1))
    error[~np.isfinite(error)] = np.inf
    return error


def iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Continuous intersection over union.

    Args:
        pred: ``(N, 4)`` predicted boxes, pixels.
        gt: ``(N, 4)`` ground-truth boxes, pixels.

    Returns:
        ``(N,)`` float64 in ``[0, 1]`` (clipped at 1 against rounding, as ``got10k`` does);
        ``0`` where either box has a NaN, where a box has a non-positive width or height, or
        where the union is empty.
    """
    pred, gt = _pair(pred, gt)
    px, py, pw, ph = np.moveaxis(pred, -1, 0)
    gx, gy, gw, gh = np.moveaxis(gt, -1, 0)
    with np.errstate(invalid="ignore"):
        inter_w = np.clip(np.minimum(px + pw, gx + gw) - np.maximum(px, gx), 0.0, None)
        inter_h = np.clip(np.minimum(py + ph, gy + gh) - np.maximum(py, gy), 0.0, None)
        inter = inter_w * inter_h
        union = pw * ph + gw * gh - inter
        ok = (union > 0) & (pw > 0) & (ph > 0) & (gw > 0) & (gh > 0) & np.isfinite(union)
    out = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=out, where=ok)
    # (x + w) - x can round above w: identical float boxes must not pass "IoU > 1"
    np.minimum(out, 1.0, out=out)
    return out


def vot_overlap(
    pred: np.ndarray,
    gt: np.ndarray,
    pred_empty: np.ndarray,
    gt_empty: np.ndarray,
    bounds: tuple[int, int] | None = None,
) -> np.ndarray:
    """Overlap of rectangles exactly as the VOT toolkit's rasteriser computes it.

    The VOT toolkit (``vot.region.raster``) stores a rectangle as float32, rounds it to whole
    pixels (``round`` half to even), paints it into a mask over the union of the two regions'
    pixel bounds (clipped to the image when ``bounds`` is given) and counts pixels. Two empty
    regions overlap 1 by definition; an empty region against a non-empty one overlaps 0. This
    function reproduces that arithmetic without drawing masks, including its quirks: an empty
    region's bounds are ``(0, 0, 0, 0)``, so the union window always reaches the origin; any pair
    whose union window is degenerate (no more than one pixel wide or tall, e.g. a zero-size
    rectangle at the origin against an empty region) overlaps 1, and a zero-size rectangle
    elsewhere against an empty region overlaps 0.

    Args:
        pred: ``(N, 4)`` predicted rectangles, pixels.
        gt: ``(N, 4)`` ground-truth rectangles, pixels.
        pred_empty: ``(N,)`` bool, predicted region is the empty (special) region, e.g. a NaN
            row or the initialisation marker.
        gt_empty: ``(N,)`` bool, ground truth is the empty region (target absent).
        bounds: ``(width, height)`` of the image, or ``None`` for unbounded rasterisation.

    Returns:
        ``(N,)`` float64 overlaps in ``[0, 1]``.
    """
    pred, gt = _pair(pred, gt)
    pred_empty = np.asarray(pred_empty, dtype=bool) | ~np.isfinite(pred).all(axis=-1)
    gt_empty = np.asarray(gt_empty, dtype=bool) | ~np.isfinite(gt).all(axis=-1)
    # float32 storage, then whole pixels, as the toolkit's Rectangle and _infer_meta do
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.round(np.where(pred_empty[:, None], 0.0, pred).astype(np.float32)).astype(np.float64)
        b = np.round(np.where(gt_empty[:, None], 0.0, gt).astype(np.float32)).astype(np.float64)

    def region_bounds(r: np.ndarray, empty: np.ndarray) -> np.ndarray:
        x, y, w, h = r.T
        return np.where(empty, 0.0, np.stack([x, y, x + w - 1, y + h - 1]))

    ba = region_bounds(a, pred_empty)
    bb = region_bounds(b, gt_empty)
    union = np.stack(
        [
            np.minimum(ba[0], bb[0]),
            np.minimum(ba[1], bb[1]),
            np.maximum(ba[2], bb[2]),
            np.maximum(ba[3], bb[3]),
        ]
    )
    both_empty = (union[0] >= union[2]) | (union[1] >= union[3])
    if bounds is not None:
        width, height = bounds
        window = np.stack(
            [
                np.maximum(0.0, union[0]),
                np.maximum(0.0, union[1]),
                np.minimum(width - 1.0, union[2]),
                np.minimum(height - 1.0, union[3]),
            ]
        )
    else:
        window = union
    outside = (window[0] >= window[2]) | (window[1] >= window[3])

    def painted(r: np.ndarray, empty: np.ndarray) -> tuple[np.ndarray, ...]:
        """Column and row ranges ``[start, stop)`` of a rectangle painted into the window."""
        x, y, w, h = r.T
        ranges = []
        for pos, size, lo, hi in ((x, w, window[0], window[2]), (y, h, window[1], window[3])):
            length = hi - lo + 1
            start = np.maximum(0.0, pos - lo)
            stop = np.minimum(hi, pos + size - 1 - lo) + 1
            # Python slice semantics of the toolkit's mask[start:stop]
            stop = np.where(stop < 0, stop + length, stop)
            stop = np.clip(stop, 0.0, length)
            start = np.minimum(start, length)
            ranges += [start, stop]
        c0, c1, r0, r1 = ranges
        x_end = x + w - 1
        y_end = y + h - 1
        none = empty | (x > window[2]) | (x_end < window[0]) | (y > window[3]) | (y_end < window[1])
        c1 = np.where(none, c0, np.maximum(c1, c0))
        r1 = np.where(none, r0, np.maximum(r1, r0))
        return c0, c1, r0, r1

    with np.errstate(invalid="ignore"):
        ac0, ac1, ar0, ar1 = painted(a, pred_empty)
        bc0, bc1, br0, br1 = painted(b, gt_empty)
        area_a = (ac1 - ac0) * (ar1 - ar0)
        area_b = (bc1 - bc0) * (br1 - br0)
        inter_w = np.clip(np.minimum(ac1, bc1) - np.maximum(ac0, bc0), 0.0, None)
        inter_h = np.clip(np.minimum(ar1, br1) - np.maximum(ar0, br0), 0.0, None)
        inter = inter_w * inter_h
        union_px = area_a + area_b - inter
    out = np.zeros(len(pred), dtype=np.float64)
    np.divide(inter, union_px, out=out, where=union_px > 0)
    out[outside] = 0.0
    out[both_empty] = 1.0
    return out


def empty_region_overlap(
    pred: np.ndarray, gt: np.ndarray, pred_empty: np.ndarray, gt_empty: np.ndarray
) -> np.ndarray:
    """Continuous IoU with the long-term convention that two empty regions overlap 1.

    Args:
        pred: ``(N, 4)`` predicted boxes, pixels.
        gt: ``(N, 4)`` ground-truth boxes, pixels.
        pred_empty: ``(N,)`` bool, no prediction this frame (besides NaN or non-positive size).
        gt_empty: ``(N,)`` bool, target absent this frame (besides NaN rows).

    Returns:
        ``(N,)`` float64 in ``[0, 1]``.
    """
    pred, gt = _pair(pred, gt)
    with np.errstate(invalid="ignore"):
        p_empty = (
            np.asarray(pred_empty, dtype=bool)
            | ~np.isfinite(pred).all(axis=-1)
            | ~((pred[:, 2] > 0) & (pred[:, 3] > 0))
        )
        g_empty = (
            np.asarray(gt_empty, dtype=bool)
            | ~np.isfinite(gt).all(axis=-1)
            | ~((gt[:, 2] > 0) & (gt[:, 3] > 0))
        )
    out = iou(pred, gt)
    out[p_empty | g_empty] = 0.0
    out[p_empty & g_empty] = 1.0
    return out
