"""Timing of the scoring protocols on synthetic data (1,000 sequences x 1,000 frames)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.protocols import get_protocol
from mmtrack_kd.plugins import default_registry


@dataclass(frozen=True)
class BenchFigure:
    """Time to score one protocol.

    Attributes:
        protocol: registry name.
        sequences: number of sequences scored.
        frames: frames per sequence.
        seconds: wall-clock time of the scoring call (attribute subsets included).
        frames_per_second: ``sequences * frames / seconds``.
    """

    protocol: str
    sequences: int
    frames: int
    seconds: float
    frames_per_second: float


def synthetic_data(
    sequences: int = 1000, frames: int = 1000, attributes: int = 5, seed: int = 0
) -> tuple[list[GroundTruth], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Random ground truths (two modalities, some absent frames), noisy predictions, confidences.

    Returns:
        ``(ground_truths, predictions, confidences)``: ``sequences`` :class:`GroundTruth` of
        ``frames`` frames; name -> ``(frames, 4)`` boxes; name -> ``(frames,)`` confidences.
    """
    rng = np.random.default_rng(seed)
    shape = (sequences, frames)
    centre = 300 + np.cumsum(rng.normal(0, 3, shape + (2,)), axis=1)
    size = np.clip(60 + np.cumsum(rng.normal(0, 0.5, shape + (2,)), axis=1), 8, None)
    gt = np.concatenate([centre - size / 2, size], axis=-1)
    shift = rng.normal(0, 0.02, shape + (4,)) * size.repeat(2, axis=-1)
    infrared = gt + shift
    drift = np.cumsum(rng.normal(0, 0.5, shape + (2,)), axis=1)
    pred = gt + rng.normal(0, 4, shape + (4,)) + np.concatenate([drift, 0 * drift], axis=-1)
    pred[rng.random(shape) < 0.005] = np.nan
    visible = rng.random(shape) > 0.03
    visible[:, 0] = True
    gt_written = np.where(visible[..., None], gt, np.nan)
    confidence = np.clip(rng.normal(0.6, 0.2, shape) + 0.2 * visible, 0, 1)
    names = [f"seq{i:04d}" for i in range(sequences)]
    flags = rng.random((sequences, attributes)) < 0.3
    gts = [
        GroundTruth(
            name=name,
            boxes=gt_written[i],
            visible=visible[i],
            modality_boxes={"visible": gt_written[i], "infrared": infrared[i]},
            attributes={f"A{j}": bool(flags[i, j]) for j in range(attributes)},
            image_size=(640, 480),
        )
        for i, name in enumerate(names)
    ]
    return gts, dict(zip(names, pred)), dict(zip(names, confidence))


def benchmark(
    sequences: int = 1000,
    frames: int = 1000,
    protocols: list[str] | None = None,
    attributes: int = 5,
    seed: int = 0,
) -> list[BenchFigure]:
    """Time each protocol on :func:`synthetic_data` (data generation not timed).

    Returns:
        One :class:`BenchFigure` per protocol, in registry order.
    """
    gts, preds, confs = synthetic_data(sequences, frames, attributes, seed)
    figures = []
    for name in protocols or list(default_registry().protocols):
        protocol = get_protocol(name)
        start = time.perf_counter()
        protocol.score(preds, gts, confidences=confs if protocol.needs_confidence else None)
        seconds = time.perf_counter() - start
        figures.append(
            BenchFigure(name, sequences, frames, seconds, sequences * frames / max(seconds, 1e-12))
        )
    return figures
