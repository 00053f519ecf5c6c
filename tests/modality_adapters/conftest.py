"""Fixtures for the built-in modality adapters: small sequences written into ``tmp_path``.

Helpers are fixtures (not imports) so that test modules never import ``conftest`` by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping
from typing import Sequence as SequenceType

import cv2
import numpy as np
import pytest

from mmtrack_kd.data.sequence import Sequence

DATASET = "testset"
# A name with the quotes and backticks LasHeR sequence names carry, so messages must cope.
SEQUENCE = "car`s 'night'"
WHERE = f"{DATASET}/{SEQUENCE}"


def _write_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image), f"could not write {path}"
    return path


@pytest.fixture
def write_image() -> Callable[[Path, np.ndarray], Path]:
    """Write an image with OpenCV (BGR order for colour arrays), failing loudly."""
    return _write_image


@pytest.fixture
def where() -> str:
    """The ``dataset/sequence`` that error messages must name."""
    return WHERE


MakeSequence = Callable[..., Sequence]


@pytest.fixture
def make_sequence() -> MakeSequence:
    """Build a :class:`Sequence` from frame paths per stream (and optional raw files)."""

    def make(
        frames: Mapping[str, SequenceType[Path]] | None = None,
        n: int | None = None,
        raw: Mapping[str, Path] | None = None,
        frame_times: np.ndarray | None = None,
    ) -> Sequence:
        frames = {stream: tuple(paths) for stream, paths in (frames or {}).items()}
        if n is None:
            n = len(next(iter(frames.values())))
        return Sequence(
            name=SEQUENCE,
            dataset=DATASET,
            frames=frames,
            boxes=np.tile(np.array([[1.0, 1.0, 2.0, 2.0]]), (n, 1)),
            visible=np.ones(n, dtype=bool),
            raw=dict(raw or {}),
            frame_times=frame_times,
        )

    return make
