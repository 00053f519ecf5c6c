"""The HDF5 file that holds one sequence's raw events, indexed by frame.

Layout (version 1; the ``synthetic`` dataset generator writes it too, so keep to it exactly):

========================  =========================  =============================================
name                      type, shape                meaning
========================  =========================  =============================================
``x``, ``y``              uint16 ``(M,)``            pixel column and row, ``< width``/``< height``
``t``                     int64 ``(M,)``             timestamp in microseconds, non-decreasing
``p``                     uint8 ``(M,)``             polarity: 1 = ON (brighter), 0 = OFF
``frame_times``           int64 ``(N + 1,)``         frame boundaries: events of frame k have
                                                     ``frame_times[k] <= t < frame_times[k + 1]``
``frame_offsets``         int64 ``(N + 1,)``         events of frame k are the rows
                                                     ``[frame_offsets[k], frame_offsets[k + 1])``
attribute ``width``       int                        sensor width in pixels
attribute ``height``      int                        sensor height in pixels
attribute ``format``      str                        ``"mmtrack-kd-events"``
attribute ``version``     int                        ``1``
========================  =========================  =============================================

The offsets make reading frame k one contiguous slice of each array: nothing else of the file
is read, however long the recording. Events outside ``[frame_times[0], frame_times[N])`` may be
stored; they belong to no frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from mmtrack_kd.errors import DataError

FORMAT = "mmtrack-kd-events"
VERSION = 1
EVENT_FIELDS = ("x", "y", "t", "p")
_DTYPES = {"x": np.uint16, "y": np.uint16, "t": np.int64, "p": np.uint8}
# Rows per HDF5 chunk: big enough to read a frame's slice in few chunks, small enough that a
# short frame does not pull in megabytes.
_CHUNK_ROWS = 1 << 16


class Events(NamedTuple):
    """A run of events as four aligned 1-D arrays (``x``, ``y`` uint16; ``t`` int64 in
    microseconds; ``p`` uint8, 1 = ON)."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    p: np.ndarray

    def __len__(self) -> int:  # the number of events, not the number of fields
        return len(self.t)

    @classmethod
    def empty(cls) -> "Events":
        """No events."""
        return cls(*(np.zeros(0, dtype=_DTYPES[name]) for name in EVENT_FIELDS))


