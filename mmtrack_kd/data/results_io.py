"""Result files in the layouts the official toolkits read, as :class:`ResultLayout` objects.

A protocol names the layout its toolkit reads (``Protocol.result_layout``); the tracker writes
and the scorer reads through that object, so neither asks which protocol it serves. This module
sits below both tracking and evaluation, and imports neither.

**OTB style** (:data:`OTB_RESULTS`; the OTB-family toolkits and the ``rgbt`` package): one file per sequence, ``<tracker>/<sequence>.txt``, one ``x,y,w,h`` box per frame in
pixels. We write comma-separated floats with 4 decimals (``12.5000,30.0000,40.2500,20.0000``;
NaN as ``nan``), which MATLAB's ``dlmread``, ``numpy.loadtxt(delimiter=",")`` and the ``rgbt``
package all read. Reading accepts commas, tabs or spaces (OSTrack writes tab-separated integers,
ViPT comma-separated floats).

**VOT long-term** (:data:`VOT_LONGTERM_RESULTS`; the VOT toolkit's long-term experiments)::

    <tracker>/longterm/<sequence>/<sequence>_001.txt               "1", then x,y,w,h per frame
    <tracker>/longterm/<sequence>/<sequence>_001_confidence.value  "" for frame 1, then a value
    <tracker>/longterm/<sequence>/<sequence>_001_time.value        seconds per frame

as the VOT toolkit writes them: the first region line is the special code ``1`` (the
initialisation frame) and frame 1 has no confidence (an empty line, which the toolkit reads as
0). A frame without a box is written ``nan,nan,nan,nan`` (the toolkit reads it as an empty
region). Reading also accepts the binary ``<sequence>_001.bin`` that vot-toolkit 0.6 and later
write by default (``results_binary``), for rectangles and special codes.

Every file is written atomically (a temporary file in the same folder, flushed to disk, then a
rename: :func:`atomic_file`, which the rest of the project writes its text and copied files
with), and the box file of a sequence is written last, so a sequence whose box file exists is
finished: see :func:`finished_sequences`.
"""

from __future__ import annotations

import abc
import io
import os
import re
import secrets
import struct
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, get_args

import numpy as np

from mmtrack_kd.data.boxes import polygon_to_xywh
from mmtrack_kd.errors import DataError, MmtrackError

_SEPARATOR = re.compile(r"\s*,\s*|\s+")
VOT_LONGTERM_FOLDER = "longterm"
VOT_INIT_CODE = "1"
#: Problems of one result folder listed in full before the rest are counted.
MAX_PROBLEMS = 20


# --------------------------------------------------------------------------- writing


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: Literal["w", "wb"] = "w") -> Iterator[IO[Any]]:
    """A file to write that replaces ``path`` only when the ``with`` block ends without an error.

    The project's one atomic writer for text and copied files (checkpoints keep their own
    ``torch.save`` writer). It writes a temporary file in the same folder (``mode`` ``"w"``:
    UTF-8 text with ``\\n`` line ends; ``"wb"``: bytes), flushes it to disk and renames it over
    ``path``, so a reader sees the old file or the whole new one, also after a crash; an error
    removes the temporary file. Folders are created; the file gets the usual permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_file`); returns the path."""
    with atomic_file(path) as handle:
        handle.write(text)
    return Path(path)


