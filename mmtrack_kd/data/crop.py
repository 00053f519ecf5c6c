"""Square crops around a target box, shared by training and tracking.

The geometry is OSTrack's ``sample_target``: a square of side ``ceil(sqrt(w * h) * factor)``
image pixels, centred on the box centre (its top-left corner rounded to a whole pixel), zero
outside the image, resampled bilinearly to ``size x size``. The training pipeline and the tracker
both go through :class:`CropWindow`, so a box predicted in a crop maps back to the image by the
exact inverse of the mapping that made the crop.

Coordinates are continuous pixel coordinates: pixel ``(row i, column j)`` covers
``[j, j + 1) x [i, i + 1)``; boxes are ``x, y, w, h`` in that frame. A crop pixel ``u`` samples the
image at ``x = x0 + (u + 0.5) / scale`` (its centre), which is what ``cv2.resize`` of the padded
crop does, so crops equal OSTrack's pixel for pixel inside the image; the resampling itself is one
``cv2.warpAffine`` over the output only, with no padded copy of the (possibly much larger) crop.

Differences from OSTrack, all at most one pixel: OSTrack maps boxes into the crop as if the crop
were centred exactly on the box (``(size - 1) / 2 + (c - c_box) * scale``), ignoring the rounding
of the crop corner and using the pixel-index centre; here boxes follow the pixels exactly.
OSTrack also pads one column (row) too many when the crop crosses the right (bottom) image edge,
replacing the image's last column with zeros; here the image is used up to its edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import cv2
import numpy as np

# OpenCV resamples these dtypes natively; everything else goes through float32.
_CV_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


@dataclass(frozen=True)
class CropSettings:
    """The crop geometry of a model, shared by training and tracking.

    Attributes:
        template_size, search_size: crop sides in pixels after resampling (128, 256).
        template_factor, search_factor: crop side / ``sqrt(w * h)`` of the box (2, 4).
        patch_size: backbone patch; the score map is ``search_size // patch_size`` a side.
    """

    template_size: int = 128
    search_size: int = 256
    template_factor: float = 2.0
    search_factor: float = 4.0
    patch_size: int = 16

    @classmethod
    def from_recipe(cls, model: Any) -> "CropSettings":
        """From a recipe's ``model`` section (or anything with its attribute names)."""
        return cls(
            template_size=int(model.template_size),
            search_size=int(model.search_size),
            template_factor=float(model.template_factor),
            search_factor=float(model.search_factor),
            patch_size=int(model.backbone.patch_size),
        )

    @classmethod
    def for_model(cls, model: Any) -> "CropSettings":
        """Sizes and patch from ``model.config``, OSTrack's factors 2 and 4 (a model whose
        checkpoint carries no ``crop`` entry)."""
        return cls(
            int(model.config["template_size"]),
            int(model.config["search_size"]),
            patch_size=int(model.config.get("patch_size", 16)),
        )

    @property
    def feat_size(self) -> int:
        """Side of the score map, ``search_size // patch_size``."""
        return self.search_size // self.patch_size


