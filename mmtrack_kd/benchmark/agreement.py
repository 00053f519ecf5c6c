"""``--what agreement``: how far a trained model's boxes move at bf16 and int8 from float32's.

Random weights give a nearly flat score map whose peak jumps between cells at the slightest
rounding, so agreement is measured where it matters: a trained checkpoint tracking real
sequences (each of the recipe's ``evaluate.datasets``), once per precision, from the same first
box. Per precision it reports, against the float32 run of the same sequences:

* ``mean_iou_to_fp32`` and the share of frames whose box overlaps float32's by IoU >= 0.9 / 0.5;
* ``PR`` (centre error <= 20 px) and ``SR`` (success AUC over IoU thresholds 0..1) against the
  ground truth, beside float32's own, so an accuracy change reads directly;
* the tracker's median seconds per frame (reading frames from disk is not timed).

A tracker that drifts once diverges for the rest of its sequence, so IoU to float32 is a
sequence-level effect, not per-frame noise: ``per_sequence`` keeps each sequence's figure.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from mmtrack_kd.evaluation.metrics import centre_error, iou
from mmtrack_kd.tracking.tracker import Tracker, TrackerSettings, run_sequence

log = logging.getLogger(__name__)

PR_PIXELS = 20.0
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)


def _scores(boxes: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """PR at 20 px and success AUC of ``boxes`` against ``truth``, over frames with a target."""
    visible = np.all(np.isfinite(truth), axis=1) & (truth[:, 2] > 0) & (truth[:, 3] > 0)
    if not visible.any():
        return float("nan"), float("nan")
    errors = centre_error(boxes[visible], truth[visible])
    overlaps = iou(boxes[visible], truth[visible])
    success = [(overlaps > threshold).mean() for threshold in SUCCESS_THRESHOLDS]
    return float((errors <= PR_PIXELS).mean()), float(np.mean(success))


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
    times: dict[str, list[np.ndarray]] = {precision: [] for precision in runs}
    truths: list[np.ndarray] = []
    names: list[str] = []
    for dataset_name, dataset in datasets:
        sequence_names = dataset.list_sequences()[:max_sequences]
        for name in sequence_names:
            sequence = dataset.load_sequence(name)
            log.info("agreement: %s/%s", dataset_name, name)
            names.append(f"{dataset_name}/{name}")
            truths.append(np.asarray(sequence.boxes, dtype=np.float64))
            for precision, tracker in trackers.items():
                if isinstance(tracker, dict):
                    continue
                result = run_sequence(tracker, sequence)
                boxes[precision].append(result.boxes)
                times[precision].append(result.times[1:])
    out: dict[str, Any] = {"what": "agreement", "checkpoint": str(checkpoint), "sequences": len(names),
                           "frames": int(sum(len(t) for t in truths))}
    reference = boxes["fp32"]
    for precision, tracker in trackers.items():
        if isinstance(tracker, dict):
            out[precision] = tracker
            continue
        scores = [_scores(b, t) for b, t in zip(boxes[precision], truths)]
        row: dict[str, Any] = {
            "PR": float(np.nanmean([s[0] for s in scores])) * 100,
            "SR": float(np.nanmean([s[1] for s in scores])) * 100,
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
        rows.append({"precision": precision, "PR": round(row["PR"], 1), "SR": round(row["SR"], 1),
                     "mean IoU to fp32": round(row.get("mean_iou_to_fp32", 1.0), 3),
                     "frames IoU>=0.9": round(row.get("frames_iou_0_9", 1.0), 3),
                     "ms/frame": round(row["median_frame_s"] * 1e3, 2)})
    return rows