def format_boxes(boxes: np.ndarray) -> str:
    """``(N, 4)`` boxes as text: one ``x,y,w,h`` line a frame, 4 decimals, NaN as ``nan``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be N x 4, got shape {boxes.shape}")
    buffer = io.StringIO()
    np.savetxt(buffer, boxes, fmt="%.4f", delimiter=",")
    return buffer.getvalue()


def _format_values(values: np.ndarray) -> list[str]:
    # repr-precision, so a confidence read back equals the one written (thresholds tie alike)
    return ["nan" if np.isnan(v) else repr(float(v)) for v in values]


def otb_result_path(tracker_dir: str | os.PathLike[str], sequence: str, prefix: str = "") -> Path:
    """``<tracker_dir>/<prefix><sequence>.txt`` (published raw results are often named
    ``<tracker>_<sequence>.txt``: ``prefix="<tracker>_"``, as the ``rgbt`` package's ``prefix``)."""
    return Path(tracker_dir) / f"{prefix}{sequence}.txt"


BoxFormat = Literal["xywh", "ltrb", "ltrb-inclusive"]
BOX_FORMATS: tuple[str, ...] = get_args(BoxFormat)


def boxes_to_xywh(boxes: np.ndarray, box_format: BoxFormat) -> np.ndarray:
    """Boxes as ``x,y,w,h`` (left, top, width, height) from ``box_format``: ``xywh`` as is;
    ``ltrb`` corners ``x1,y1,x2,y2`` with width ``x2 - x1`` (GTOT's ground-truth convention,
    REFERENCE.md); ``ltrb-inclusive`` corners of the last pixel inside, width ``x2 - x1 + 1``
    (the ``rgbt`` package's default, ``_strict`` mode)."""
    if box_format == "xywh":
        return boxes
    if box_format in ("ltrb", "ltrb-inclusive"):
        out = boxes.copy()
        out[:, 2:] = boxes[:, 2:] - boxes[:, :2] + (1.0 if box_format == "ltrb-inclusive" else 0.0)
        return out
    raise ValueError(f"unknown box format {box_format!r} ({', '.join(BOX_FORMATS)})")


def write_otb_result(path: str | os.PathLike[str], boxes: np.ndarray) -> Path:
    """Write one sequence's ``(N, 4)`` boxes (pixels) as an OTB-style text file, atomically."""
    return atomic_write_text(path, format_boxes(boxes))


@dataclass(frozen=True)
class VotLongTermFiles:
    """Paths of one sequence's VOT long-term result files."""

    boxes: Path
    confidence: Path
    time: Path

    @property
    def boxes_binary(self) -> Path:
        """``<sequence>_001.bin``: the box file in vot-toolkit's binary format."""
        return self.boxes.with_suffix(".bin")

    def has_boxes(self) -> bool:
        """Whether the box file exists, as text or binary."""
        return self.boxes.is_file() or self.boxes_binary.is_file()


def vot_longterm_files(tracker_dir: str | os.PathLike[str], sequence: str) -> VotLongTermFiles:
    """The three files of ``sequence`` under ``<tracker_dir>/longterm/<sequence>/``."""
    folder = Path(tracker_dir) / VOT_LONGTERM_FOLDER / sequence
    stem = f"{sequence}_001"
    return VotLongTermFiles(
        boxes=folder / f"{stem}.txt",
        confidence=folder / f"{stem}_confidence.value",
        time=folder / f"{stem}_time.value",
    )


def write_vot_longterm_result(
    tracker_dir: str | os.PathLike[str],
    sequence: str,
    boxes: np.ndarray,
    confidences: np.ndarray,
    times: np.ndarray | None = None,
) -> VotLongTermFiles:
    """Write one sequence in the VOT long-term layout, atomically, box file last.

    Args:
        tracker_dir: the tracker's result folder (``longterm/`` is created inside).
        sequence: sequence name.
        boxes: ``(N, 4)`` boxes in pixels; row 0 is not written (the toolkit writes ``1`` for
            the initialisation frame); a row with a NaN is written ``nan,nan,nan,nan``.
        confidences: ``(N,)``; value 0 is not written (frame 1 has no confidence).
        times: ``(N,)`` seconds per frame, or ``None`` to write no time file.

    Returns:
        The paths written (``time`` is listed even when not written).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
        raise ValueError(f"boxes must be N x 4 with N >= 1, got shape {boxes.shape}")
    if len(confidences) != len(boxes):
        raise ValueError(f"{len(confidences)} confidences for {len(boxes)} boxes")
    files = vot_longterm_files(tracker_dir, sequence)
    atomic_write_text(files.confidence, "\n".join([""] + _format_values(confidences[1:])) + "\n")
    if times is not None:
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if len(times) != len(boxes):
            raise ValueError(f"{len(times)} times for {len(boxes)} boxes")
        atomic_write_text(files.time, "\n".join(_format_values(times)) + "\n")
    rows = np.where(np.isfinite(boxes[1:]).all(axis=1, keepdims=True), boxes[1:], np.nan)
    atomic_write_text(files.boxes, f"{VOT_INIT_CODE}\n" + format_boxes(rows))
    return files


# --------------------------------------------------------------------------- reading


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8-sig")  # tolerate a BOM
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read {what}: {error}") from None


def _number(token: str, path: Path, line: int, text: str) -> float:
    try:
        return float(token)
    except ValueError:
        raise DataError(f"{path}, line {line}: {text.strip()!r} is not x,y,w,h numbers") from None


def read_otb_result(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an OTB-style result file.

    Args:
        path: a text file with one ``x,y,w,h`` box per line, separated by commas, tabs or
            spaces; blank lines at the end are ignored. A file of 8-value lines (GTOT's
            published raw results are polygons) is read as each polygon's axis-aligned
            bounding box (:func:`polygon_to_xywh`).

    Returns:
        ``(M, 4)`` float64 boxes in pixels (``nan`` stays NaN).

    Raises:
        DataError: missing file, or a malformed line (the message names file and line number).
    """
    path = Path(path)
    lines = _read_text(path, "result file").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    tokens: list[str] = []
    polygons = False
    for number, line in enumerate(lines, start=1):
        parts = _SEPARATOR.split(line.strip())
        if len(parts) == 8 and (polygons or number == 1):
            polygons = True  # GTOT's published raw results: x1,y1,...,x4,y4 corners
        elif len(parts) != 4 or polygons:
            raise DataError(
                f"{path}, line {number}: expected "
                + ("8 values (a polygon, as the file's first line)" if polygons else
                   "4 values x,y,w,h (or 8: a polygon)")
                + f", got {line.strip()!r}"
            )
        tokens += parts
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        for number, line in enumerate(lines, start=1):
            for token in _SEPARATOR.split(line.strip()):
                _number(token, path, number, line)
        raise  # pragma: no cover - the loop above raises
    return polygon_to_xywh(values.reshape(-1, 8)) if polygons else values.reshape(-1, 4)


def read_otb_results(
    tracker_dir: str | os.PathLike[str], sequences: Iterable[str], prefix: str = "",
    box_format: BoxFormat = "xywh",
) -> dict[str, np.ndarray]:
    """Read ``<tracker_dir>/<prefix><sequence>.txt`` for each sequence, as ``x,y,w,h`` boxes
    (converted from ``box_format``).

    Raises:
        DataError: files missing (each expected path named) or malformed (file and line
            number); every problem of the folder in one message, not only the first.
    """
    out = {}
    problems: list[str] = []
    for name in sequences:
        path = otb_result_path(tracker_dir, name, prefix)
        try:
            if not path.is_file():
                raise DataError(f"{path}: no result for sequence {name!r} (expected this file)")
            out[name] = boxes_to_xywh(read_otb_result(path), box_format)
        except DataError as error:
            problems.append(str(error))
    if problems:
        shown = problems[:MAX_PROBLEMS] + (
            [f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS else [])
        raise DataError(shown[0] if len(problems) == 1 else
                        f"{tracker_dir}: {len(problems)} result files missing or malformed:\n"
                        + "\n".join(f"  {line}" for line in shown))
    return out


@dataclass(frozen=True)
class VotLongTermResult:
    """One sequence read from the VOT long-term layout.

    Attributes:
        boxes: ``(N, 4)`` float64 pixels; row 0 (the initialisation marker) and frames without
            a box (a special code or NaN) are NaN.
        confidences: ``(N,)`` float64; an empty line (always frame 1) reads as 0, as in the
            toolkit; ``nan`` stays NaN.
        times: ``(N,)`` float64 seconds, or ``None`` without a time file.
        files: the paths read.
    """

    boxes: np.ndarray
    confidences: np.ndarray
    times: np.ndarray | None
    files: VotLongTermFiles


def _read_values(path: Path, what: str) -> np.ndarray:
    lines = _read_text(path, what).splitlines()
    values = np.zeros(len(lines))
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue  # no value recorded: the toolkit's default, 0
        try:
            values[number - 1] = float(text)
        except ValueError:
            raise DataError(f"{path}, line {number}: {text!r} is not a number") from None
    return values


def _read_vot_regions(path: Path) -> np.ndarray:
    lines = _read_text(path, "result file").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    boxes = np.full((len(lines), 4), np.nan)
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text.startswith("m"):
            raise DataError(f"{path}, line {number}: mask regions are not supported")
        tokens = text.split(",")
        values = [_number(t, path, number, line) for t in tokens]
        if len(values) == 1:
            continue  # a special code (1 = initialisation): no box
        if len(values) != 4:
            raise DataError(
                f"{path}, line {number}: expected a rectangle x,y,w,h or a special code, "
                f"got {len(values)} values"
            )
        boxes[number - 1] = values
    return boxes


def _read_vot_binary(path: Path) -> np.ndarray:
    """Regions from vot-toolkit's binary trajectory format (rectangles and special codes)."""
    try:
        data = path.read_bytes()
        _, count = struct.unpack_from("<hI", data, 0)
        offset = struct.calcsize("<hI")
        boxes = np.full((count, 4), np.nan)
        for frame in range(count):
            (kind,) = struct.unpack_from("<B", data, offset)
            offset += 1
            if kind == 0:  # special code: no box
                struct.unpack_from("<I", data, offset)
                offset += struct.calcsize("<I")
            elif kind == 1:  # rectangle, float32
                boxes[frame] = struct.unpack_from("<ffff", data, offset)
                offset += struct.calcsize("<ffff")
            else:
                raise DataError(
                    f"{path}: frame {frame + 1} holds a region of type {kind} (polygon, mask or "
                    "point); only rectangles are supported"
                )
    except (OSError, struct.error) as error:
        raise DataError(f"{path}: cannot read the binary trajectory: {error}") from None
    return boxes


def read_vot_longterm_result(
    tracker_dir: str | os.PathLike[str], sequence: str
) -> VotLongTermResult:
    """Read one sequence from ``<tracker_dir>/longterm/<sequence>/``.

    Raises:
        DataError: a missing box or confidence file (the message names the expected path), a
            malformed line (file and line number), or a confidence / time file with fewer lines
            than the box file.
    """
    files = vot_longterm_files(tracker_dir, sequence)
    if files.boxes.is_file():
        boxes = _read_vot_regions(files.boxes)
    elif files.boxes_binary.is_file():
        boxes = _read_vot_binary(files.boxes_binary)
    else:
        raise DataError(
            f"{files.boxes}: no result for sequence {sequence!r} (expected this file, or "
            f"{files.boxes_binary.name})"
        )
    confidences = _read_values(files.confidence, "confidence file")
    if len(confidences) < len(boxes):
        raise DataError(
            f"{files.confidence}: {len(confidences)} confidence values for the {len(boxes)} "
            f"frames of {files.boxes.name}"
        )
    times = None
    if files.time.is_file():
        times = _read_values(files.time, "time file")
        if len(times) < len(boxes):
            raise DataError(
                f"{files.time}: {len(times)} times for the {len(boxes)} frames of "
                f"{files.boxes.name}"
            )
        times = times[: len(boxes)]
    return VotLongTermResult(
        boxes=boxes, confidences=confidences[: len(boxes)], times=times, files=files
    )


def read_vot_longterm_results(
    tracker_dir: str | os.PathLike[str], sequences: Iterable[str]
) -> dict[str, VotLongTermResult]:
    """Read each sequence from the VOT long-term layout (see :func:`read_vot_longterm_result`)."""
    return {name: read_vot_longterm_result(tracker_dir, name) for name in sequences}


# --------------------------------------------------------------------------- checks


#: Above this share of boxes with a negative width or height, a result folder is refused: no
#: tracker writes such boxes, but corners read as x,y,w,h (or the reverse) give them.
NEGATIVE_SIZE_LIMIT = 0.5


def check_box_format(boxes: Mapping[str, np.ndarray], tracker_dir: str | os.PathLike[str],
                     box_format: BoxFormat) -> None:
    """Refuse results whose boxes mostly have negative sizes once read as ``box_format``: a
    wrong ``--box-format`` would otherwise score as a very bad tracker (PR 5.9 instead of 50)."""
    rows = [b[np.isfinite(b).all(axis=1)] for b in boxes.values() if len(b)]
    stacked = np.concatenate(rows) if rows else np.empty((0, 4))
    if len(stacked) == 0:
        return
    share = float(np.mean((stacked[:, 2] < 0) | (stacked[:, 3] < 0)))
    if share > NEGATIVE_SIZE_LIMIT:
        other = "xywh" if box_format != "xywh" else "ltrb"
        raise DataError(
            f"{tracker_dir}: {share:.0%} of the boxes have a negative width or height when read "
            f"as --box-format {box_format}; the files are probably in another format (try "
            f"--box-format {other})"
        )


# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class TrackerResults:
    """A tracker's results on a set of sequences, read from its folder.

    Attributes:
        boxes: sequence name -> ``(N, 4)`` ``x, y, w, h`` pixels.
        confidences: sequence name -> ``(N,)`` confidences, or ``None`` for a layout without
            them.
        files: sequence name -> its box file (named in error messages).
    """

    boxes: dict[str, np.ndarray]
    confidences: dict[str, np.ndarray] | None
    files: dict[str, Path]


class ResultLayout(abc.ABC):
    """How one toolkit lays out a tracker's result folder: where each sequence's files go, how
    they are written, read back, and recognised as finished."""

    #: A short name for messages and reports (``"otb"``, ``"vot-longterm"``).
    name: str = ""

    @abc.abstractmethod
    def box_file(self, tracker_dir: str | os.PathLike[str], sequence: str, prefix: str = "") -> Path:
        """The file holding ``sequence``'s boxes (named in error messages)."""

    @abc.abstractmethod
    def write(self, tracker_dir: str | os.PathLike[str], sequence: str, boxes: np.ndarray,
              confidences: np.ndarray, times: np.ndarray | None = None) -> Path:
        """Write one sequence's ``(N, 4)`` boxes, ``(N,)`` confidences and ``(N,)`` seconds per
        frame, atomically and the box file last; returns the box file."""

    @abc.abstractmethod
    def read(self, tracker_dir: str | os.PathLike[str], sequences: Iterable[str],
             prefix: str = "", box_format: BoxFormat = "xywh") -> TrackerResults:
        """Read the results of ``sequences`` (``prefix`` and ``box_format`` describe published
        raw results; a layout that has no such variants refuses them).

        Raises:
            DataError: a missing or malformed file (named).
        """

    def finished(self, tracker_dir: str | os.PathLike[str], sequences: Iterable[str]) -> list[str]:
        """The sequences whose box file exists (written last and atomically, so complete)."""
        return [name for name in sequences if self.box_file(tracker_dir, name).is_file()]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class OtbResults(ResultLayout):
    """``<tracker>/<prefix><sequence>.txt``, one ``x,y,w,h`` line a frame; no confidences."""

    name = "otb"

    def box_file(self, tracker_dir: str | os.PathLike[str], sequence: str, prefix: str = "") -> Path:
        return otb_result_path(tracker_dir, sequence, prefix)

    def write(self, tracker_dir: str | os.PathLike[str], sequence: str, boxes: np.ndarray,
              confidences: np.ndarray, times: np.ndarray | None = None) -> Path:
        return write_otb_result(self.box_file(tracker_dir, sequence), boxes)

    def read(self, tracker_dir: str | os.PathLike[str], sequences: Iterable[str],
             prefix: str = "", box_format: BoxFormat = "xywh") -> TrackerResults:
        names = list(sequences)
        files = {name: self.box_file(tracker_dir, name, prefix) for name in names}
        boxes = read_otb_results(tracker_dir, names, prefix, box_format)
        check_box_format(boxes, tracker_dir, box_format)
        return TrackerResults(boxes=boxes, confidences=None, files=files)


class VotLongTermResults(ResultLayout):
    """``<tracker>/longterm/<sequence>/<sequence>_001.txt`` with its confidence and time files
    (see the module docstring)."""

    name = "vot-longterm"

    def box_file(self, tracker_dir: str | os.PathLike[str], sequence: str, prefix: str = "") -> Path:
        return vot_longterm_files(tracker_dir, sequence).boxes

    def write(self, tracker_dir: str | os.PathLike[str], sequence: str, boxes: np.ndarray,
              confidences: np.ndarray, times: np.ndarray | None = None) -> Path:
        return write_vot_longterm_result(tracker_dir, sequence, boxes, confidences, times).boxes

    def read(self, tracker_dir: str | os.PathLike[str], sequences: Iterable[str],
             prefix: str = "", box_format: BoxFormat = "xywh") -> TrackerResults:
        if prefix or box_format != "xywh":
            raise MmtrackError(f"{tracker_dir}: results are in the VOT long-term layout; --prefix "
                               "and --box-format apply to OTB-style result files only")
        names = list(sequences)
        results = read_vot_longterm_results(tracker_dir, names)
        return TrackerResults(
            boxes={n: r.boxes for n, r in results.items()},
            confidences={n: r.confidences for n, r in results.items()},
            files={n: self.box_file(tracker_dir, n) for n in names},
        )

    def finished(self, tracker_dir: str | os.PathLike[str], sequences: Iterable[str]) -> list[str]:
        return [n for n in sequences if vot_longterm_files(tracker_dir, n).has_boxes()]


#: The layouts of the toolkits the built-in protocols reproduce.
OTB_RESULTS = OtbResults()
VOT_LONGTERM_RESULTS = VotLongTermResults()
