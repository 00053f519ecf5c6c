"""The ground truth of one sequence as the scoring protocols see it.

A dataset plugin's ``Sequence`` converts to :class:`GroundTruth`; the protocols need nothing
else (no images), so result folders of any tracker can be scored from annotations alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmtrack_kd.errors import DataError


def _as_boxes(value: object, name: str, what: str, source: str | None) -> np.ndarray:
    """Return ``value`` as a float64 ``(N, 4)`` array or raise :class:`DataError`."""
    boxes = np.array(value, dtype=np.float64, copy=True)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        where = f" ({source})" if source else ""
        raise DataError(
            f"sequence {name!r}{where}: {what} must be N x 4 (x, y, w, h), got shape {boxes.shape}"
        )
    boxes.setflags(write=False)
    return boxes


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """Annotations of one sequence.

    Attributes:
        name: Sequence name (the result file of a tracker is named after it).
        boxes: ``(N, 4)`` float64, ``x, y, w, h`` in pixels, top-left corner; one row a frame.
            A row of NaN means "no annotation" (DepthTrack writes ``nan`` for an absent target).
        visible: ``(N,)`` bool, whether the target is in view. Defaults to rows that are finite
            with ``w > 0`` and ``h > 0``.
        modality_boxes: Per-modality ground truth, e.g. ``{"visible": (N, 4), "infrared":
            (N, 4)}`` for RGBT234 / GTOT / VTUAV, whose protocols take the minimum centre error and
            the maximum overlap over these box sets. Empty when the dataset has one ground truth.
        attributes: Challenge attributes of the sequence, e.g. ``{"TC": True, "LI": False}``.
        image_size: ``(width, height)`` of the frames in pixels, where known. The VOT long-term
            protocol (DepthTrack) clips regions to it, as the VOT toolkit does.
        source: The annotation file, named in error messages.
    """

    name: str
    boxes: np.ndarray
    visible: np.ndarray | None = None
    modality_boxes: Mapping[str, np.ndarray] = field(default_factory=dict)
    attributes: Mapping[str, bool] = field(default_factory=dict)
    image_size: tuple[int, int] | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        boxes = _as_boxes(self.boxes, self.name, "boxes", self.source)
        object.__setattr__(self, "boxes", boxes)
        n = len(boxes)
        if self.visible is None:
            with np.errstate(invalid="ignore"):
                visible = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        else:
            visible = np.array(self.visible, dtype=bool, copy=True).reshape(-1)
            if len(visible) != n:
                raise DataError(
                    f"sequence {self.name!r}: {len(visible)} visibility flags for {n} boxes"
                )
        visible.setflags(write=False)
        object.__setattr__(self, "visible", visible)
        modality = {}
        for key, value in dict(self.modality_boxes).items():
            mboxes = _as_boxes(value, self.name, f"{key} boxes", self.source)
            if len(mboxes) != n:
                raise DataError(
                    f"sequence {self.name!r}: {len(mboxes)} {key} boxes for {n} frames of boxes"
                )
            modality[str(key)] = mboxes
        object.__setattr__(self, "modality_boxes", modality)
        object.__setattr__(
            self, "attributes", {str(k): bool(v) for k, v in dict(self.attributes).items()}
        )
        if self.image_size is not None:
            width, height = (int(v) for v in self.image_size)
            object.__setattr__(self, "image_size", (width, height))

    @classmethod
    def from_sequence(cls, sequence: Any, image_size: tuple[int, int] | None = None) -> GroundTruth:
        """Build from a data-package ``Sequence`` (anything with ``name``, ``boxes``,
        ``visible``, ``modality_boxes``, ``attributes`` and optionally ``path``).

        Args:
            sequence: the loaded sequence (its frames are not read).
            image_size: ``(width, height)`` of its frames where the protocol clips to the image
                (DepthTrack); the caller knows it from one frame.
        """
        path = getattr(sequence, "path", None)
        return cls(
            name=sequence.name,
            boxes=sequence.boxes,
            visible=sequence.visible,
            modality_boxes=dict(getattr(sequence, "modality_boxes", {}) or {}),
            attributes=dict(getattr(sequence, "attributes", {}) or {}),
            image_size=image_size,
            source=str(path) if path is not None else None,
        )

    def __len__(self) -> int:
        """Number of frames ``N``."""
        return len(self.boxes)

    def box_sets(self) -> list[np.ndarray]:
        """The per-modality box sets, or ``[boxes]`` when there are none; each ``(N, 4)``."""
        return list(self.modality_boxes.values()) or [self.boxes]
