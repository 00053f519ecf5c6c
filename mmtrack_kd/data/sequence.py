"""The :class:`Sequence` type: one tracking sequence as every engine part sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from mmtrack_kd.errors import DataError


@dataclass(frozen=True, eq=False)
class Sequence:
    """One sequence of aligned frames in one or more modalities.

    Attributes:
        name: sequence name as the dataset spells it (may contain quotes or backticks).
        dataset: name of the dataset plugin that listed it (used in every error message).
        frames: stream name (``"rgb"`` and the auxiliary modality's name, e.g. ``"thermal"``)
            -> frame paths, all of the same length ``N`` and aligned frame by frame.
        boxes: ``(N, 4)`` float64 target boxes ``x, y, w, h`` in pixels of the RGB frame; rows
            of NaN where the frame carries no annotation.
        visible: ``(N,)`` bool, True where the target is present and annotated.
        modality_boxes: optional per-stream ground truth (RGBT234 and GTOT annotate each
            modality), stream name -> ``(N, 4)``.
        attributes: per-sequence challenge flags in the dataset's own vocabulary
            (``{"LI": True, "TC": False, ...}``).
        raw: stream name -> a raw-data file for representations that are not frame images
            (e.g. the HDF5 event file of an event camera).
        frame_times: optional ``(N + 1,)`` frame boundary timestamps in microseconds, used by
            raw-data representations (events of frame k lie in ``[t[k], t[k+1])``).
        path: the sequence folder, for messages.
    """

    name: str
    dataset: str
    frames: Mapping[str, tuple[Path, ...]]
    boxes: np.ndarray
    visible: np.ndarray
    modality_boxes: Mapping[str, np.ndarray] = field(default_factory=dict)
    attributes: Mapping[str, bool] = field(default_factory=dict)
    raw: Mapping[str, Path] = field(default_factory=dict)
    frame_times: np.ndarray | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise DataError(f"{self.where}: boxes must be (N, 4), got {self.boxes.shape}")
        if self.visible.shape != (n,):
            raise DataError(f"{self.where}: visibility has {len(self.visible)} rows for {n} boxes")
        for stream, paths in self.frames.items():
            if len(paths) != n:
                raise DataError(
                    f"{self.where}: {len(paths)} {stream} frames but {n} ground-truth rows"
                )
        for stream, boxes in self.modality_boxes.items():
            if boxes.shape != (n, 4):
                raise DataError(f"{self.where}: {stream} ground truth is {boxes.shape}, not ({n}, 4)")

    @property
    def where(self) -> str:
        """``dataset/sequence`` for error messages."""
        return f"{self.dataset}/{self.name}"

    @property
    def n_frames(self) -> int:
        """Number of frames ``N``."""
        return len(self.boxes)

    @property
    def streams(self) -> tuple[str, ...]:
        """Names of the streams this sequence carries."""
        return tuple(self.frames)
