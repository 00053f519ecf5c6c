"""The ``event`` modality plugin: event cameras (VisEvent's DAVIS346) in two representations.

- ``representation: frame``: the dataset's rendered event images (``sequence.frames["event"]``,
  VisEvent's ``event_imgs``: white background, ON events red-ish, OFF blue-ish), read as RGB in
  [0, 1] with ImageNet statistics, exactly as ViPT feeds them (its ``rgbrgb`` loader).
- ``representation: voxel``: a voxel grid of ``bins`` time bins built from the raw events of the
  frame's interval, read from the sequence's HDF5 event file (``sequence.raw["event"]``, see
  :mod:`mmtrack_kd.data.event_store`). ``channels == bins``; when that is not 3 the model gives
  the stream its own patch embedding.

Voxel grid (the standard definition, Zhu et al. 2019, as in E2VID): for the frame's events with
first and last timestamps ``t0`` and ``t_end``, ``t* = (B - 1)(t - t0) / (t_end - t0)`` (the
denominator is 1 when the span is 0); polarity 0 counts as -1; each event adds
``p * (1 - frac(t*))`` to bin ``floor(t*)`` and ``p * frac(t*)`` to the next bin when it exists.
A frame without events is all zeros. The grid is ``B x H x W``; :meth:`EventAdapter.read`
returns it as ``H x W x B``. (tonic's ``ToVoxelGrid`` scales by ``B`` instead of ``B - 1`` and so
drops the last event; see the tests for the exact correspondence.)

Normalisation of voxel grids: mean 0 (ON and OFF events roughly balance, and a zero voxel must
stay "no event") and standard deviation ``voxel_std`` for every bin, default 1, i.e. signed event
counts go to the model as they are. Set ``voxel_std`` from one's data with
:func:`modality_adapters.common.estimate_statistics` when counts are large.

The voxel grid has the event sensor's size (``width`` x ``height`` of the event file). In
VisEvent the event and colour frames both come from the same DAVIS346 (346 x 260), so they align.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from pydantic import Field

from mmtrack_kd import hookimpl
from mmtrack_kd.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AdapterOptions,
    DataError,
    EventStore,
    ModalityAdapter,
    Sequence,
    read_rgb,
    unit_float,
)
from modality_adapters.common import (
    PositiveTriple,
    Triple,
    frame_path,
    to_uint8_rgb,
)

# Colours of rendered events, as VisEvent's event images show them.
ON_COLOUR = np.array([255, 0, 0], dtype=np.float32)  # red
OFF_COLOUR = np.array([0, 0, 255], dtype=np.float32)  # blue
# Open event files kept per adapter (and per process): a training run reads a few sequences
# over and over, and opening HDF5 costs more than reading a frame's slice.
_OPEN_FILES = 8


class EventOptions(AdapterOptions):
    """Options of the ``event`` adapter (a recipe's ``modality`` section)."""

    representation: Literal["frame", "voxel"] = Field(
        "frame",
        description="'frame': the dataset's rendered event images (3 channels); 'voxel': a "
        "voxel grid of the frame's raw events from the sequence's HDF5 event file "
        "(`bins` channels).",
    )
    bins: int = Field(5, ge=1, le=64, description="Time bins B of the voxel grid (= channels).")
    voxel_std: float = Field(
        1.0,
        gt=0,
        description="Standard deviation dividing every voxel bin (the mean is 0); 1 passes "
        "signed event counts unchanged.",
    )
    frame_mean: Triple = Field(
        IMAGENET_MEAN,
        description="Per-channel mean of rendered event frames. Default: ImageNet's, as ViPT "
        "uses for them (not computed over event data).",
    )
    frame_std: PositiveTriple = Field(
        IMAGENET_STD, description="Per-channel std of rendered event frames; ImageNet's."
    )


class EventAdapter(ModalityAdapter):
    """Event-camera frames: rendered images (3 channels) or voxel grids (``bins`` channels)."""

    name = "event"
    Options = EventOptions
    description = "Event camera: rendered event frames or B-bin voxel grids of raw events (HDF5)."
    options: EventOptions

    def __init__(self, options: AdapterOptions | None = None) -> None:
        super().__init__(options)
        self._stores: OrderedDict[Path, EventStore] = OrderedDict()
        self._pid = os.getpid()
        if self.options.representation == "voxel":
            bins = self.options.bins
            self.channels, self.mean, self.std = bins, (0.0,) * bins, (self.options.voxel_std,) * bins
        else:
            self.mean, self.std = tuple(self.options.frame_mean), tuple(self.options.frame_std)

    def read(self, sequence: Sequence, index: int) -> np.ndarray:
        if self.options.representation == "frame":
            path = frame_path(sequence, self.name, index)
            return unit_float(read_rgb(path, where=sequence.where))
        return self._read_voxel(sequence, index)

    def _read_voxel(self, sequence: Sequence, index: int) -> np.ndarray:
        path = sequence.raw.get(self.name)
        if path is None:
            raise DataError(
                f"{sequence.where}: no raw event file for this sequence (the voxel "
                "representation needs one; convert the .aedat4 recordings with "
                "`mmtrack-kd-events --root ROOT --split SPLIT`, or use representation: frame)"
            )
        if not 0 <= index < sequence.n_frames:
            raise DataError(
                f"{sequence.where}: frame index {index} is out of range for "
                f"{sequence.n_frames} frames"
            )
        store = self._store(Path(path), sequence.where)
        times = sequence.frame_times
        if times is not None and not np.array_equal(times, store.frame_times):
            # The dataset plugin chose its own frame boundaries: search them in the file.
            if len(times) != sequence.n_frames + 1:
                raise DataError(
                    f"{sequence.where}: {len(times)} frame times for {sequence.n_frames} frames "
                    f"(expected N + 1) while reading event file {path}"
                )
            events = store.between(int(times[index]), int(times[index + 1]))
        else:
            if store.n_frames != sequence.n_frames:
                raise DataError(
                    f"{sequence.where}: event file {path} indexes {store.n_frames} frames but "
                    f"the sequence has {sequence.n_frames}"
                )
            events = store.frame(index)
        grid = voxel_grid(
            events.x, events.y, events.t, events.p, self.options.bins, store.height, store.width
        )
        return np.ascontiguousarray(grid.transpose(1, 2, 0))

    def _store(self, path: Path, where: str) -> EventStore:
        """An open :class:`EventStore` for ``path``, cached per process (HDF5 handles must not
        cross a fork into data-loader workers)."""
        if os.getpid() != self._pid:
            self._stores = OrderedDict()  # the parent's handles: drop them, never use them
            self._pid = os.getpid()
        store = self._stores.get(path)
        if store is not None:
            self._stores.move_to_end(path)
            return store
        store = EventStore(path, where=where)
        self._stores[path] = store
        while len(self._stores) > _OPEN_FILES:
            _, oldest = self._stores.popitem(last=False)
            oldest.close()
        return store

    def close(self) -> None:
        """Close the event files this adapter keeps open."""
        for store in self._stores.values():
            store.close()
        self._stores.clear()

    def __getstate__(self) -> dict[str, Any]:
        # Open HDF5 files do not pickle (spawned workers); each process opens its own.
        state = self.__dict__.copy()
        state["_stores"] = OrderedDict()
        return state

    def render(self, frame: np.ndarray) -> np.ndarray:
        if self.options.representation == "frame":
            return to_uint8_rgb(frame)
        return render_voxel(frame)


def voxel_grid(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    bins: int,
    height: int,
    width: int,
) -> np.ndarray:
    """The standard event voxel grid (module docstring), ``bins x height x width`` float32.

    Args:
        x, y: pixel coordinates ``(M,)``.
        t: timestamps ``(M,)`` in time order; the first and last set the span.
        p: polarities ``(M,)``; values > 0 are ON (+1), others OFF (-1).
        bins: number of time bins ``B >= 1``.
        height, width: grid size in pixels.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    size = bins * height * width
    count = len(t)
    if count == 0:
        return np.zeros((bins, height, width), dtype=np.float32)
    xs = np.asarray(x, dtype=np.int64)
    ys = np.asarray(y, dtype=np.int64)
    if xs.min() < 0 or xs.max() >= width or ys.min() < 0 or ys.max() >= height:
        raise ValueError(f"event coordinates fall outside the {width} x {height} grid")
    ts = np.asarray(t, dtype=np.int64)
    span = int(ts[-1] - ts[0])
    # Integer offsets first: absolute microsecond clocks (~1e15) would lose digits as floats.
    scaled = (bins - 1) * (ts - ts[0]).astype(np.float64) / (span if span > 0 else 1)
    lower = np.floor(scaled).astype(np.int64)
    frac = scaled - lower
    polarity = np.where(np.asarray(p) > 0, 1.0, -1.0)
    cell = ys * width + xs
    # bincount sums the weights of events that share a voxel (np.add.at does too, more slowly).
    grid = np.bincount(
        lower * height * width + cell, weights=polarity * (1.0 - frac), minlength=size
    )
    upper = lower + 1 < bins  # the last bin has no next bin; its events have frac == 0 there
    grid += np.bincount(
        (lower[upper] + 1) * height * width + cell[upper],
        weights=polarity[upper] * frac[upper],
        minlength=size,
    )
    return grid.reshape(bins, height, width).astype(np.float32)


def render_voxel(frame: np.ndarray) -> np.ndarray:
    """``H x W x B`` voxel grid -> ``H x W x 3`` uint8 RGB like VisEvent's event images.

    The bins are summed (a pixel's net polarity count); white where it is zero, red where ON
    events dominate, blue where OFF events do, fully coloured from one net event on.
    """
    net = np.asarray(frame, dtype=np.float32).sum(axis=2)
    alpha = np.clip(np.abs(net), 0.0, 1.0)[:, :, None]
    colour = np.where((net > 0)[:, :, None], ON_COLOUR, OFF_COLOUR)
    image = 255.0 * (1.0 - alpha) + colour * alpha
    return np.rint(image).astype(np.uint8)


@hookimpl
def mmtrack_kd_register_modalities(register: Callable[[type], None]) -> None:
    """Register :class:`EventAdapter`."""
    register(EventAdapter)
