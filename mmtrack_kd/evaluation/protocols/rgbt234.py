"""RGBT234 maximum precision / success rate (MPR / MSR), and RGBT210's single-ground-truth form.

RGBT234 annotates each modality separately. Per frame, the centre error is the *smaller* of
the errors against the visible and the infrared ground truth, and the overlap the *larger* of
the two IoUs; then the OTB curves: MPR = share of frames with error ``<= 20`` px (thresholds
0..50), MSR = mean over the 21 success thresholds (IoU ``> theta``, ``theta = 0, 0.05, ...,
1``), each sequence's curve first, then the mean over sequences. No box is replaced and no frame
is invalid: a NaN box misses.

RGBT210 (same images, one ``init.txt``) is the same protocol against its single ground truth
(``GroundTruth.boxes``); its numbers are reported as PR / SR.
"""

from __future__ import annotations

import numpy as np

from mmtrack_kd.evaluation.metrics import centre_error, iou
from mmtrack_kd.evaluation.protocols.base import (
    SequenceInput,
    min_error_max_overlap,
    modality_box_sets,
)
from mmtrack_kd.evaluation.protocols.otb import OTBProtocol


class RGBT234Protocol(OTBProtocol):
    """OTB curves on min-error / max-overlap over the per-modality ground truths."""

    name = "rgbt234"
    published_benchmarks = {"rgbt234": "RGBT234"}
    precision_key = "MPR"
    success_key = "MSR"

    def frame_values(self, seq: SequenceInput) -> dict[str, np.ndarray]:
        errors, overlaps = min_error_max_overlap(
            seq.pred, modality_box_sets(self.name, seq.gt), centre_error, iou
        )
        return {"precision": errors, "success": overlaps}


class RGBT210Protocol(OTBProtocol):
    """RGBT210: the RGBT234 protocol against the one ground truth."""

    name = "rgbt210"

