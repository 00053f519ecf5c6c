"""Score a tracker's result folder with a protocol, without images."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np

from mmtrack_kd.errors import DataError, MmtrackError
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


#: Above this share of boxes with a negative width or height, a result folder is refused: no
#: tracker writes such boxes, but corners read as x,y,w,h (or the reverse) give them.
NEGATIVE_SIZE_LIMIT = 0.5


def check_box_format(boxes: Mapping[str, np.ndarray], tracker_dir: str | os.PathLike[str],
                     box_format: BoxFormat) -> None:
    """Refuse results whose boxes mostly have negative sizes once read as ``box_format``: a
    wrong ``--box-format`` would otherwise score as a very bad tracker (PR 5.9 instead of 50)."""
    rows = [b[np.isfinite(b).all(axis=1)] for b in boxes.values() if len(b)]
    stacked = np.concatenate(rows) if rows else np.empty((0, 4))
    if len(stacked) == 0:
        return
    share = float(np.mean((stacked[:, 2] < 0) | (stacked[:, 3] < 0)))
    if share > NEGATIVE_SIZE_LIMIT:
        other = "xywh" if box_format != "xywh" else "ltrb"
        raise DataError(
            f"{tracker_dir}: {share:.0%} of the boxes have a negative width or height when read "
            f"as --box-format {box_format}; the files are probably in another format (try "
            f"--box-format {other})"
        )


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
        boxes = read_otb_results(tracker_dir, names, prefix, box_format)
        check_box_format(boxes, tracker_dir, box_format)
        return score(protocol, boxes, gts, files=files, attributes=attributes)
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