@dataclass(frozen=True)
class CropWindow:
    """A square region of an image and the output size it is resampled to.

    Attributes:
        x0, y0: top-left corner of the square in image pixels (whole numbers; may be negative or
            beyond the image, where the crop is zero).
        side: side of the square in image pixels (a whole number >= 1).
        size: side of the output crop in pixels.
    """

    x0: float
    y0: float
    side: float
    size: int

    @property
    def scale(self) -> float:
        """Output pixels per image pixel (OSTrack's ``resize_factor``)."""
        return self.size / self.side

    @property
    def box(self) -> np.ndarray:
        """The square in image pixels as ``x, y, w, h``, ``(4,)`` float64."""
        return np.array([self.x0, self.y0, self.side, self.side], dtype=np.float64)

    def to_crop(self, boxes: np.ndarray, normalised: bool = False) -> np.ndarray:
        """Image-pixel boxes ``(..., 4)`` ``x, y, w, h`` -> crop pixels (or ``[0, 1]`` units of the
        crop side when ``normalised``)."""
        boxes = np.asarray(boxes, dtype=np.float64)
        out = np.empty_like(boxes)
        out[..., 0] = (boxes[..., 0] - self.x0) * self.scale
        out[..., 1] = (boxes[..., 1] - self.y0) * self.scale
        out[..., 2:4] = boxes[..., 2:4] * self.scale
        return out / self.size if normalised else out

    def to_image(self, boxes: np.ndarray, normalised: bool = False) -> np.ndarray:
        """Crop boxes ``(..., 4)`` ``x, y, w, h`` in crop pixels (or ``[0, 1]`` units when
        ``normalised``) -> image pixels; the exact inverse of :meth:`to_crop`."""
        boxes = np.asarray(boxes, dtype=np.float64)
        if normalised:
            boxes = boxes * self.size
        out = np.empty_like(boxes)
        out[..., 0] = boxes[..., 0] / self.scale + self.x0
        out[..., 1] = boxes[..., 1] / self.scale + self.y0
        out[..., 2:4] = boxes[..., 2:4] / self.scale
        return out

    def inverse_affine(self) -> np.ndarray:
        """``2 x 3`` matrix taking output pixel indices to image pixel indices (pixel centres at
        integers, OpenCV's convention), for ``cv2.warpAffine(..., WARP_INVERSE_MAP)``."""
        step = 1.0 / self.scale
        return np.array(
            [
                [step, 0.0, self.x0 + 0.5 * step - 0.5],
                [0.0, step, self.y0 + 0.5 * step - 0.5],
            ],
            dtype=np.float64,
        )

    def overlaps(self, height: int, width: int) -> bool:
        """True when the square covers at least part of an ``height x width`` image."""
        return (
            self.x0 < width
            and self.y0 < height
            and self.x0 + self.side > 0
            and self.y0 + self.side > 0
        )


