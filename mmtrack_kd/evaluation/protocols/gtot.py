"""GTOT protocol: min-error / max-overlap, counts pooled over all frames of all sequences.

Per frame, the centre error is the smaller of the errors against the visible and the thermal
ground truth and the overlap the larger of the two IoUs (as RGBT234). Unlike the per-sequence
protocols, hits are counted over *all frames of all sequences* and divided by the total number
of frames (long sequences weigh more):

* precision: error ``< tau`` (strictly), ``tau = 0, 0.5, ..., 25`` px (51 values); MPR at 5 px;
* success: IoU ``> theta``, ``theta = 0, 0.02, ..., 1`` (51 values); MSR = area under the
  pooled success curve by the trapezoid rule.

Nothing is replaced and no frame is invalid. ``Curve.mean`` is the pooled curve;
``Curve.per_sequence`` holds each sequence's own rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmtrack_kd.evaluation.metrics import centre_error, iou
from mmtrack_kd.evaluation.protocols.base import (
    Aggregate,
    CurveSpec,
    Protocol,
    SequenceInput,
    index_of,
    min_error_max_overlap,
    modality_box_sets,
    rate_counts,
)
from mmtrack_kd.evaluation.result import Curve

GTOT_PRECISION = CurveSpec(
    "precision", np.linspace(0, 25, 51), "<", "Location error threshold (px)", "Precision"
)
GTOT_SUCCESS = CurveSpec(
    "success", np.linspace(0, 1, 51), ">", "Overlap threshold", "Success rate"
)


@dataclass(frozen=True)
class _Counts:
    frames: int
    hits: dict[str, np.ndarray]  # curve key -> (T,) int64 counts


def _headline(curves: dict[str, np.ndarray]) -> dict[str, float]:
    success = curves["success"]
    step = float(GTOT_SUCCESS.thresholds[1] - GTOT_SUCCESS.thresholds[0])
    return {
        "MPR": float(curves["precision"][index_of(GTOT_PRECISION.thresholds, 5)]),
        "MSR": float(np.sum((success[1:] + success[:-1]) / 2.0) * step),
    }


class GTOTProtocol(Protocol):
    """GTOT MPR at 5 px and trapezoid MSR, pooled over frames."""

    name = "gtot"
    specs = (GTOT_PRECISION, GTOT_SUCCESS)
    curve_scores = {"precision": "MPR", "success": "MSR"}
    headline_score = "MSR"
    published_benchmarks = {"gtot": "GTOT"}

    def prepare(self, seq: SequenceInput) -> _Counts:
        errors, overlaps = min_error_max_overlap(
            seq.pred, modality_box_sets(self.name, seq.gt), centre_error, iou
        )
        values = {"precision": errors, "success": overlaps}
        return _Counts(
            frames=len(seq.pred),
            hits={s.key: rate_counts(values[s.key], s.thresholds, s.op) for s in self.specs},
        )

    def aggregate(self, names: list[str], prepared: list[_Counts]) -> Aggregate:
        total = sum(p.frames for p in prepared)
        curves = {}
        for spec in self.specs:
            pooled = np.sum([p.hits[spec.key] for p in prepared], axis=0) / total
            curves[spec.key] = Curve(
                key=spec.key,
                thresholds=spec.thresholds.copy(),
                mean=pooled,
                per_sequence={n: p.hits[spec.key] / p.frames for n, p in zip(names, prepared)},
                x_label=spec.x_label,
                y_label=spec.y_label,
            )
        return Aggregate(
            scores=_headline({k: c.mean for k, c in curves.items()}),
            curves=curves,
            sequence_scores={
                n: _headline({k: c.per_sequence[n] for k, c in curves.items()}) for n in names
            },
            details={"frames": total},
        )

