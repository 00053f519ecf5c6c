"""The ``depth`` modality plugin: uint16 depth maps of RGB-D datasets (DepthTrack, CDTB).

ViPT's rule (``lib/train/dataset/depth_utils.py``, ``get_x_frame(..., depth_clip=True)``), which
the RGB-D trackers built on OSTrack share and which ``clip: median3`` with ``invalid: vipt``
reproduces exactly:

1. read the PNG with ``cv2.IMREAD_UNCHANGED`` (uint16, millimetres in DepthTrack);
2. ``max_depth = min(3 * median, 10000)``, where the median is ``np.median`` over **all**
   pixels, zeros (no measurement) included; pixels above it are set to it (the float bound is
   truncated to an integer by the uint16 assignment);
3. ``cv2.normalize(..., 0, 255, NORM_MINMAX)`` over the whole frame, so the minimum (0 wherever
   a pixel is invalid) maps to 0 and the clipped maximum to 255; cast to uint8;
4. ``cv2.applyColorMap(..., COLORMAP_JET)``.

Invalid (zero) depth: under ``invalid: vipt`` zeros are ordinary values, as in ViPT: they pull
the median down and, being the smallest value, become level 0 (dark blue in JET, black under
``repeat``). Under ``invalid: mask`` the median and the min-max range are taken over valid
(non-zero) pixels only, and invalid pixels are written as level 0 afterwards, so missing
measurements no longer stretch the range of the real ones.

Channel order: OpenCV's colour map is BGR. This adapter returns RGB by default
(``jet_order: rgb``); ViPT merges the BGR map with its RGB frame without swapping, so a model
trained with ViPT's loader saw the JET channels in B, G, R order: ``jet_order: bgr`` feeds that.
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


class DepthOptions(AdapterOptions):
    """Options of the ``depth`` adapter (a recipe's ``modality`` section)."""

    clip: Literal["median3", "fixed"] = Field(
        "median3",
        description="'median3': ViPT's rule, clip at min(3 * median, median3_cap) and stretch "
        "the frame's min..max to [0, 1]; 'fixed': clip to fixed_range and map it linearly.",
    )
    median3_cap: float = Field(
        10000.0,
        gt=0,
        description="Upper bound of the median3 clip in raw units (ViPT: 10000, 10 m in mm).",
    )
    fixed_range: tuple[float, float] = Field(
        (0.0, 10000.0),
        description="Raw depth [near, far] mapped to 0 and 1 when clip is 'fixed'.",
    )
    invalid: Literal["vipt", "mask"] = Field(
        "vipt",
        description="Zero (missing) depth: 'vipt' treats it as a value like ViPT (it enters the "
        "median and becomes the minimum, level 0); 'mask' leaves it out of the median and the "
        "range and writes it as level 0.",
    )
    colormap: Literal["jet", "repeat"] = Field(
        "jet",
        description="'jet': ViPT's JET colour map of the 8-bit levels; 'repeat': the normalised "
        "depth (full float precision) repeated to 3 channels.",
    )
    jet_order: Literal["rgb", "bgr"] = Field(
        "rgb",
        description="Channel order of the JET map: 'rgb' (the colours as shown) or 'bgr' "
        "(OpenCV's order, which ViPT-trained checkpoints saw).",
    )
    mean: Triple = Field(
        IMAGENET_MEAN,
        description="Per-channel mean. Default: ImageNet's, which ViPT applies to its depth "
        "stream (not computed over depth data).",
    )
    std: PositiveTriple = Field(IMAGENET_STD, description="Per-channel std; ImageNet's (see mean).")

    @model_validator(mode="after")
    def _range_is_increasing(self) -> "DepthOptions":
        near, far = self.fixed_range
        if not far > near:
            raise ValueError(f"fixed_range must be [near, far] with far > near, got {[near, far]}")
        return self


class DepthAdapter(ModalityAdapter):
    """Depth maps (``sequence.frames["depth"]``) as ``H x W x 3`` float32 in [0, 1]."""

    name = "depth"
    Options = DepthOptions
    description = "uint16 depth maps, clipped (ViPT's 3x median or fixed) and JET-coloured."
    # A depth video holds raw grey depth levels, which convert() colours as it colours a map.
    video_input = "grey"
    options: DepthOptions

    def __init__(self, options: DepthOptions | None = None) -> None:
        super().__init__(options)
        self.mean, self.std = tuple(self.options.mean), tuple(self.options.std)

    def read(self, sequence: Sequence, index: int) -> np.ndarray:
        path = frame_path(sequence, self.name, index)
        depth = read_image(path, cv2.IMREAD_UNCHANGED, where=sequence.where)
        if depth.ndim == 3:
            # Some tools save a grey depth map as colour; its channels are equal.
            depth = depth[:, :, 0]
        if depth.dtype.kind not in "ui":
            raise DataError(
                f"{sequence.where}: depth frame {path} has pixel type {depth.dtype}; expected "
                "an integer (uint16) depth map"
            )
        return self.convert(depth)

    def convert(self, depth: np.ndarray) -> np.ndarray:
        """One raw ``H x W`` integer depth map (a 16-bit frame, or a video frame's grey levels)
        -> ``H x W x 3`` float32 in [0, 1]."""
        if self.options.colormap == "jet":
            levels = self.levels(depth)
            coloured = cv2.applyColorMap(levels, cv2.COLORMAP_JET)  # BGR
            if self.options.jet_order == "rgb":
                coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
            return unit_float(coloured)
        unit = self.unit(depth)
        return np.repeat(unit[:, :, None], 3, axis=2)

    def levels(self, depth: np.ndarray) -> np.ndarray:
        """``H x W`` uint8 levels 0..255 of the clipped, normalised depth (ViPT's step 3)."""
        if self.options.clip == "median3" and self.options.invalid == "vipt":
            clipped = self._clip_median3(depth, depth)
            # OpenCV's own min-max rescale, so rounding matches ViPT's bit for bit.
            stretched = cv2.normalize(clipped, None, alpha=0, beta=255, norm_type=cv2.NORM_MINMAX)
            return np.asarray(stretched, dtype=np.uint8)
        return np.rint(self.unit(depth) * 255.0).astype(np.uint8)

    def unit(self, depth: np.ndarray) -> np.ndarray:
        """``H x W`` float32 in [0, 1]: clipped depth mapped linearly (0 = near)."""
        valid = depth > 0
        mask = self.options.invalid == "mask"
        if self.options.clip == "fixed":
            low, high = self.options.fixed_range
        else:
            if mask and not valid.any():
                return np.zeros(depth.shape, dtype=np.float32)
            reference = depth[valid] if mask else depth
            clipped = self._clip_median3(depth, reference)
            values = clipped[valid] if mask else clipped
            low, high = float(values.min()), float(values.max())
            depth = clipped
        if high > low:
            unit = (depth.astype(np.float32) - np.float32(low)) / np.float32(high - low)
        else:  # a flat frame: everything at the near end, as cv2.normalize does
            unit = np.zeros(depth.shape, dtype=np.float32)
        unit = np.clip(unit, 0.0, 1.0)
        if mask:
            unit[~valid] = 0.0
        return unit.astype(np.float32, copy=False)

    def _clip_median3(self, depth: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """ViPT's clip: values above min(3 * median(reference), cap) are set to that bound."""
        bound = min(float(np.median(reference)) * 3.0, self.options.median3_cap)
        clipped = depth.copy()
        # Same assignment as ViPT: the float bound is truncated to the array's integer type.
        clipped[clipped > bound] = bound
        return clipped

    def render(self, frame: np.ndarray) -> np.ndarray:
        if self.options.colormap == "jet" and self.options.jet_order == "bgr":
            frame = frame[:, :, ::-1]  # show the colours as they are meant to look
        return to_uint8_rgb(frame)


@hookimpl
def mmtrack_kd_register_modalities(register: Callable[[type], None]) -> None:
    """Register :class:`DepthAdapter`."""
    register(DepthAdapter)
