"""VisEvent toolkit protocol: LasHeR's rules, and absent frames count as misses.

Everything in :mod:`.lasher` applies (cut, frame 1 = ground truth, previous-box replacement,
invalid frames, thresholds, all-zero sequences dropped). In addition, frames where the target is
flagged absent (``GroundTruth.visible`` is ``False``; the dataset's ``absent_label.txt`` holds 1
for *present*) are removed from the counts while the denominator stays the full sequence length,
so they miss at every threshold of every curve, even though their ``0,0,0,0`` ground truth would
make them "invalid" (a precision hit) under LasHeR's rule alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from os import PathLike

import numpy as np

from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.protocols._core import ArrayLike, SequenceInput, run
from mmtrack_kd.evaluation.protocols.lasher import LasHeRProtocol, lasher_frame_values
from mmtrack_kd.evaluation.result import ProtocolResult


class VisEventProtocol(LasHeRProtocol):
    """VisEvent PR / NPR / SR."""

    name = "visevent"

    def frame_values(self, seq: SequenceInput) -> dict[str, np.ndarray]:
        values = lasher_frame_values(seq.pred, seq.gt.boxes)
        absent = ~seq.gt.visible
        values["precision"][absent] = np.inf
        values["normalized_precision"][absent] = np.inf
        values["success"][absent] = -1.0
        return values


def score_visevent(
    predictions: Mapping[str, ArrayLike],
    ground_truths: Iterable[GroundTruth] | Mapping[str, GroundTruth],
    confidences: Mapping[str, ArrayLike] | None = None,
    files: Mapping[str, str | PathLike[str]] | None = None,
    attributes: bool = True,
) -> ProtocolResult:
    """Score with the VisEvent toolkit's PR / NPR / SR.

    Args:
        predictions: sequence name -> ``(M, 4)`` boxes (x, y, w, h, pixels), ``M >= N``.
        ground_truths: the sequences to score (``boxes`` and ``visible`` are used).
        confidences: unused.
        files: sequence name -> result file, named in error messages.
        attributes: also score each attribute's subset.

    Returns:
        Scores ``{"PR", "NPR", "SR"}`` and the LasHeR curves.
    """
    return run(VisEventProtocol(), predictions, ground_truths, confidences, files, attributes)
