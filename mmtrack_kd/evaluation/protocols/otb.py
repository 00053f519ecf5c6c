"""Plain OTB one-pass evaluation: precision and success curves averaged over sequences.

Precision ``P(tau)`` is the share of frames whose centre error is ``<= tau``, ``tau = 0..50``
px; the headline PR is ``P(20)``. Success ``S(theta)`` is the share of frames with IoU
``> theta`` (strictly), ``theta = 0, 0.05, ..., 1``; the headline SR is the mean of these 21
values (not a trapezoid). Each sequence gets its own curves; the curves are averaged over
sequences. The predictions are scored as given: no box is replaced (the first frame
included), and a NaN box misses at every threshold.
"""

from __future__ import annotations

import numpy as np

from mmtrack_kd.evaluation.metrics import centre_error, iou
from mmtrack_kd.evaluation.protocols.base import (
    PRECISION_SPEC,
    SUCCESS_SPEC,
    MeanCurveProtocol,
    SequenceInput,
    index_of,
)


class OTBProtocol(MeanCurveProtocol):
    """OTB precision at 20 px and success (mean of 21 thresholds), one ground truth."""

    name = "otb"
    curve_specs = (PRECISION_SPEC, SUCCESS_SPEC)
    precision_key = "PR"
    success_key = "SR"
    curve_scores = {"precision": "PR", "success": "SR"}
    headline_score = "SR"

    def __init_subclass__(cls, **kwargs: object) -> None:
        # A subclass that renames its scores (MPR / MSR) keeps its facts in step.
        super().__init_subclass__(**kwargs)
        if "curve_scores" not in vars(cls):
            cls.curve_scores = {"precision": cls.precision_key, "success": cls.success_key}
        if "headline_score" not in vars(cls):
            cls.headline_score = cls.success_key

    def frame_values(self, seq: SequenceInput) -> dict[str, np.ndarray]:
        return {
            "precision": centre_error(seq.pred, seq.gt.boxes),
            "success": iou(seq.pred, seq.gt.boxes),
        }

    def headline(self, curves: dict[str, np.ndarray]) -> dict[str, float]:
        return {
            self.precision_key: float(curves["precision"][index_of(PRECISION_SPEC.thresholds, 20)]),
            self.success_key: float(np.mean(curves["success"])),
        }

