"""``--what agreement``: how far a trained model's boxes move at bf16 and int8 from float32's.

Random weights give a nearly flat score map whose peak jumps between cells at the slightest
rounding, so agreement is measured where it matters: a trained checkpoint tracking real
sequences (each of the recipe's ``evaluate.datasets``), once per precision, from the same first
box. Per precision it reports, against the float32 run of the same sequences:

* ``mean_iou_to_fp32`` and the share of frames whose box overlaps float32's by IoU >= 0.9 / 0.5;
* the dataset's own protocol scores (``scores``, in percent: LasHeR's PR / NPR / SR, DepthTrack's
  Pr / Re / F, ...) against the ground truth, beside float32's, so an accuracy change reads
  directly;
* the tracker's median seconds per frame (reading frames from disk is not timed).

A tracker that drifts once diverges for the rest of its sequence, so IoU to float32 is a
sequence-level effect, not per-frame noise: ``per_sequence`` keeps each sequence's figure.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.metrics import iou
from mmtrack_kd.evaluation.protocols import get_protocol
from mmtrack_kd.tracking.tracker import Tracker, TrackerSettings, run_sequence

log = logging.getLogger(__name__)


def precision_agreement(
    checkpoint: str,
    datasets: Sequence[tuple[str, Any]],
    precisions: Sequence[str] = ("bf16", "int8"),
    max_sequences: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Track the datasets' sequences at float32 and at each of ``precisions``; see the module.

    Returns ``{"what": "agreement", "checkpoint", "sequences", "frames", "fp32": {...},
    "<precision>": {...}}``; a precision that cannot run (int8 off the CPU) holds ``error``.
    """
    runs = ("fp32", *precisions)
    trackers: dict[str, Tracker | dict[str, str]] = {}
    for precision in runs:
        try:
            trackers[precision] = Tracker.from_checkpoint(checkpoint, device,
                                                          settings=TrackerSettings(precision=precision))
        except Exception as error:  # noqa: BLE001 - a precision this device lacks: report, go on
            if precision == "fp32":
                raise
            trackers[precision] = {"error": f"{type(error).__name__}: {error}"}
    boxes: dict[str, list[np.ndarray]] = {precision: [] for precision in runs}
    confidences: dict[str, list[np.ndarray]] = {precision: [] for precision in runs}
    times: dict[str, list[np.ndarray]] = {precision: [] for precision in runs}
    names: list[str] = []
    # per dataset: its protocol and the slice of ``names`` it covers
    spans: list[tuple[str, list[GroundTruth], slice]] = []
    for dataset_name, dataset in datasets:
        truths = []
        start = len(names)
        for name in dataset.list_sequences()[:max_sequences]:
            sequence = dataset.load_sequence(name)
            log.info("agreement: %s/%s", dataset_name, name)
            names.append(f"{dataset_name}/{name}")
            truths.append(GroundTruth.from_sequence(sequence))
            for precision, tracker in trackers.items():
                if isinstance(tracker, dict):
                    continue
                result = run_sequence(tracker, sequence)
                boxes[precision].append(result.boxes)
                confidences[precision].append(result.confidences)
                times[precision].append(result.times[1:])
        spans.append((str(dataset.protocol), truths, slice(start, len(names))))
    out: dict[str, Any] = {"what": "agreement", "checkpoint": str(checkpoint), "sequences": len(names),
                           "frames": int(sum(len(b) for b in boxes["fp32"]))}
    reference = boxes["fp32"]
    for precision, tracker in trackers.items():
        if isinstance(tracker, dict):
            out[precision] = tracker
            continue
        scores: dict[str, float] = {}
        for protocol, truths, span in spans:
            result = get_protocol(protocol).score(
                {gt.name: b for gt, b in zip(truths, boxes[precision][span])}, truths,
                confidences={gt.name: c for gt, c in zip(truths, confidences[precision][span])},
                attributes=False)
            prefix = f"{protocol} " if len(spans) > 1 else ""
            scores.update({f"{prefix}{key}": float(value) * 100 for key, value in result.scores.items()})
        row: dict[str, Any] = {
            "scores": scores,
            "median_frame_s": float(np.median(np.concatenate(times[precision]))) if names else float("nan"),
        }
        if precision != "fp32":
            # frame 0 is the given box in every run: it would only inflate the agreement
            overlaps = [iou(b[1:], r[1:]) for b, r in zip(boxes[precision], reference)]
            every = np.concatenate(overlaps) if overlaps else np.zeros(0)
            row.update(
                mean_iou_to_fp32=float(every.mean()) if every.size else float("nan"),
                frames_iou_0_9=float((every >= 0.9).mean()) if every.size else float("nan"),
                frames_iou_0_5=float((every >= 0.5).mean()) if every.size else float("nan"),
                per_sequence={name: float(o.mean()) for name, o in zip(names, overlaps)},
            )
        out[precision] = row
    return out


def agreement_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One printable row per precision."""
    rows = []
    for precision in ("fp32", "bf16", "int8"):
        row = result.get(precision)
        if row is None:
            continue
        if "error" in row:
            rows.append({"precision": precision, "error": row["error"]})
            continue
        rows.append({"precision": precision,
                     "scores": ", ".join(f"{key} {value:.1f}" for key, value in row["scores"].items()),
                     "mean IoU to fp32": round(row.get("mean_iou_to_fp32", 1.0), 3),
                     "frames IoU>=0.9": round(row.get("frames_iou_0_9", 1.0), 3),
                     "ms/frame": round(row["median_frame_s"] * 1e3, 2)})
    return rows
