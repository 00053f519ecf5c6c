"""The modality-adapter interface that modality plugins implement."""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from mmtrack_kd.data.io import unit_float
from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import DataError

#: ImageNet channel statistics (RGB order, values in [0, 1]), which OSTrack and the trackers
#: built on it (ViPT, BAT, TBSI, MPLT) use for every 3-channel stream, auxiliary ones included.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Suffixes of image files (compared lower-case): the frames of image-like modalities.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)


class AdapterOptions(BaseModel):
    """Base of every adapter's options; a recipe's ``modality`` section is validated by the
    chosen adapter's subclass of it (a typo in an option is an error with its path)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModalityAdapter(abc.ABC):
    """Reads one sensor's frames and says how to normalise and show them.

    Subclasses set the class attributes and implement :meth:`read` and :meth:`render`. The
    engine reads RGB through the ``rgb`` adapter and the auxiliary stream through the adapter
    the recipe names, so a new sensor is one subclass registered by a plugin.

    :meth:`read` is the one frame reader: training reads every frame through it, and so does
    ``mmtrack-kd track`` for a frame folder (the files with :attr:`frame_suffixes`, e.g.
    ``.npy`` for a modality stored as arrays). Three hooks have defaults that fit images and
    can be overridden: :meth:`flip` (training's horizontal flip), :meth:`convert` (a video
    frame, for ``track`` on a video) and :meth:`normalise`.

    Class attributes:
        name: the stream name, also the key in :attr:`Sequence.frames` (``"thermal"``).
        Options: pydantic model of the adapter's recipe options.
        description: one line for ``mmtrack-kd plugins``.
        frame_suffixes: suffixes of this modality's frame files (lower-case, with the dot);
            a frame folder lists these (``track``, the ``folder`` dataset). Images by default.
        video_input: what :meth:`convert` receives from a video: ``"rgb"`` (``H x W x 3``
            uint8, RGB order) or ``"grey"`` (``H x W`` grey levels 0..255 in a uint16 array,
            for raw single-channel sensors such as depth).

    Attributes (data; an adapter whose values depend on its options sets them in ``__init__``):
        channels: number of channels ``C`` that :meth:`read` returns (3).
        mean: per-channel mean subtracted from :meth:`read`'s output before the model
            (ImageNet's).
        std: per-channel standard deviation dividing it (ImageNet's).
    """

    name: ClassVar[str]
    Options: ClassVar[type[AdapterOptions]] = AdapterOptions
    description: ClassVar[str] = ""
    frame_suffixes: ClassVar[frozenset[str]] = IMAGE_SUFFIXES
    video_input: ClassVar[Literal["rgb", "grey"]] = "rgb"

    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __init__(self, options: AdapterOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @abc.abstractmethod
    def read(self, sequence: Sequence, index: int) -> np.ndarray:
        """Frame ``index`` of ``sequence`` as ``H x W x C`` float32, aligned with the RGB frame.

        Image-like streams return values in [0, 1]; other representations (event voxel grids)
        return their own units. Failures raise ``DataError`` naming dataset, sequence and file.
        """

    @abc.abstractmethod
    def render(self, frame: np.ndarray) -> np.ndarray:
        """Turn a :meth:`read` output into ``H x W x 3`` uint8 RGB for a person to look at."""

    def normalise(self, frame: np.ndarray) -> np.ndarray:
        """``(frame - mean) / std`` per channel, float32."""
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return (frame.astype(np.float32, copy=False) - mean) / std

    def flip(self, frame: np.ndarray) -> np.ndarray:
        """Mirror an ``H x W x C`` frame left to right (training's horizontal flip, applied to
        every stream of a frame and its box together, before normalisation).

        The default mirrors the pixels, which is right for intensities. A modality whose
        values have a direction overrides it: an optical-flow field must also negate its x
        component, or the flipped sample shows motion the wrong way. May return a view.
        """
        return frame[:, ::-1]

    @property
    def reads_video(self) -> bool:
        """Whether :meth:`convert` can turn video frames into this modality's frames: 3-channel
        image modalities, and any adapter that overrides :meth:`convert`."""
        return self.channels == 3 or type(self).convert is not ModalityAdapter.convert

    def convert(self, raw: np.ndarray) -> np.ndarray:
        """One decoded video frame -> what :meth:`read` returns (``H x W x C`` float32), for
        ``mmtrack-kd track`` on a video.

        ``raw`` is what :attr:`video_input` says: ``H x W x 3`` uint8 RGB by default, and the
        default turns it into values in [0, 1], which is what :meth:`read` gives for an 8-bit
        image. Override it (and set ``video_input = "grey"`` for raw single-channel maps) where
        a frame means something else; the depth adapter colours grey depth levels as it colours
        16-bit depth. A video holds 8 bits per channel, so a modality that needs more (or is not
        image-like at all, such as event voxel grids) is read from a frame folder instead.

        Raises:
            DataError: the modality cannot come from a video (:attr:`reads_video` is false).
        """
        if self.channels != 3:
            raise DataError(f"the {self.name} modality has {self.channels} channels and cannot be "
                            "read from a video; give a folder of its frames")
        return unit_float(raw)
