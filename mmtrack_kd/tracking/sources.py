"""Frame streams for ``mmtrack-kd track``: a video file, a folder of frames, or a raw-data file.

Each stream yields frames exactly as its modality adapter's ``read`` would: ``H x W x C`` float32.

- **Folder** of frame files (the adapter's ``frame_suffixes``: images by default, ``.npy`` or
  anything else a modality stores its frames as; naturally sorted, ``2.png`` before ``10.png``):
  the files become a one-stream :class:`~mmtrack_kd.data.sequence.Sequence` and the adapter's
  own ``read`` decodes them, the reader training uses, so 16-bit depth PNGs, radiometric thermal
  TIFFs, rendered event frames and array frames are read as in training.
- **Video** (anything ``cv2.VideoCapture`` opens): each frame goes through the adapter's
  ``convert(raw)`` (:meth:`~mmtrack_kd.data.ModalityAdapter.convert`): as RGB uint8 by default,
  which becomes [0, 1] as ``read`` gives for an 8-bit image; as grey levels 0..255 in a uint16
  array for an adapter whose ``video_input`` is ``"grey"`` (depth). *Limitation*: a video
  carries 8 bits per channel, so 16-bit depth or radiometric thermal loses its precision, a
  depth video must hold raw grey depth (not an already coloured map), and a modality that is
  not 3 image channels (event voxel grids, flow fields) comes from a frame folder unless its
  adapter overrides ``convert``.
- **Raw-data file** (``.h5`` / ``.hdf5``): handed to the adapter as ``Sequence.raw[name]`` (the
  event adapter's voxel representation reads its HDF5 event file this way).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mmtrack_kd.data.modality import IMAGE_SUFFIXES, ModalityAdapter
from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import DataError

RAW_SUFFIXES = frozenset({".h5", ".hdf5"})
#: The ``dataset`` of the sequences built here, so adapters' messages read ``track/<folder>``.
SOURCE = "track"


def natural_key(name: str) -> tuple:
    """Sort key in which digit runs compare as numbers: ``img2`` < ``img10``."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in parts)


def list_frames(
    folder: Path, what: str, suffixes: frozenset[str] = IMAGE_SUFFIXES
) -> tuple[Path, ...]:
    """The frame files of ``folder`` (``suffixes``, images by default) in natural order;
    DataError when there are none."""
    paths = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    if not paths:
        kind = "images" if suffixes == IMAGE_SUFFIXES else "frames"
        raise DataError(f"{what} frame folder {folder} holds no {kind} ({', '.join(sorted(suffixes))})")
    return tuple(sorted(paths, key=lambda p: natural_key(p.name)))


def _blank_sequence(name: str, n: int, frames: dict, raw: dict, path: Path) -> Sequence:
    """A sequence without ground truth (boxes NaN): only for reading frames through adapters."""
    return Sequence(
        name=name,
        dataset=SOURCE,
        frames=frames,
        boxes=np.full((n, 4), np.nan),
        visible=np.zeros(n, dtype=bool),
        raw=raw,
        path=path,
    )


class FrameStream:
    """One modality's frames from a folder, a video or a raw file (see the module docstring).

    Args:
        path: the folder or file.
        adapter: the modality's adapter.
        what: ``"rgb"`` / ``"aux"``, the command-line option, for messages.
        n_frames: number of frames a raw-data file is read for (the RGB stream's count).
    """

    def __init__(
        self, path: Path, adapter: ModalityAdapter, what: str, n_frames: int | None = None
    ) -> None:
        self.path = Path(path)
        self.adapter = adapter
        self.what = what
        self.fps: float | None = None
        self._sequence: Sequence | None = None
        if not self.path.exists():
            raise DataError(f"--{what} {self.path} does not exist")
        if self.path.is_dir():
            self.kind = "folder"
            paths = list_frames(self.path, f"--{what}", adapter.frame_suffixes)
            streams = {adapter.name: paths}
            self._sequence = _blank_sequence(self.path.name, len(paths), streams, {}, self.path)
            self.n_frames: int | None = len(paths)
        elif self.path.suffix.lower() in RAW_SUFFIXES:
            self.kind = "raw"
            self.n_frames = n_frames
        else:
            self.kind = "video"
            capture = self._open()
            fps = capture.get(cv2.CAP_PROP_FPS)
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            capture.release()
            self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
            # The container's count; exact_count() decodes to confirm when it matters.
            self.n_frames = count if count > 0 else None
            if not adapter.reads_video:
                raise DataError(
                    f"--{what} {self.path}: the {adapter.name} modality has {adapter.channels} "
                    "channels and cannot be read from a video; give a folder of its frames"
                )

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise DataError(
                f"--{self.what} {self.path} cannot be opened as a video (or is not a frame folder)"
            )
        return capture

    def exact_count(self) -> int | None:
        """The number of frames, counting a video's frames by decoding them (containers may
        report a wrong count); None for a raw file read for as many frames as asked."""
        if self.kind != "video":
            return self.n_frames
        capture = self._open()
        count = 0
        while capture.grab():
            count += 1
        capture.release()
        self.n_frames = count
        return count

    def frames(self, n_frames: int | None = None) -> Iterator[np.ndarray]:
        """Yield ``H x W x C`` float32 frames in order (``n_frames`` sizes a raw file's reader)."""
        if self.kind == "video":
            yield from self._video_frames()
            return
        sequence = self._sequence
        if sequence is None:  # raw-data file
            count = n_frames if n_frames is not None else self.n_frames
            if count is None:
                raise ValueError("a raw-data stream needs the number of frames to read")
            raw = {self.adapter.name: self.path}
            sequence = _blank_sequence(self.path.stem, count, {}, raw, self.path.parent)
        for index in range(sequence.n_frames):
            yield self.adapter.read(sequence, index)

    def _video_frames(self) -> Iterator[np.ndarray]:
        capture = self._open()
        grey = self.adapter.video_input == "grey"
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                if grey:
                    # Raw sensor maps are 16-bit on disk; widen the 8-bit grey levels to match.
                    raw = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16)
                else:
                    raw = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield np.asarray(self.adapter.convert(raw), dtype=np.float32)
        finally:
            capture.release()
