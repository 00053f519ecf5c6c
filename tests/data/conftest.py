"""Fixtures for the data tests: tiny multi-modal sequences written to ``tmp_path`` and minimal
modality adapters (the real ones live in ``modality_adapters`` and are tested there)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from mmtrack_kd.data.modality import ModalityAdapter
from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PngRgb(ModalityAdapter):
    """RGB frames stored as PNG, read to ``[0, 1]`` in RGB order."""

    name = "rgb"
    channels = 3
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def read(self, sequence: Sequence, index: int) -> np.ndarray:
        path = sequence.frames[self.name][index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"{sequence.where}: frame file {path} cannot be read")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0

    def render(self, frame: np.ndarray) -> np.ndarray:
        return (frame * 255).astype(np.uint8)


class PngThermal(ModalityAdapter):
    """Grey PNG frames replicated to three channels, with their own statistics."""

    name = "thermal"
    channels = 3
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)

    def read(self, sequence: Sequence, index: int) -> np.ndarray:
        path = sequence.frames[self.name][index]
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DataError(f"{sequence.where}: frame file {path} cannot be read")
        return np.repeat(image[:, :, None], 3, axis=2).astype(np.float32) / 255.0

    def render(self, frame: np.ndarray) -> np.ndarray:
        return (frame * 255).astype(np.uint8)


class NpyEvent(ModalityAdapter):
    """Five-bin "voxel grids" stored as ``.npy`` (more channels than OpenCV's four)."""

    name = "event"
    channels = 5
    mean = (0.0,) * 5
    std = (1.0,) * 5

    def read(self, sequence: Sequence, index: int) -> np.ndarray:
        path = sequence.frames[self.name][index]
        if not Path(path).is_file():
            raise DataError(f"{sequence.where}: frame file {path} does not exist")
        return np.load(path).astype(np.float32)

    def render(self, frame: np.ndarray) -> np.ndarray:
        return np.zeros(frame.shape[:2] + (3,), np.uint8)


ADAPTERS = {"rgb": PngRgb, "thermal": PngThermal, "event": NpyEvent}

RGB_COLOUR = (0.9, 0.6, 0.3)


def write_sequence(
    root: Path,
    name: str,
    boxes: np.ndarray,
    visible: np.ndarray | None = None,
    streams: tuple[str, ...] = ("rgb", "thermal"),
    size: tuple[int, int] = (96, 128),
    dataset: str = "toy",
) -> Sequence:
    """Write frames with the target drawn as a filled rectangle (value 1 in the auxiliary
    streams, :data:`RGB_COLOUR` in RGB) on a dark textured background, and return the
    :class:`Sequence`."""
    boxes = np.asarray(boxes, dtype=np.float64)
    n = len(boxes)
    visible = np.ones(n, dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    height, width = size
    folder = root / dataset / name
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    frames: dict[str, list[Path]] = {stream: [] for stream in streams}
    for k in range(n):
        background = rng.uniform(0.0, 0.2, size=(height, width))
        mask = np.zeros((height, width), dtype=bool)
        if np.isfinite(boxes[k]).all():
            x, y, w, h = boxes[k]
            mask[int(round(y)) : int(round(y + h)), int(round(x)) : int(round(x + w))] = True
        for stream in streams:
            (folder / stream).mkdir(parents=True, exist_ok=True)
            if stream == "rgb":
                image = np.repeat(background[:, :, None], 3, axis=2)
                image[mask] = RGB_COLOUR
                path = folder / stream / f"{k:05d}.png"
                bgr = cv2.cvtColor((image * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(path), bgr)
            elif stream == "thermal":
                image = background.copy()
                image[mask] = 1.0
                path = folder / stream / f"{k:05d}.png"
                cv2.imwrite(str(path), (image * 255).round().astype(np.uint8))
            else:
                image = np.repeat(background[:, :, None], 5, axis=2)
                image[mask] = 1.0
                path = folder / stream / f"{k:05d}.npy"
                np.save(path, image.astype(np.float32))
            frames[stream].append(path)
    return Sequence(
        name=name,
        dataset=dataset,
        frames={stream: tuple(paths) for stream, paths in frames.items()},
        boxes=boxes,
        visible=visible,
        path=folder,
    )


def moving_boxes(n: int, size: tuple[int, int] = (96, 128), seed: int = 0) -> np.ndarray:
    """``n`` boxes that drift smoothly inside an image of ``size`` (H, W)."""
    rng = np.random.default_rng(seed)
    height, width = size
    w, h = rng.uniform(14, 24), rng.uniform(12, 20)
    xs = np.linspace(10, width - w - 10, n) + rng.normal(0, 1, n)
    ys = np.linspace(height - h - 10, 10, n) + rng.normal(0, 1, n)
    return np.stack([xs, ys, np.full(n, w), np.full(n, h)], axis=1)


@pytest.fixture
def make_sequence(tmp_path: Path) -> Callable[..., Sequence]:
    """``make_sequence(name, boxes, visible=None, streams=..., size=..., dataset=...)``."""

    def make(name: str, boxes: np.ndarray, **kwargs) -> Sequence:
        return write_sequence(tmp_path, name, boxes, **kwargs)

    return make
