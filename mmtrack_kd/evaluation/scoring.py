"""Score a tracker's result folder with a protocol, without images."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.protocols import NEEDS_CONFIDENCE, score
from mmtrack_kd.evaluation.result import ProtocolResult
from mmtrack_kd.evaluation.results_io import (
    BoxFormat,
    Layout,
    read_otb_results,
    read_vot_longterm_results,
    result_files,
)


def layout_for(protocol: str) -> Layout:
    """The result layout a protocol's toolkit reads: VOT long-term for DepthTrack, else OTB."""
    return "vot-longterm" if protocol in NEEDS_CONFIDENCE else "otb"


def score_results_folder(
    protocol: str,
    tracker_dir: str | os.PathLike[str],
    ground_truths: Iterable[GroundTruth] | Mapping[str, GroundTruth],
    attributes: bool = True,
    prefix: str = "",
    box_format: BoxFormat = "xywh",
) -> ProtocolResult:
    """Read a tracker's result files for the given sequences and score them.

    Args:
        protocol: registry name (``"lasher"``, ``"depthtrack"``, ...).
        tracker_dir: ``<tracker>`` folder: ``<seq>.txt`` files, or ``longterm/<seq>/...`` for
            DepthTrack.
        ground_truths: the sequences to score.
        attributes: also score each attribute's subset.
        prefix: OTB-style files are ``<prefix><seq>.txt`` (published raw results often carry
            the tracker's name).
        box_format: OTB-style boxes as ``xywh`` or ``ltrb`` corners.

    Raises:
        DataError: a missing or malformed result file (named), or a result shorter than its
            ground truth (the file named).
    """
    gts = (
        list(ground_truths.values())
        if isinstance(ground_truths, Mapping)
        else list(ground_truths)
    )
    names = [gt.name for gt in gts]
    layout = layout_for(protocol)
    files = result_files(tracker_dir, names, layout, prefix)
    if layout == "otb":
        return score(protocol, read_otb_results(tracker_dir, names, prefix, box_format), gts,
                     files=files, attributes=attributes)
    if prefix or box_format != "xywh":
        raise MmtrackError(f"{protocol}: results are in the VOT long-term layout; --prefix and "
                           "--box-format apply to OTB-style result files only")
    results = read_vot_longterm_results(tracker_dir, names)
    return score(
        protocol,
        {n: r.boxes for n, r in results.items()},
        gts,
        confidences={n: r.confidences for n, r in results.items()},
        files=files,
        attributes=attributes,
    )
