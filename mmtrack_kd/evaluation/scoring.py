"""Score a tracker's result folder with a protocol, without images."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from mmtrack_kd.data.results_io import BoxFormat
from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.protocols import Protocol, get_protocol
from mmtrack_kd.evaluation.result import ProtocolResult


def score_results_folder(
    protocol: str | Protocol,
    tracker_dir: str | os.PathLike[str],
    ground_truths: Iterable[GroundTruth] | Mapping[str, GroundTruth],
    attributes: bool = True,
    prefix: str = "",
    box_format: BoxFormat = "xywh",
) -> ProtocolResult:
    """Read a tracker's result files for the given sequences, in the protocol's result layout,
    and score them.

    Args:
        protocol: a registry name or a :class:`~mmtrack_kd.evaluation.protocols.Protocol`.
        tracker_dir: ``<tracker>`` folder, in the layout of ``protocol.result_layout``
            (``<seq>.txt`` files for the OTB-style one).
        ground_truths: the sequences to score.
        attributes: also score each attribute's subset.
        prefix: OTB-style files are ``<prefix><seq>.txt`` (published raw results often carry
            the tracker's name).
        box_format: OTB-style boxes as ``xywh`` or ``ltrb`` corners.

    Raises:
        DataError: a missing or malformed result file (named), or a result shorter than its
            ground truth (the file named).
        MmtrackError: ``prefix`` or ``box_format`` for a layout that has no such variants.
    """
    protocol = get_protocol(protocol)
    gts = (
        list(ground_truths.values())
        if isinstance(ground_truths, Mapping)
        else list(ground_truths)
    )
    results = protocol.result_layout.read(tracker_dir, [gt.name for gt in gts], prefix, box_format)
    return protocol.score(results.boxes, gts, confidences=results.confidences,
                          files=results.files, attributes=attributes)
