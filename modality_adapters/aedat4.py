"""Convert VisEvent's ``.aedat4`` recordings to the HDF5 event file
(:mod:`mmtrack_kd.data.event_store`).

Reading AEDAT 4 needs the optional package ``aedat`` (``pip install 'mmtrack-kd[events]'``),
imported only when a conversion runs, so nothing else depends on it.

Frame boundaries. Events of frame k are those with ``frame_times[k] <= t < frame_times[k+1]``.
Where they come from, in this order:

1. an explicit ``(N + 1,)`` array passed as ``frame_times_or_count`` (same clock as the file);
2. otherwise the file's APS frames: VisEvent's ``vis_imgs`` are the DAVIS346 frames, and the
   AEDAT 4 frame packets carry their timestamps (the packet's ``t``). Frame k of the sequence is
   APS frame ``first_frame + k`` (``first_frame`` is the number in the first image name for
   sequences that do not start at ``frame0000``). Its events are those that arrived *since the
   previous APS frame, up to and including its own timestamp*, what a tracker at that frame could
   have seen. The first frame's window is the previous APS frame's interval when there is one,
   otherwise as long as the next interval. (Which window VisEvent's own ``event_imgs`` used is
   unverified.)
3. a file with no frames at all: ``N`` equal windows from the first to the last event.

A file whose frame count does not cover the ``N`` frames asked for is an error, not a guess.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any
from typing import Sequence as SequenceType

import numpy as np

from mmtrack_kd.data import (
    DataError,
    MmtrackError,
    NotAvailableError,
    installed_plugins,
    write_event_h5,
)

INSTALL_HINT = "pip install 'mmtrack-kd[events]'"


def convert_aedat4(
    aedat_path: str | os.PathLike[str],
    frame_times_or_count: int | SequenceType[int] | np.ndarray,
    out_path: str | os.PathLike[str],
    *,
    first_frame: int = 0,
    where: str = "",
    compression: str | None = "lzf",
) -> Path:
    """Read one ``.aedat4`` file and write its events as an indexed HDF5 event file.

    Args:
        aedat_path: the recording (VisEvent: one per sequence).
        frame_times_or_count: the number of frames ``N`` of the sequence (boundaries from the
            file's frames, see the module docstring), or the ``(N + 1,)`` boundaries in
            microseconds.
        out_path: the HDF5 file to write.
        first_frame: index of the APS frame that is the sequence's frame 0.
        where: ``dataset/sequence`` prefix for error messages.
        compression: HDF5 filter for the event arrays (``"lzf"`` is fast and always available).

    Returns:
        ``out_path``.

    Raises:
        NotAvailableError: the ``aedat`` package is not installed.
        DataError: the file is missing or cannot be decoded, holds no events, or its frames do
            not cover the frames asked for.
    """
    try:
        import aedat  # optional dependency: only conversions need it
    except ImportError:
        raise NotAvailableError(
            f"converting .aedat4 recordings needs the optional package 'aedat': {INSTALL_HINT}"
        ) from None

    source = Path(aedat_path)
    prefix = f"{where}: " if where else ""
    if not source.is_file():
        raise DataError(f"{prefix}event recording {source} does not exist")
    if first_frame < 0:
        raise ValueError(f"first_frame must be >= 0, got {first_frame}")

    try:
        events, frame_stamps, size = _decode(aedat, source)
    except MmtrackError:
        raise
    except Exception as error:  # the Rust decoder's errors have no common type
        raise DataError(
            f"{prefix}event recording {source} cannot be decoded as AEDAT 4: "
            f"{type(error).__name__}: {error}"
        ) from error
    if len(events) == 0:
        raise DataError(f"{prefix}event recording {source} holds no polarity events")

    t = events["t"].astype(np.int64)
    if np.any(np.diff(t) < 0):
        # Packets should arrive in time order; sort (stably) rather than reject a recording.
        order = np.argsort(t, kind="stable")
        events, t = events[order], t[order]
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    polarity = events["on"].astype(np.uint8)
    width, height = size if size is not None else (int(x.max()) + 1, int(y.max()) + 1)

    boundaries = _frame_boundaries(
        frame_times_or_count, frame_stamps, t, first_frame, f"{prefix}event recording {source}"
    )
    return write_event_h5(
        out_path, x, y, t, polarity, boundaries, width, height, compression=compression
    )


def _decode(aedat: Any, source: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
    """All polarity events (structured array with ``t``, ``x``, ``y``, ``on``), the APS frame
    timestamps, and the event sensor's ``(width, height)`` if the file declares it."""
    decoder = aedat.Decoder(str(source))
    streams = decoder.id_to_stream()
    event_ids = [key for key, stream in streams.items() if stream.get("type") == "events"]
    size = None
    if event_ids:
        first = streams[event_ids[0]]
        if "width" in first and "height" in first:
            size = (int(first["width"]), int(first["height"]))
    # A DAVIS records one polarity stream; should a file hold more, keep the first one only so
    # that coordinates refer to one sensor.
    keep = event_ids[0] if event_ids else None
    chunks: list[np.ndarray] = []
    stamps: list[int] = []
    for packet in decoder:
        if "events" in packet and (keep is None or packet["stream_id"] == keep):
            chunks.append(packet["events"])
        elif "frame" in packet:
            stamps.append(int(packet["frame"]["t"]))
    decoder = None  # the decoder owns the file handle; release it now
    events = np.concatenate(chunks) if chunks else np.zeros(0, dtype=_EVENT_DTYPE)
    return events, np.sort(np.asarray(stamps, dtype=np.int64)), size


# The dtype aedat gives polarity events (the polarity field is titled "p", named "on").
_EVENT_DTYPE = np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), (("p", "on"), "?")])


