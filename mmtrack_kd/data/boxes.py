"""Box conversions that dataset readers and result readers share."""

from __future__ import annotations

import numpy as np


def polygon_to_xywh(polygons: np.ndarray) -> np.ndarray:
    """``(N, 8)`` polygons ``x1,y1,...,x4,y4`` -> ``(N, 4)`` axis-aligned bounding boxes
    ``x, y, w, h`` with ``w = max(x) - min(x)`` (no +1), as the GTOT toolkit reduces its
    polygon results and as the VOT toolkit bounds a polygon."""
    polygons = np.asarray(polygons, dtype=np.float64)
    xs, ys = polygons[:, 0::2], polygons[:, 1::2]
    left, top = xs.min(axis=1), ys.min(axis=1)
    return np.stack([left, top, xs.max(axis=1) - left, ys.max(axis=1) - top], axis=1)
