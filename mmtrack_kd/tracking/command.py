"""``mmtrack-kd track``: follow one object through a pair of videos (or frame folders).

Writes into the output folder:

- ``boxes.txt``: one ``x,y,w,h`` line per frame (image pixels, 4 decimals; line 1 is ``--init``);
- ``confidence.txt``: one line per frame, the peak of the windowed score map (1.0 on frame 1);
- ``track.mp4``: the RGB frames beside the rendered auxiliary frames (RGB alone for a
  single-modality checkpoint), the box drawn on both, ``mp4v`` at the RGB video's frame rate
  (30 for frame folders).

How each stream is read (folders through the adapter's ``read``; videos through its
``convert`` when it has one; the limits of videos) is in :mod:`mmtrack_kd.tracking.sources`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from mmtrack_kd.data.modality import ModalityAdapter
from mmtrack_kd.errors import DataError, MmtrackError
from mmtrack_kd.data.results_io import atomic_write_text, write_otb_result
from mmtrack_kd.tracking.sources import FrameStream
from mmtrack_kd.tracking.tracker import Tracker, TrackerSettings, frames_per_second

BOXES_FILE = "boxes.txt"
CONFIDENCE_FILE = "confidence.txt"
VIDEO_FILE = "track.mp4"
DEFAULT_FPS = 30.0
BOX_COLOUR = (0, 255, 0)  # BGR


def parse_box(text: str) -> np.ndarray:
    """``"X,Y,W,H"`` (pixels, commas, optional spaces) -> ``(4,)`` float64; a malformed value is a
    :class:`~mmtrack_kd.errors.MmtrackError` quoting it."""
    parts = [part.strip() for part in str(text).split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise MmtrackError(f"--init {text!r}: expected four numbers X,Y,W,H in pixels, e.g. 100,80,40,60")
    if values[2] <= 0 or values[3] <= 0:
        raise MmtrackError(f"--init {text!r}: width and height must be positive")
    return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class TrackRun:
    """What :func:`track` did.

    Attributes:
        boxes: ``(N, 4)`` ``x, y, w, h`` image pixels per frame.
        confidences: ``(N,)`` in ``[0, 1]`` (1 on frame 0).
        times: ``(N,)`` seconds the tracker spent per frame (reading and drawing excluded).
        boxes_path, confidence_path, video_path: the files written.
        modalities: ``"rgb+thermal"``.
        device: where the model ran.
    """

    boxes: np.ndarray
    confidences: np.ndarray
    times: np.ndarray
    boxes_path: Path
    confidence_path: Path
    video_path: Path
    modalities: str
    device: str

    @property
    def n_frames(self) -> int:
        return len(self.boxes)

    @property
    def fps(self) -> float:
        """Tracker frames per second (initialisation excluded)."""
        return frames_per_second(self.times)

    def summary(self) -> str:
        """One line for the console: what was tracked, how fast, where it went."""
        fps = f"{self.fps:.1f} fps" if math.isfinite(self.fps) else "no tracked frames"
        return (
            f"tracked {self.n_frames} frames ({self.modalities}, {self.device}, {fps}); "
            f"wrote {self.boxes_path}, {self.confidence_path} and {self.video_path}"
        )


class AnnotatedVideo:
    """Side-by-side video of every modality's rendered frame with the box drawn on each."""

    def __init__(self, path: Path, adapters: list[ModalityAdapter], fps: float) -> None:
        self.path = Path(path)
        self.adapters = adapters
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def write(self, frames: list[np.ndarray], box: np.ndarray, index: int, confidence: float) -> None:
        panels = []
        for stream, (adapter, frame) in enumerate(zip(self.adapters, frames)):
            panel = cv2.cvtColor(np.ascontiguousarray(adapter.render(frame)), cv2.COLOR_RGB2BGR)
            label = f"#{index + 1} {confidence:.2f}" if stream == 0 else adapter.name
            self._draw(panel, box, label)
            panels.append(panel)
        image = np.concatenate(panels, axis=1)
        if self._writer is None:
            # Encoders want even sides: pad one black row / column when needed.
            height, width = image.shape[:2]
            self._size = (width + width % 2, height + height % 2)
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                raise MmtrackError(f"cannot write video {self.path} (OpenCV has no mp4v encoder here?)")
        width, height = self._size
        if image.shape[:2] != (height, width):
            image = cv2.copyMakeBorder(image, 0, height - image.shape[0], 0, width - image.shape[1],
                                       cv2.BORDER_CONSTANT, value=0)
        self._writer.write(image)

    @staticmethod
    def _draw(panel: np.ndarray, box: np.ndarray, label: str) -> None:
        height, width = panel.shape[:2]
        thickness = max(1, round(min(height, width) / 240))
        x, y, w, h = box
        cv2.rectangle(panel, (round(x), round(y)), (round(x + w), round(y + h)), BOX_COLOUR, thickness)
        scale = max(0.4, min(height, width) / 600)
        cv2.putText(panel, label, (5, 5 + round(20 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, BOX_COLOUR,
                    thickness, cv2.LINE_AA)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _paired_frames(streams: list[FrameStream], n_frames: int | None) -> Iterator[list[np.ndarray]]:
    """Frames of every stream, one time step at a time; a stream that ends early is an error."""
    iterators = [stream.frames(n_frames) for stream in streams]
    index = 0
    while True:
        step = [next(iterator, None) for iterator in iterators]
        ended = [stream for stream, frame in zip(streams, step) if frame is None]
        if len(ended) == len(streams):
            return
        if ended:
            names = ", ".join(f"--{s.what} {s.path}" for s in ended)
            raise DataError(f"{names} ended after {index} frames while the other stream has more")
        yield step  # type: ignore[misc]
        index += 1


def _check_counts(streams: list[FrameStream]) -> int | None:
    """Make sure every stream has the same number of frames; returns it (None if unknown)."""
    counts = [stream.n_frames for stream in streams]
    if len(streams) > 1 and (None in counts or len(set(counts)) > 1):
        counts = [stream.exact_count() for stream in streams]  # decode videos to be sure
    known = {count for count in counts if count is not None}
    if len(known) > 1:
        described = " but ".join(f"--{s.what} {s.path} has {c} frames" for s, c in zip(streams, counts))
        raise DataError(f"frame counts differ: {described}")
    count = known.pop() if known else None
    if count == 0:
        raise DataError(f"--rgb {streams[0].path} holds no frames")
    return count


def _check_start(box: np.ndarray, frames: list[np.ndarray], streams: list[FrameStream], text: str) -> None:
    height, width = frames[0].shape[:2]
    for stream, frame in zip(streams[1:], frames[1:]):
        if frame.shape[:2] != (height, width):
            raise DataError(
                f"--aux {stream.path} frames are {frame.shape[1]}x{frame.shape[0]} but --rgb "
                f"{streams[0].path} frames are {width}x{height}; the streams must be aligned"
            )
    x, y, w, h = box
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise MmtrackError(
            f"--init {text}: the box lies outside the first frame ({width}x{height}) of {streams[0].path}"
        )


def write_results(out: Path, boxes: np.ndarray, confidences: np.ndarray) -> tuple[Path, Path]:
    """``boxes.txt`` (OTB style: ``x,y,w,h``, 4 decimals) and ``confidence.txt`` (one value a
    line, full precision) in ``out``, each written atomically."""
    boxes_path = write_otb_result(out / BOXES_FILE, np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    lines = "".join(f"{float(value)!r}\n" for value in np.asarray(confidences).reshape(-1))
    confidence_path = atomic_write_text(out / CONFIDENCE_FILE, lines)
    return boxes_path, confidence_path


def track(
    checkpoint: str | os.PathLike,
    rgb: str | os.PathLike,
    aux: str | os.PathLike | None,
    init: str,
    out: str | os.PathLike,
    device: str | None = None,
    registry: Any = None,
    on_frame: Callable[[int, int | None], None] | None = None,
    settings: TrackerSettings | None = None,
) -> TrackRun:
    """Track one object from ``init`` through the RGB (and auxiliary) stream.

    Args:
        checkpoint: an mmtrack-kd checkpoint (teacher, student or single-modality student).
        rgb: RGB video file or folder of frames.
        aux: auxiliary video, frame folder or raw-data file, read as the checkpoint's modality
            expects; ignored (None allowed) for a single-modality checkpoint.
        init: first-frame box ``"X,Y,W,H"`` in pixels.
        out: output folder (created).
        device: ``"cuda"`` when available and ``"cpu"`` otherwise, unless given.
        settings: precision, compilation, keep ratio and Hann window of the tracker
            (:class:`~mmtrack_kd.tracking.TrackerSettings`; default fp32, eager).
        registry: plugin registry for the adapters (the installed plugins by default).
        on_frame: called as ``on_frame(frames_done, total_or_None)`` after every frame.

    Raises:
        MmtrackError: bad ``--init``, missing ``--aux``; DataError for missing or unreadable
        files and streams of different lengths or sizes; CheckpointError for the checkpoint.
    """
    box = parse_box(init)
    tracker = Tracker.from_checkpoint(checkpoint, device=device or "auto", registry=registry,
                                      settings=settings if settings is not None else TrackerSettings())
    streams = [FrameStream(Path(rgb), tracker.adapters[0], "rgb")]
    if tracker.num_modalities > 1:
        if aux is None:
            raise MmtrackError(
                f"checkpoint {checkpoint} tracks {tracker.modalities}: give the "
                f"{tracker.adapters[1].name} stream with --aux"
            )
        streams.append(FrameStream(Path(aux), tracker.adapters[1], "aux"))
    total = _check_counts(streams)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    video = AnnotatedVideo(out / VIDEO_FILE, tracker.adapters, streams[0].fps or DEFAULT_FPS)
    boxes: list[np.ndarray] = []
    confidences: list[float] = []
    times: list[float] = []
    try:
        for index, frames in enumerate(_paired_frames(streams, total)):
            start = time.perf_counter()
            if index == 0:
                _check_start(box, frames, streams, init)
                tracker.initialize(frames, box)
                result, confidence = box.copy(), 1.0
            else:
                if frames[-1].shape[:2] != frames[0].shape[:2]:
                    _check_start(box, frames, streams, init)  # raises the size mismatch
                result, confidence = tracker.track(frames)
            times.append(time.perf_counter() - start)
            boxes.append(result)
            confidences.append(confidence)
            video.write(frames, result, index, confidence)
            if on_frame is not None:
                on_frame(index + 1, total)
    except DataError as error:
        if boxes:  # keep what was tracked, and say so
            paths = write_results(out, np.array(boxes), np.array(confidences))
            where = paths[0].parent
            raise DataError(f"{error}\n(results of the first {len(boxes)} frames are in {where})") from None
        raise
    finally:
        video.close()
    if not boxes:
        raise DataError(f"--rgb {streams[0].path} holds no frames")
    boxes_path, confidence_path = write_results(out, np.array(boxes), np.array(confidences))
    return TrackRun(
        boxes=np.array(boxes),
        confidences=np.array(confidences),
        times=np.array(times),
        boxes_path=boxes_path,
        confidence_path=confidence_path,
        video_path=video.path,
        modalities=tracker.modalities,
        device=str(tracker.device),
    )
