"""VisEvent toolkit protocol: LasHeR's rules, and absent frames count as misses.

Everything in :mod:`.lasher` applies (cut, frame 1 = ground truth, previous-box replacement,
invalid frames, thresholds, all-zero sequences dropped). In addition, frames where the target is
flagged absent (``GroundTruth.visible`` is ``False``; the dataset's ``absent_label.txt`` holds 1
for *present*) are removed from the counts while the denominator stays the full sequence length,
so they miss at every threshold of every curve, even though their ``0,0,0,0`` ground truth would
make them "invalid" (a precision hit) under LasHeR's rule alone.
"""

from __future__ import annotations

import numpy as np

from mmtrack_kd.evaluation.protocols.base import SequenceInput
from mmtrack_kd.evaluation.protocols.lasher import LasHeRProtocol, lasher_frame_values


class VisEventProtocol(LasHeRProtocol):
    """VisEvent PR / NPR / SR."""

    name = "visevent"
    published_benchmarks = {"visevent": "VisEvent"}

    def frame_values(self, seq: SequenceInput) -> dict[str, np.ndarray]:
        values = lasher_frame_values(seq.pred, seq.gt.boxes)
        absent = ~seq.gt.visible
        values["precision"][absent] = np.inf
        values["normalized_precision"][absent] = np.inf
        values["success"][absent] = -1.0
        return values

