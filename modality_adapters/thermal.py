"""The ``thermal`` modality plugin: infrared frames of RGB-T datasets.

RGB-T benchmarks store infrared in two ways, and this adapter reads both:

- 8-bit images (LasHeR, RGBT234, GTOT, VTUAV): usually grey values saved as 3-channel JPEG or
  PNG, sometimes single-channel. Values are divided by 255; one channel is repeated to three.
- 16-bit (or floating-point TIFF) radiometric images in raw sensor units: mapped to [0, 1] either
  per frame (``sixteen_bit: minmax``) or by a fixed raw range (``sixteen_bit: fixed``).

The output always has 3 channels, so the auxiliary stream goes through the RGB patch embedding
exactly as ViPT-style trackers feed it.
"""

from __future__ import annotations

from typing import Callable, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from mmtrack_kd import hookimpl
from mmtrack_kd.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AdapterOptions,
    DataError,
    ModalityAdapter,
    Sequence,
    read_image,
    unit_float,
)
from modality_adapters.common import (
    PositiveTriple,
    Triple,
    frame_path,
    to_uint8_rgb,
)


class ThermalOptions(AdapterOptions):
    """Options of the ``thermal`` adapter (a recipe's ``modality`` section)."""

    sixteen_bit: Literal["minmax", "fixed"] = Field(
        "minmax",
        description="How images deeper than 8 bits (16-bit radiometric PNG/TIFF, float TIFF) "
        "map to [0, 1]: 'minmax' stretches each frame's own minimum..maximum; 'fixed' maps "
        "sixteen_bit_range linearly and clips outside it. 8-bit images are always divided by 255.",
    )
    sixteen_bit_range: tuple[float, float] = Field(
        (0.0, 65535.0),
        description="Raw sensor values [low, high] mapped to 0 and 1 when sixteen_bit is 'fixed' "
        "(e.g. the counts of the scene's coldest and hottest expected temperatures).",
    )
    mean: Triple = Field(
        IMAGENET_MEAN,
        description="Per-channel mean subtracted before the model. Default: ImageNet's, which is "
        "what ViPT/OSTrack-based RGB-T trackers apply to infrared (their pretrained weights "
        "expect it); it is not computed over any thermal dataset. Use "
        "modality_adapters.common.estimate_statistics for your own data.",
    )
    std: PositiveTriple = Field(
        IMAGENET_STD,
        description="Per-channel standard deviation dividing the frame. Default: ImageNet's "
        "(see mean).",
    )

    @model_validator(mode="after")
    def _range_is_increasing(self) -> "ThermalOptions":
        low, high = self.sixteen_bit_range
        if not high > low:
            raise ValueError(
                f"sixteen_bit_range must be [low, high] with high > low, got {[low, high]}"
            )
        return self


class ThermalAdapter(ModalityAdapter):
    """Infrared frames (``sequence.frames["thermal"]``) as ``H x W x 3`` float32 in [0, 1]."""

    name = "thermal"
    Options = ThermalOptions
    description = "Infrared images, 8-bit or 16-bit radiometric, as 3 channels in [0, 1]."
    options: ThermalOptions

    def __init__(self, options: ThermalOptions | None = None) -> None:
        super().__init__(options)
        self.mean, self.std = tuple(self.options.mean), tuple(self.options.std)

    def read(self, sequence: Sequence, index: int) -> np.ndarray:
        path = frame_path(sequence, self.name, index)
        # UNCHANGED keeps 16-bit radiometric values; IMREAD_COLOR would cut them to 8 bits.
        image = read_image(path, cv2.IMREAD_UNCHANGED, where=sequence.where)
        image = _three_channels(image, f"{sequence.where}: thermal frame {path}")
        if image.dtype == np.uint8:
            return unit_float(image)
        if image.dtype.kind not in "uif":
            raise DataError(
                f"{sequence.where}: thermal frame {path} has unsupported pixel type {image.dtype}"
            )
        return self._scale_raw(image.astype(np.float32))

    def _scale_raw(self, image: np.ndarray) -> np.ndarray:
        """Raw radiometric values -> [0, 1] by the ``sixteen_bit`` rule."""
        if self.options.sixteen_bit == "fixed":
            low, high = self.options.sixteen_bit_range
        else:
            low, high = float(image.min()), float(image.max())
            if high <= low:  # a flat frame carries no contrast: show it black, not NaN
                return np.zeros_like(image, dtype=np.float32)
        scaled = (image - np.float32(low)) / np.float32(high - low)
        return np.clip(scaled, 0.0, 1.0).astype(np.float32, copy=False)

    def render(self, frame: np.ndarray) -> np.ndarray:
        # Grey infrared was replicated to three equal channels, so this shows it as grey.
        return to_uint8_rgb(frame)


#: Pixel types cv2.cvtColor converts; others (rare radiometric int32/float64) take numpy's path.
_CVT_COLOR_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def _three_channels(image: np.ndarray, what: str) -> np.ndarray:
    """OpenCV's grey / BGR / BGRA array -> ``H x W x 3`` in RGB order, same dtype."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 3:
        if image.dtype in _CVT_COLOR_TYPES:  # one pass instead of a strided copy
            return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return image[:, :, ::-1].copy()  # BGR -> RGB
    if channels == 4:
        return image[:, :, 2::-1].copy()  # BGRA -> RGB, alpha carries no heat
    raise DataError(f"{what} has {channels} channels; expected 1, 3 or 4")


@hookimpl
def mmtrack_kd_register_modalities(register: Callable[[type], None]) -> None:
    """Register :class:`ThermalAdapter`."""
    register(ThermalAdapter)