def _frame_boundaries(
    frame_times_or_count: int | SequenceType[int] | np.ndarray,
    stamps: np.ndarray,
    t: np.ndarray,
    first_frame: int,
    what: str,
) -> np.ndarray:
    """The ``(N + 1,)`` boundaries by the rules of the module docstring."""
    if not isinstance(frame_times_or_count, (int, np.integer)):
        boundaries = np.asarray(frame_times_or_count)
        if boundaries.ndim != 1 or len(boundaries) < 2:
            raise ValueError(
                f"frame times must be (N + 1,) boundaries, got shape {boundaries.shape}"
            )
        return boundaries.astype(np.int64)

    count = int(frame_times_or_count)
    if count < 1:
        raise ValueError(f"the frame count must be >= 1, got {count}")
    if len(stamps) == 0:
        # No APS frames: N equal windows; the last bound is one past the last event so that
        # every event falls in a frame.
        return np.rint(np.linspace(t[0], t[-1] + 1, count + 1)).astype(np.int64)
    if len(stamps) < first_frame + count:
        raise DataError(
            f"{what} holds {len(stamps)} frames, fewer than frames {first_frame}.."
            f"{first_frame + count - 1} asked for; pass explicit frame times instead"
        )
    chosen = stamps[first_frame : first_frame + count]
    # "Up to and including its timestamp": t <= T  <=>  t < T + 1 (integer microseconds).
    ends = chosen + 1
    if first_frame > 0:
        start = stamps[first_frame - 1] + 1
    elif len(stamps) > 1:
        start = chosen[0] + 1 - (stamps[1] - stamps[0])
    else:  # a single frame in the whole file: everything up to it
        start = min(int(t[0]), int(chosen[0]) + 1)
    return np.concatenate([[start], ends]).astype(np.int64)


# --------------------------------------------------------------------------- whole datasets


def _first_frame_number(path: Path) -> int:
    """The number in a VisEvent frame name (``frame0123.bmp`` -> 123); 0 when it has none."""
    digits = "".join(ch for ch in path.stem if ch.isdigit())
    return int(digits) if digits else 0


def convert_dataset(
    dataset: Any,
    names: SequenceType[str] | None = None,
    *,
    force: bool = False,
    events_file: str = "events.h5",
    log: Any = print,
) -> tuple[list[Path], list[str]]:
    """Convert the ``.aedat4`` recording in each sequence folder of a dataset plugin (VisEvent)
    into ``<sequence>/events.h5``, where the plugin finds it (``raw["event"]``).

    Frame 0 of a sequence is APS frame ``N`` of its recording when its first image is
    ``frameN.bmp`` (VisEvent's sequences that do not start at ``frame0000``). A sequence whose
    ``events.h5`` exists is skipped unless ``force``; the file is written to a temporary name and
    renamed, so an interrupted conversion leaves no half file behind.

    Returns:
        The files written, and one message per sequence that failed (the others still run).
    """
    written: list[Path] = []
    failures: list[str] = []
    for name in list(names) if names else dataset.list_sequences():
        try:
            folder = Path(dataset.sequence_dir(name))
            target = folder / events_file
            if target.is_file() and not force:
                log(f"{name}: {target} exists (--force converts again)")
                continue
            recordings = sorted(folder.glob("*.aedat4"))
            if len(recordings) != 1:
                raise DataError(f"{dataset.where(name)}: expected one .aedat4 recording in {folder}, "
                                f"found {len(recordings)}")
            sequence = dataset.load_sequence(name)
            rgb = sequence.frames["rgb"]
            partial = target.with_name(target.name + ".part")
            convert_aedat4(recordings[0], len(rgb), partial, first_frame=_first_frame_number(rgb[0]),
                           where=dataset.where(name))
            os.replace(partial, target)
            written.append(target)
            log(f"{name}: wrote {target}")
        except MmtrackError as error:
            if isinstance(error, NotAvailableError):
                raise
            failures.append(str(error))
    return written, failures


def main(argv: SequenceType[str] | None = None) -> int:
    """``mmtrack-kd-events``: convert a VisEvent split's ``.aedat4`` recordings to ``events.h5``
    (the raw events the ``event`` adapter's voxel representation reads)."""
    parser = argparse.ArgumentParser(
        prog="mmtrack-kd-events",
        description="Convert a dataset's .aedat4 event recordings (VisEvent layout) into the "
        "indexed HDF5 files (events.h5 in each sequence folder) that the event adapter reads.",
    )
    parser.add_argument("--dataset", default="visevent", help="dataset plugin (default visevent)")
    parser.add_argument("--root", type=Path, help="dataset root (else MMTRACK_KD_<NAME>_ROOT)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sequences", nargs="+", help="only these sequences")
    parser.add_argument("--force", action="store_true", help="convert again where events.h5 exists")
    args = parser.parse_args(argv)
    try:
        cls = installed_plugins().dataset(args.dataset)
        options = {"split": args.split, **({"root": args.root} if args.root else {})}
        dataset = cls(cls.Options(**options))
        written, failures = convert_dataset(dataset, args.sequences, force=args.force)
    except MmtrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"converted {len(written)} sequences; {len(failures)} failed")
    return 1 if failures else 0
