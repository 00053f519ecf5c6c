"""LasHeR toolkit protocol: PR, NPR and SR with the toolkit's treatment of bad frames.

Rules (the MATLAB toolkit's ``calcSeqErrRobust`` and plotting code, which the published numbers
carry):

* results are cut to the ground-truth length;
* frame 1 is replaced by the ground truth;
* from frame 2 on, a prediction with non-positive width or height, or a row of NaN, takes the
  previous frame's (possibly already replaced) box. MATLAB's ``if`` on a vector needs every
  element true, so a row with only some NaN values is kept (and misses), and no replacement
  happens where the ground-truth row has a NaN;
* a frame is *invalid* unless all four ground-truth values are ``> 0`` (note: ``x = 0`` makes a
  frame invalid); on invalid frames the centre error counts as a hit at every threshold and the
  IoU never as a success; the denominator is all frames;
* precision: centre error ``<= tau``, ``tau = 0..50`` px, PR = P(20); normalised precision:
  ``||(dx / w_gt, dy / h_gt)|| <= tau``, ``tau = 0, 0.01, ..., 0.5``, NPR at 0.20; success:
  IoU ``> theta``, ``theta = 0, 0.05, ..., 1``, SR = mean of the 21 values;
* per curve, sequences whose whole curve is zero are dropped before averaging
  (``ProtocolResult.dropped`` lists them).
"""

from __future__ import annotations

import numpy as np

from mmtrack_kd.evaluation.metrics import centre_error, iou, normalised_centre_error
from mmtrack_kd.evaluation.protocols.base import (
    NORM_PRECISION_SPEC,
    PRECISION_SPEC,
    SUCCESS_SPEC,
    MeanCurveProtocol,
    SequenceInput,
    index_of,
)


def fill_bad_predictions(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Apply the LasHeR toolkit's frame-1 and previous-box replacement.

    Args:
        pred: ``(N, 4)`` predictions, already cut to the ground-truth length.
        gt: ``(N, 4)`` ground truth.

    Returns:
        ``(N, 4)`` new array: frame 1 is ``gt[0]``; each later frame with ``w <= 0`` or
        ``h <= 0`` or all four values NaN (and a ground-truth row without NaN) repeats the
        previous frame's box.
    """
    pred = np.array(pred, dtype=np.float64, copy=True)
    pred[0] = gt[0]
    with np.errstate(invalid="ignore"):
        bad = (pred[:, 2] <= 0) | (pred[:, 3] <= 0) | np.isnan(pred).all(axis=1)
    bad &= ~np.isnan(gt).any(axis=1)
    bad[0] = False
    source = np.where(bad, 0, np.arange(len(pred)))
    np.maximum.accumulate(source, out=source)
    return pred[source]


def lasher_frame_values(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame values of the three LasHeR curves after the toolkit's rules.

    Returns:
        ``precision`` and ``normalized_precision``: ``(N,)`` errors, ``-1`` on invalid frames
        (a hit at every threshold); ``success``: ``(N,)`` IoU, ``-1`` on invalid frames (never a
        success).
    """
    pred = fill_bad_predictions(pred, gt)
    with np.errstate(invalid="ignore"):
        valid = (gt > 0).all(axis=1)
    error = centre_error(pred, gt)
    norm_error = normalised_centre_error(pred, gt)
    overlap = iou(pred, gt)
    error[~valid] = -1.0
    norm_error[~valid] = -1.0
    overlap[~valid] = -1.0
    return {"precision": error, "normalized_precision": norm_error, "success": overlap}


class LasHeRProtocol(MeanCurveProtocol):
    """LasHeR PR / NPR / SR (see the module docstring)."""

    name = "lasher"
    curve_specs = (PRECISION_SPEC, NORM_PRECISION_SPEC, SUCCESS_SPEC)
    curve_scores = {"precision": "PR", "normalized_precision": "NPR", "success": "SR"}
    headline_score = "SR"
    published_benchmarks = {"lasher": "LasHeR"}
    drop_zero_curves = True

    def frame_values(self, seq: SequenceInput) -> dict[str, np.ndarray]:
        return lasher_frame_values(seq.pred, seq.gt.boxes)

    def headline(self, curves: dict[str, np.ndarray]) -> dict[str, float]:
        return {
            "PR": float(curves["precision"][index_of(PRECISION_SPEC.thresholds, 20)]),
            "NPR": float(
                curves["normalized_precision"][index_of(NORM_PRECISION_SPEC.thresholds, 0.2)]
            ),
            "SR": float(np.mean(curves["success"])),
        }