def write_event_h5(
    path: str | os.PathLike[str],
    x: Any,
    y: Any,
    t: Any,
    p: Any,
    frame_times: Any,
    width: int,
    height: int,
    *,
    compression: str | None = None,
) -> Path:
    """Write events and frame boundaries to ``path`` in the layout of this module.

    The file is written under a temporary name and renamed, so an interrupted write never
    leaves a truncated file where a reader expects a good one.

    Args:
        path: the ``.h5`` file to create (replaced if it exists).
        x, y: pixel coordinates, ``(M,)`` integers within the sensor.
        t: timestamps in microseconds, ``(M,)`` integers, non-decreasing.
        p: polarities, ``(M,)``: 1 / True = ON; 0, -1 or False = OFF.
        frame_times: ``(N + 1,)`` non-decreasing frame boundaries in microseconds.
        width, height: sensor size in pixels.
        compression: HDF5 filter for the event arrays (``"lzf"``, ``"gzip"``) or None.

    Returns:
        The path written.

    Raises:
        ValueError: arrays of different lengths, unsorted times, coordinates off the sensor.
    """
    path = Path(path)
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"sensor size must be positive, got width={width}, height={height}")
    columns = {name: np.asarray(value) for name, value in zip(EVENT_FIELDS, (x, y, t, p))}
    for name, column in columns.items():
        if column.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {column.shape}")
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"x, y, t and p must have the same length, got {lengths}")
    x_arr = _as_integers(columns["x"], "x")
    y_arr = _as_integers(columns["y"], "y")
    t_arr = _as_integers(columns["t"], "t")
    if len(t_arr) and (x_arr.min() < 0 or x_arr.max() >= width):
        raise ValueError(f"x must lie in [0, {width}), got [{x_arr.min()}, {x_arr.max()}]")
    if len(t_arr) and (y_arr.min() < 0 or y_arr.max() >= height):
        raise ValueError(f"y must lie in [0, {height}), got [{y_arr.min()}, {y_arr.max()}]")
    if np.any(np.diff(t_arr) < 0):
        raise ValueError("event timestamps t must be non-decreasing (sort the events by time)")
    p_arr = (columns["p"].astype(np.float64) > 0).astype(np.uint8)  # -1/0/False -> 0 (OFF)
    times = _as_integers(np.asarray(frame_times), "frame_times")
    if times.ndim != 1 or len(times) < 2:
        raise ValueError(f"frame_times must be (N + 1,) with N >= 1, got shape {times.shape}")
    if np.any(np.diff(times) < 0):
        raise ValueError("frame_times must be non-decreasing")
    # Frame k's events satisfy frame_times[k] <= t < frame_times[k + 1]: a left search of both
    # bounds in the sorted times gives exactly that half-open range of rows.
    offsets = np.searchsorted(t_arr, times, side="left").astype(np.int64)

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    arrays = {"x": x_arr, "y": y_arr, "t": t_arr, "p": p_arr}
    try:
        with h5py.File(temporary, "w") as file:
            for name in EVENT_FIELDS:
                data = arrays[name].astype(_DTYPES[name], copy=False)
                chunked = len(data) > 0
                file.create_dataset(
                    name,
                    data=data,
                    chunks=(min(len(data), _CHUNK_ROWS),) if chunked else None,
                    compression=compression if chunked else None,
                )
            file.create_dataset("frame_times", data=times.astype(np.int64))
            file.create_dataset("frame_offsets", data=offsets)
            file.attrs["width"] = int(width)
            file.attrs["height"] = int(height)
            file.attrs["format"] = FORMAT
            file.attrs["version"] = VERSION
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def _as_integers(values: np.ndarray, name: str) -> np.ndarray:
    """Integer view of ``values`` as int64; floats must hold whole numbers."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        rounded = np.rint(values)
        if not np.array_equal(rounded, values):
            raise ValueError(f"{name} must hold whole numbers (microseconds / pixels)")
        return rounded.astype(np.int64)
    raise ValueError(f"{name} must be numeric, got dtype {values.dtype}")


class EventStore:
    """Read-only access to one event file, frame by frame.

    Opening reads only the attributes and the two small index arrays; :meth:`frame` reads one
    contiguous slice per event array. Use it as a context manager or call :meth:`close`.

    Args:
        path: the HDF5 file.
        where: ``dataset/sequence`` prefix for error messages.

    Raises:
        DataError: the file is missing, not HDF5, or not in this module's layout.
    """

    def __init__(self, path: str | os.PathLike[str], where: str = "") -> None:
        self.path = Path(path)
        self._prefix = f"{where}: " if where else ""
        if not self.path.is_file():
            raise DataError(f"{self._prefix}event file {self.path} does not exist")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise DataError(
                f"{self._prefix}event file {self.path} cannot be opened as HDF5: {error}"
            ) from None
        try:
            self._check_layout()
        except BaseException:
            self._file.close()
            raise

    def _fail(self, problem: str) -> DataError:
        return DataError(f"{self._prefix}event file {self.path}: {problem}")

    def _check_layout(self) -> None:
        attrs = self._file.attrs
        file_format = attrs.get("format")
        if isinstance(file_format, bytes):
            file_format = file_format.decode()
        if file_format != FORMAT:
            raise self._fail(
                f"format attribute is {file_format!r}, expected {FORMAT!r} (convert .aedat4 "
                "recordings with modality_adapters.aedat4.convert_aedat4)"
            )
        version = attrs.get("version")
        if version is None or int(version) != VERSION:
            raise self._fail(f"layout version {version!r} is not supported (expected {VERSION})")
        missing = [
            name
            for name in (*EVENT_FIELDS, "frame_times", "frame_offsets")
            if not isinstance(self._file.get(name), h5py.Dataset)
        ]
        if missing:
            raise self._fail(f"missing dataset(s) {', '.join(missing)}")
        for key in ("width", "height"):
            if key not in attrs:
                raise self._fail(f"missing attribute {key!r}")
        self.width = int(attrs["width"])
        self.height = int(attrs["height"])
        # Keep the dataset handles: reads go through them and slice only what is asked for.
        self._x, self._y, self._t, self._p = (self._file[name] for name in EVENT_FIELDS)
        lengths = {
            name: ds.shape for name, ds in zip(EVENT_FIELDS, (self._x, self._y, self._t, self._p))
        }
        if len(set(lengths.values())) != 1 or len(self._t.shape) != 1:
            raise self._fail(f"event arrays must be 1-D of one length, got shapes {lengths}")
        self.n_events = int(self._t.shape[0])
        self.frame_times = np.asarray(self._file["frame_times"][()], dtype=np.int64)
        self.frame_offsets = np.asarray(self._file["frame_offsets"][()], dtype=np.int64)
        if self.frame_times.ndim != 1 or len(self.frame_times) < 2:
            raise self._fail(f"frame_times must be (N + 1,), got shape {self.frame_times.shape}")
        if self.frame_offsets.shape != self.frame_times.shape:
            raise self._fail(
                f"frame_offsets {self.frame_offsets.shape} and frame_times "
                f"{self.frame_times.shape} differ in shape"
            )
        if (
            np.any(np.diff(self.frame_offsets) < 0)
            or self.frame_offsets[0] < 0
            or self.frame_offsets[-1] > self.n_events
        ):
            raise self._fail(f"frame_offsets must be non-decreasing within [0, {self.n_events}]")

    @property
    def n_frames(self) -> int:
        """Number of frames ``N``."""
        return len(self.frame_times) - 1

    def frame(self, index: int) -> Events:
        """The events of frame ``index``: one contiguous slice of each array."""
        if not 0 <= index < self.n_frames:
            raise self._fail(f"frame index {index} is out of range for {self.n_frames} frames")
        start, stop = int(self.frame_offsets[index]), int(self.frame_offsets[index + 1])
        return self._rows(start, stop)

    def between(self, t_start: int, t_end: int) -> Events:
        """Events with ``t_start <= t < t_end``, found by binary search in ``t``: about
        ``log2(M)`` single-element reads, then one slice (for frame times that differ from
        the file's own)."""
        start, stop = self._search(t_start), self._search(t_end)
        return self._rows(start, max(start, stop))

    def _search(self, value: int) -> int:
        """First row whose ``t`` is ``>= value`` (``bisect_left`` over the dataset)."""
        low, high = 0, self.n_events
        while low < high:
            middle = (low + high) // 2
            if int(self._t[middle]) < value:
                low = middle + 1
            else:
                high = middle
        return low

    def _rows(self, start: int, stop: int) -> Events:
        if stop <= start:
            return Events.empty()
        try:
            return Events(
                np.asarray(self._x[start:stop], dtype=np.uint16),
                np.asarray(self._y[start:stop], dtype=np.uint16),
                np.asarray(self._t[start:stop], dtype=np.int64),
                np.asarray(self._p[start:stop], dtype=np.uint8),
            )
        except OSError as error:  # a damaged chunk
            raise self._fail(f"cannot read events {start}..{stop}: {error}") from None

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
