"""VTUAV protocol: min-error / max-overlap on every 10th frame, per-sequence mean.

VTUAV is annotated every 10th frame. A tracker outputs a box for every frame; the protocol
keeps frames 1, 11, 21, ... (indices 0, 10, 20, ...) of the results and of the ground truth
(``GroundTruth`` holds a row per frame; rows between annotated frames are ignored). On those
frames the centre error is the smaller over the RGB and infrared ground truths and the overlap
the larger; then the OTB curves per sequence and their mean over sequences: MPR = precision at
20 px (error ``<= tau``, 0..50), MSR = mean over the 21 success thresholds (IoU ``> theta``).
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

ANNOTATION_STEP = 10


class VTUAVProtocol(OTBProtocol):
    """OTB curves on every 10th frame with min-error / max-overlap over RGB and infrared."""

    name = "vtuav"
    # The plugin with the subset as an option is left out: its name does not say which subset
    # was run.
    published_benchmarks = {"vtuav-st": "VTUAV-ST", "vtuav-lt": "VTUAV-LT"}
    precision_key = "MPR"
    success_key = "MSR"

    def frame_values(self, seq: SequenceInput) -> dict[str, np.ndarray]:
        keep = slice(0, None, ANNOTATION_STEP)
        box_sets = [boxes[keep] for boxes in modality_box_sets(self.name, seq.gt)]
        errors, overlaps = min_error_max_overlap(seq.pred[keep], box_sets, centre_error, iou)
        return {"precision": errors, "success": overlaps}

