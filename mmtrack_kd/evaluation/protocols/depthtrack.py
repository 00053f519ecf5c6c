"""DepthTrack protocol: VOT long-term precision / recall / F-score from confidences.

This is the VOT toolkit's unsupervised long-term analysis (``vot.analysis.longterm``,
``PrecisionRecall``) for one run:

* **Thresholds.** All confidences of the tracker over all scored sequences are pooled (NaN
  values left out) and sorted in descending order; with ``n`` values and ``k = floor(n / 98)``
  the 98 values at indices ``round(linspace(k, n - k, 98))`` are taken (all values when
  ``n <= 98``), then ``+inf`` is put first and ``-inf`` last.
* **Per sequence and threshold** ``tau``: ``Pr`` = mean overlap over the frames with confidence
  ``>= tau`` (1 when there are none); ``Re`` = sum of those overlaps / number of frames whose
  target is visible (0 when no frame passes). Frames where both the prediction and the ground
  truth are empty overlap 1, so they add to both.
* **Aggregate.** ``Pr`` and ``Re`` are averaged over sequences per threshold;
  ``F = 2 Pr Re / (Pr + Re)``; the headline is the maximum F (first one on ties) with the ``Pr``
  and ``Re`` at that threshold.
* **Frame 1 is the initialisation frame.** The toolkit stores it as the special region ``1``
  (empty, so it overlaps 0 with the visible target) and records no confidence for it, which
  the analysis reads as 0. Both are applied whatever the inputs hold for frame 1.
* **Overlap.** With ``overlap="vot"`` (default) the toolkit's rasterised overlap is reproduced
  exactly (:func:`~mmtrack_kd.evaluation.metrics.vot_overlap`): boxes rounded to whole pixels
  and clipped to ``GroundTruth.image_size`` when it is known (unclipped otherwise, which only
  differs for boxes crossing the image border). ``overlap="continuous"`` uses continuous IoU.
* A ground-truth row with a NaN, or a frame with ``visible`` false, is an absent target (an empty
  region); a predicted row with a NaN is an empty prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mmtrack_kd.data.results_io import VOT_LONGTERM_RESULTS
from mmtrack_kd.evaluation.metrics import empty_region_overlap, vot_overlap
from mmtrack_kd.evaluation.protocols.base import (
    Aggregate,
    Panel,
    Protocol,
    SequenceInput,
)
from mmtrack_kd.evaluation.result import Curve

RESOLUTION = 100  # thresholds, the +inf and -inf ends included (the toolkit's default)


def longterm_thresholds(confidences: np.ndarray, resolution: int = RESOLUTION) -> np.ndarray:
    """The VOT toolkit's confidence thresholds.

    Args:
        confidences: ``(n,)`` pooled confidences of all frames of all sequences; NaN is ignored.
        resolution: number of thresholds including the two infinite ends.

    Returns:
        ``(resolution,)`` (or ``(n + 2,)`` when ``n <= resolution - 2``) thresholds, from
        ``+inf`` down to ``-inf``.
    """
    scores = np.asarray(confidences, dtype=np.float64)
    scores = -np.sort(-scores[~np.isnan(scores)])  # descending
    n = len(scores)
    inner = resolution - 2
    if n > inner:
        delta = n // inner
        idx = np.round(np.linspace(delta, n - delta, num=inner)).astype(int)
        picked = scores[idx]
    else:
        picked = scores
    return np.concatenate([[np.inf], picked, [-np.inf]])


@dataclass(frozen=True)
class _LongTermSequence:
    confidence: np.ndarray  # (m,) ascending confidences of the frames with a confidence
    overlap_prefix: np.ndarray  # (m + 1,) cumulative overlaps in that order, from 0
    visible_frames: int


class DepthTrackProtocol(Protocol):
    """VOT long-term Pr / Re / F (see the module docstring): scores ``{"Pr", "Re", "F"}``,
    curves ``precision``, ``recall`` and ``f_score`` over the confidence thresholds,
    ``details["threshold"]`` the threshold of the maximum F. Attribute subsets recompute the
    thresholds from the subset's confidences, as the toolkit would on that subset.

    Args:
        overlap: ``"vot"`` for the toolkit's rasterised overlap, ``"continuous"`` for plain IoU.
    """

    name = "depthtrack"
    needs_confidence = True
    needs_image_size = True
    result_layout = VOT_LONGTERM_RESULTS
    curve_scores = {"precision": "Pr", "recall": "Re", "f_score": "F"}
    headline_score = "F"
    published_benchmarks = {"depthtrack": "DepthTrack"}
    # The VOT long-term toolkit's figures: precision over recall, F-score over the threshold.
    panels = (
        Panel("precision", "Precision-recall", x="recall"),
        Panel("f_score", "F-score over the confidence threshold"),
    )

    def __init__(self, overlap: Literal["vot", "continuous"] = "vot") -> None:
        if overlap not in ("vot", "continuous"):
            raise ValueError(f"overlap must be 'vot' or 'continuous', not {overlap!r}")
        self.overlap = overlap

    def prepare(self, seq: SequenceInput) -> _LongTermSequence:
        gt = seq.gt
        assert seq.conf is not None
        gt_empty = ~gt.visible | ~np.isfinite(gt.boxes).all(axis=1)
        pred_empty = ~np.isfinite(seq.pred).all(axis=1)
        pred_empty[0] = True  # the initialisation marker, special region 1
        if self.overlap == "vot":
            overlaps = vot_overlap(seq.pred, gt.boxes, pred_empty, gt_empty, gt.image_size)
        else:
            overlaps = empty_region_overlap(seq.pred, gt.boxes, pred_empty, gt_empty)
        conf = seq.conf.copy()
        conf[0] = 0.0  # no confidence recorded for the initialisation frame; read as 0
        has_conf = ~np.isnan(conf)
        conf, overlaps = conf[has_conf], overlaps[has_conf]
        order = np.argsort(conf, kind="stable")
        return _LongTermSequence(
            confidence=conf[order],
            overlap_prefix=np.concatenate([[0.0], np.cumsum(overlaps[order])]),
            visible_frames=int(np.count_nonzero(~gt_empty)),
        )

    def curves_at(
        self, seq: _LongTermSequence, thresholds: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(T,)`` precision and recall of one sequence at the given thresholds."""
        m = len(seq.confidence)
        first = np.searchsorted(seq.confidence, thresholds, side="left")  # conf >= tau from here
        passed = m - first
        overlap_sum = seq.overlap_prefix[m] - seq.overlap_prefix[first]
        precision = np.ones(len(thresholds))
        np.divide(overlap_sum, passed, out=precision, where=passed > 0)
        recall = np.zeros(len(thresholds))
        if seq.visible_frames > 0:
            recall = np.where(passed > 0, overlap_sum / seq.visible_frames, 0.0)
        return precision, recall

    def aggregate(self, names: list[str], prepared: list[_LongTermSequence]) -> Aggregate:
        thresholds = longterm_thresholds(np.concatenate([p.confidence for p in prepared]))
        per_seq = [self.curves_at(p, thresholds) for p in prepared]
        precision = np.mean([pr for pr, _ in per_seq], axis=0)
        recall = np.mean([re for _, re in per_seq], axis=0)
        f_score = _f_score(precision, recall)
        best = int(np.argmax(f_score))  # the first maximum, as the toolkit's list.index

        def curve(key: str, mean: np.ndarray, values: list[np.ndarray], y_label: str) -> Curve:
            return Curve(
                key=key,
                thresholds=thresholds.copy(),
                mean=mean,
                per_sequence=dict(zip(names, values)),
                x_label="Confidence threshold",
                y_label=y_label,
            )

        curves = {
            "precision": curve("precision", precision, [pr for pr, _ in per_seq], "Precision"),
            "recall": curve("recall", recall, [re for _, re in per_seq], "Recall"),
            "f_score": curve(
                "f_score", f_score, [_f_score(pr, re) for pr, re in per_seq], "F-score"
            ),
        }
        return Aggregate(
            scores={
                "Pr": float(precision[best]),
                "Re": float(recall[best]),
                "F": float(f_score[best]),
            },
            curves=curves,
            sequence_scores={
                n: {
                    "Pr": float(pr[best]),
                    "Re": float(re[best]),
                    "F": float(_f_score(pr[best : best + 1], re[best : best + 1])[0]),
                }
                for n, (pr, re) in zip(names, per_seq)
            },
            details={"threshold": float(thresholds[best]), "threshold_index": best},
        )


def _f_score(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    total = precision + recall
    out = np.zeros_like(total)
    np.divide(2.0 * precision * recall, total, out=out, where=total > 0)
    return out

