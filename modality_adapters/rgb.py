"""The ``rgb`` modality plugin: the colour stream that every sequence carries."""

from __future__ import annotations

from typing import Callable

import numpy as np

from mmtrack_kd import hookimpl
from mmtrack_kd.data import ModalityAdapter, Sequence, read_rgb, unit_float
from modality_adapters.common import frame_path, to_uint8_rgb


class RGBAdapter(ModalityAdapter):
    """Colour frames (``sequence.frames["rgb"]``) as ``H x W x 3`` float32 RGB in [0, 1].

    Normalised with ImageNet statistics, which the pretrained ViT (OSTrack, MAE) expects.
    """

    name = "rgb"
    description = "Colour camera frames (JPEG/PNG/BMP), RGB in [0, 1], ImageNet statistics."

    def read(self, sequence: Sequence, index: int) -> np.ndarray:
        path = frame_path(sequence, self.name, index)
        return unit_float(read_rgb(path, where=sequence.where))

    def render(self, frame: np.ndarray) -> np.ndarray:
        return to_uint8_rgb(frame)


@hookimpl
def mmtrack_kd_register_modalities(register: Callable[[type], None]) -> None:
    """Register :class:`RGBAdapter`."""
    register(RGBAdapter)
