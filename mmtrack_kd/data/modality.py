"""The modality-adapter interface that modality plugins implement."""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from mmtrack_kd.data.sequence import Sequence


class AdapterOptions(BaseModel):
    """Base of every adapter's options; a recipe's ``modality`` section is validated by the
    chosen adapter's subclass of it (a typo in an option is an error with its path)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModalityAdapter(abc.ABC):
    """Reads one sensor's frames and says how to normalise and show them.

    Subclasses set the class attributes and implement :meth:`read` and :meth:`render`. The
    engine reads RGB through the ``rgb`` adapter and the auxiliary stream through the adapter
    the recipe names, so a new sensor is one subclass registered by a plugin.

    Class attributes:
        name: the stream name, also the key in :attr:`Sequence.frames` (``"thermal"``).
        Options: pydantic model of the adapter's recipe options.
        description: one line for ``mmtrack-kd plugins``.
    """

    name: ClassVar[str]
    Options: ClassVar[type[AdapterOptions]] = AdapterOptions
    description: ClassVar[str] = ""

    def __init__(self, options: AdapterOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @property
    @abc.abstractmethod
    def channels(self) -> int:
        """Number of channels ``C`` that :meth:`read` returns."""

    @property
    @abc.abstractmethod
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean subtracted from :meth:`read`'s output before the model."""

    @property
    @abc.abstractmethod
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation dividing :meth:`read`'s output before the model."""

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