def crop_window(box: Iterable[float], factor: float, size: int) -> CropWindow:
    """The square OSTrack crops around ``box`` (``x, y, w, h`` image pixels).

    Side ``ceil(sqrt(w * h) * factor)``, top-left corner ``round(centre - side / 2)`` (Python's
    rounding, as OSTrack). Raises ``ValueError`` for a box whose area gives a side below one pixel
    or that is not finite.
    """
    x, y, w, h = (float(value) for value in box)
    area = w * h
    if not all(math.isfinite(value) for value in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ValueError(f"cannot crop around box {[x, y, w, h]}: it must be finite with w, h > 0")
    side = math.ceil(math.sqrt(area) * factor)
    if side < 1:
        raise ValueError(f"cannot crop around box {[x, y, w, h]}: crop side {side} < 1 pixel")
    x0 = round(x + 0.5 * w - 0.5 * side)
    y0 = round(y + 0.5 * h - 0.5 * side)
    return CropWindow(float(x0), float(y0), float(side), int(size))


def crop(image: np.ndarray, window: CropWindow) -> np.ndarray:
    """Resample ``window`` of an ``H x W x C`` (or ``H x W``) image to ``size x size x C``.

    Zero outside the image, bilinear inside; any channel count (event voxel grids with more than
    four channels go through OpenCV in groups of at most four when OpenCV refuses them whole).
    The output dtype is the input's for OpenCV-native dtypes, float32 otherwise.
    """
    if image.dtype.type not in _CV_DTYPES:
        image = image.astype(np.float32)
    squeeze = image.ndim == 2
    if squeeze:
        image = image[:, :, None]
    matrix = window.inverse_affine()
    channels = image.shape[2]
    if channels <= 4:
        out = _warp(image, matrix, window.size)
    else:
        try:
            out = _warp(image, matrix, window.size)
        except cv2.error:
            out = np.concatenate(
                [_warp(image[:, :, k : k + 4], matrix, window.size) for k in range(0, channels, 4)],
                axis=2,
            )
    return out[:, :, 0] if squeeze else out


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """One ``cv2.warpAffine`` with zero border; keeps the channel axis for one channel."""
    out = cv2.warpAffine(
        np.ascontiguousarray(image),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out.reshape(size, size, image.shape[2])


def padding_mask(window: CropWindow, height: int, width: int) -> np.ndarray:
    """``(size, size)`` bool, True where a crop pixel's centre falls outside an ``height x width``
    image (OSTrack's ``att_mask``)."""
    centres = (np.arange(window.size, dtype=np.float64) + 0.5) / window.scale
    outside_x = (window.x0 + centres < 0) | (window.x0 + centres >= width)
    outside_y = (window.y0 + centres < 0) | (window.y0 + centres >= height)
    return outside_y[:, None] | outside_x[None, :]


@dataclass(frozen=True)
class Crop:
    """What :func:`sample_target` returns.

    Attributes:
        image: ``size x size x C`` crop.
        window: the crop geometry (for :meth:`CropWindow.to_image` / :func:`map_box_back`).
        box: the target box in crop pixels ``x, y, w, h``, ``(4,)`` float64.
        mask: ``(size, size)`` bool padding mask (True outside the image).
    """

    image: np.ndarray
    window: CropWindow
    box: np.ndarray
    mask: np.ndarray

    @property
    def resize_factor(self) -> float:
        """Output pixels per image pixel (OSTrack's name)."""
        return self.window.scale


def sample_target(
    image: np.ndarray,
    box: Iterable[float],
    factor: float,
    size: int,
    target: Iterable[float] | None = None,
) -> Crop:
    """OSTrack's ``sample_target``: crop ``factor``-times the box's side around ``box``.

    Args:
        image: ``H x W x C`` frame.
        box: the (possibly jittered) box the crop is centred on, ``x, y, w, h`` image pixels.
        factor: crop side / ``sqrt(w * h)``.
        size: output side in pixels.
        target: the box to express in crop coordinates (``box`` when None).
    """
    window = crop_window(box, factor, size)
    target_box = np.asarray(list(box if target is None else target), dtype=np.float64)
    return Crop(
        image=crop(image, window),
        window=window,
        box=window.to_crop(target_box),
        mask=padding_mask(window, image.shape[0], image.shape[1]),
    )


def crop_frames(frames: Iterable[np.ndarray], window: CropWindow) -> list[np.ndarray]:
    """The same crop of every modality of one frame (channel counts may differ)."""
    return [crop(frame, window) for frame in frames]


def map_box_back(box: np.ndarray, window: CropWindow, normalised: bool = False) -> np.ndarray:
    """A box predicted in a crop (crop pixels, or ``[0, 1]`` of the crop side when
    ``normalised``) -> image pixels ``x, y, w, h``; works on ``(..., 4)`` arrays."""
    return window.to_image(box, normalised=normalised)


def clip_box(box: np.ndarray, height: int, width: int, margin: float = 0.0) -> np.ndarray:
    """OSTrack's ``clip_box``: keep ``x, y, w, h`` inside an ``height x width`` image, at least
    ``margin`` pixels wide and high (OSTrack's tracker passes ``margin=10``).

    Raises ``ValueError`` for a non-finite box: min/max would turn NaN into a made-up
    ``0, 0, margin, margin`` box that looks like a result."""
    x, y, w, h = (float(value) for value in box)
    if not all(math.isfinite(value) for value in (x, y, w, h)):
        raise ValueError(f"clip_box: non-finite box {[x, y, w, h]}")
    x1 = min(max(0.0, x), width - margin)
    x2 = min(max(margin, x + w), float(width))
    y1 = min(max(0.0, y), height - margin)
    y2 = min(max(margin, y + h), float(height))
    return np.array([x1, y1, max(margin, x2 - x1), max(margin, y2 - y1)], dtype=np.float64)
