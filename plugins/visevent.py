"""VisEvent: RGB and event-camera tracking (500 train / 320 test sequences)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np
from pydantic import Field

from mmtrack_kd import hookimpl
from mmtrack_kd.data import DataError
from plugins.common import (
    Annotations,
    BenchmarkDataset,
    BenchmarkOptions,
    first_file,
    parse_boxes,
    parse_line_flags,
    read_attribute_list,
    require_file,
    valid_boxes,
)

#: The converted raw-event file a sequence folder may hold (written by ``mmtrack-kd``'s event
#: converter from the ``.aedat4`` recording).
EVENTS_FILE = "events.h5"


class VisEventOptions(BenchmarkOptions):
    """Options of the VisEvent plugin."""

    read_event_times: bool = Field(
        True,
        description="When a sequence folder holds events.h5, read its frame_times into "
        "Sequence.frame_times on load_sequence (never while listing).",
    )


class VisEvent(BenchmarkDataset):
    """VisEvent sequences: ``vis_imgs/frame%04d.bmp`` and ``event_imgs/frame%04d.bmp`` (some
    sequences do not start at ``frame0000``: both folders are listed, sorted and paired),
    ``groundtruth.txt`` with comma-separated float ``x,y,w,h`` (``0,0,0,0`` when absent) and
    ``absent_label.txt`` with one flag a frame, **1 = present** (the official toolkit's own
    ``absent/`` files use the opposite convention and are not read).

    ``visible`` is the present flag and a positive box size (the box alone when
    ``absent_label.txt`` is missing). When the folder holds ``events.h5`` (our converted raw
    events), ``raw["event"]`` points at it and ``frame_times`` (``N + 1`` microsecond frame
    boundaries, its ``frame_times`` dataset) is read on load. VisEvent publishes no
    per-sequence attribute files; mmtrack-kd's ``attributes.txt`` (attribute names one a line,
    as the synthetic generator writes) is read when present.
    """

    name: ClassVar[str] = "visevent"
    Options = VisEventOptions
    modalities: tuple[str, ...] = ("rgb", "event")
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    protocol: str = "visevent"
    description: ClassVar[str] = "VisEvent RGB-E benchmark (500 train / 320 test sequences)"
    layout: ClassVar[str] = """\
VisEvent (https://github.com/wangxiao5791509/VisEvent_SOT_Benchmark): unpack it so that the
root holds
  train_subset/<sequence>/ and trainlist.txt   (or train/)
  test_subset/<sequence>/  and testlist.txt    (or test/)
each <sequence>/ with vis_imgs/*.bmp, event_imgs/*.bmp, groundtruth.txt and
absent_label.txt; optionally events.h5 from `mmtrack-kd`'s event converter.
The test list ships with mmtrack-kd."""

    split_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        split: (f"{split}_subset", f"{split}/{split}_subset", split, ".")
        for split in ("train", "test")
    }
    packaged_lists: ClassVar[dict[str, str]] = {"test": "visevent_test.txt"}
    list_files: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("trainlist.txt",),
        "test": ("testlist.txt",),
    }
    markers: ClassVar[tuple[str, ...]] = ("groundtruth.txt",)
    stream_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "rgb": ("vis_imgs",),
        "event": ("event_imgs",),
    }

    def annotations(self, name: str, folder: Path, where: str) -> Annotations:
        """``groundtruth.txt`` and ``absent_label.txt`` (1 = present)."""
        path = require_file(folder, ("groundtruth.txt",), where, "ground-truth")
        boxes = parse_boxes(path, where)
        visible = valid_boxes(boxes)
        absent_path = first_file(folder, ("absent_label.txt",))
        if absent_path is not None:
            present = parse_line_flags(absent_path, where)
            if len(present) != len(boxes):
                raise DataError(
                    f"{where}: {absent_path} has {len(present)} rows but {path} has {len(boxes)}"
                )
            visible &= present == 1
        attributes = read_attribute_list(folder, where) or {}
        return Annotations(boxes, visible, path, attributes=attributes)

    def extras(self, folder: Path, n_frames: int, where: str) -> dict[str, Any]:
        """``raw`` and ``frame_times`` from ``events.h5`` when the folder holds one."""
        events = folder / EVENTS_FILE
        if not events.is_file():
            return {}
        extras: dict[str, Any] = {"raw": {"event": events}}
        if self.options.read_event_times:
            extras["frame_times"] = read_frame_times(events, n_frames, where)
        return extras


def read_frame_times(path: Path, n_frames: int, where: str) -> np.ndarray:
    """The ``frame_times`` dataset of an events file: ``(n_frames + 1,)`` non-decreasing frame
    boundaries in microseconds (events of frame k lie in ``[t[k], t[k+1])``)."""
    try:
        with h5py.File(path, "r") as file:
            if "frame_times" not in file:
                raise DataError(f"{where}: {path} has no frame_times dataset")
            times = np.asarray(file["frame_times"][()])
    except OSError as error:
        raise DataError(f"{where}: cannot read {path}: {error}") from None
    if times.shape != (n_frames + 1,):
        raise DataError(
            f"{where}: {path} frame_times has shape {times.shape}; {n_frames} frames need "
            f"({n_frames + 1},) boundaries"
        )
    if np.any(np.diff(times) < 0):
        raise DataError(f"{where}: {path} frame_times decrease somewhere; they must be sorted")
    return times


@hookimpl
def mmtrack_kd_register_datasets(register):
    """Register the VisEvent dataset plugin."""
    register(VisEvent)
