"""Helpers shared by the built-in modality adapters: statistics, frame lookup, display.

Nothing here is a plugin; the adapters import it so that every adapter finds its frame files,
names them in errors and turns frames into pictures the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Iterable

import numpy as np
from pydantic import Field

from mmtrack_kd.data import DataError, ModalityAdapter, Sequence

#: A per-channel mean of a 3-channel stream, as a recipe writes it (``[0.5, 0.5, 0.5]``).
Triple = tuple[float, float, float]
_Positive = Annotated[float, Field(gt=0)]
#: A per-channel standard deviation of a 3-channel stream; every value must be positive.
PositiveTriple = tuple[_Positive, _Positive, _Positive]


def frame_path(sequence: Sequence, stream: str, index: int) -> Path:
    """The file of frame ``index`` of ``stream``; a missing stream or index raises DataError.

    Args:
        sequence: the sequence to read from.
        stream: stream name, the key in :attr:`Sequence.frames` (``"thermal"``).
        index: 0-based frame index.
    """
    paths = sequence.frames.get(stream)
    if paths is None:
        carried = ", ".join(sequence.streams) or "none"
        raise DataError(
            f"{sequence.where}: the sequence has no {stream!r} frames (it carries: {carried})"
        )
    if not 0 <= index < len(paths):
        raise DataError(
            f"{sequence.where}: frame index {index} is out of range for {len(paths)} "
            f"{stream} frames"
        )
    return Path(paths[index])


def to_uint8_rgb(frame: np.ndarray) -> np.ndarray:
    """``H x W`` or ``H x W x {1, 3}`` values in [0, 1] -> ``H x W x 3`` uint8 (rounded).

    Values outside [0, 1] are clipped, so a frame that went through augmentation still shows.
    """
    array = np.asarray(frame, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"expected an H x W x 1 or H x W x 3 frame, got shape {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def estimate_statistics(
    adapter: ModalityAdapter, sequences: Iterable[Sequence], step: int = 10
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``adapter.read`` over every ``step``-th frame.

    Use it to set an adapter's ``mean`` / ``std`` options from one's own data instead of the
    ImageNet defaults (the values go straight into a recipe's ``modality`` section).

    Returns:
        ``(mean, std)``, each a tuple of ``adapter.channels`` floats.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    total = np.zeros(adapter.channels, dtype=np.float64)
    total_sq = np.zeros(adapter.channels, dtype=np.float64)
    count = 0
    for sequence in sequences:
        for index in range(0, sequence.n_frames, step):
            frame = adapter.read(sequence, index).astype(np.float64)
            pixels = frame.reshape(-1, frame.shape[-1])
            total += pixels.sum(axis=0)
            total_sq += np.square(pixels).sum(axis=0)
            count += len(pixels)
    if count == 0:
        raise ValueError("no frames to estimate statistics from")
    mean = total / count
    # Population variance from running sums; clamp tiny negative values from rounding.
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
