"""What the built-in dataset plugins share.

Read top to bottom: text parsing (ground-truth boxes, flag files, name lists) with errors that
name dataset, sequence, file and line; the split lists and attribute tables shipped in
``plugins/splits/``; frame-folder scanning; and :class:`BenchmarkDataset`, the base class that
turns a benchmark's folder conventions (class attributes) into ``list_sequences``,
``load_sequence`` and ``load_groundtruth``.

Conventions every plugin follows:

- ``boxes`` hold the file's values as ``x, y, w, h`` pixels (corner formats converted); an absent
  target keeps the row it was written with (``0,0,0,0`` in LasHeR, ``nan`` in DepthTrack), so a
  protocol that looks at raw values (LasHeR counts a frame valid only when all four are > 0) still
  can. Rows the dataset does not annotate at all (VTUAV between every 10th frame) are NaN.
- ``visible`` is False where the target is absent: a non-finite row, ``w <= 0`` or ``h <= 0``,
  or the dataset's own absence flag.
- Listing reads no image and stats no frame: one ``os.scandir`` of the split folder; frame
  folders are scanned once each (one ``os.scandir``, cached per plugin instance) when a sequence
  is loaded.
"""

from __future__ import annotations

import abc
import functools
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Iterable, Literal, Mapping

import numpy as np
from pydantic import Field

from mmtrack_kd.data import DataError, DatasetOptions, DatasetPlugin, Sequence, polygon_to_xywh

#: File extensions counted as frames (compared lower-case).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
)

_SEPARATORS = re.compile(r"[,;\s]+")


class DatasetWarning(UserWarning):
    """A known defect of a dataset that the loader repaired (e.g. surplus ground-truth rows)."""


def natural_key(name: str) -> tuple[list[Any], str]:
    """Sort key that orders ``frame2`` before ``frame10`` and ignores case (ties by the name)."""
    parts = re.split(r"(\d+)", name)
    return [int(part) if index % 2 else part.casefold() for index, part in enumerate(parts)], name


# --------------------------------------------------------------------------- text files


def read_text(path: Path, where: str) -> str:
    """A text file's content (UTF-8, BOM stripped, undecodable bytes replaced so that the parser
    reports the line); a missing or unreadable file raises DataError naming it."""
    try:
        return Path(path).read_text(encoding="utf-8-sig", errors="replace")
    except FileNotFoundError:
        raise DataError(f"{where}: file {path} does not exist") from None
    except OSError as error:
        raise DataError(f"{where}: cannot read {path}: {error.strerror or error}") from None


def _content_lines(text: str) -> list[str]:
    """Lines of ``text`` without the blank lines at its end (a trailing newline is common)."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _box_row(line: str, number: int, path: Path, where: str, corners: bool) -> list[float]:
    fields = [value for value in _SEPARATORS.split(line.strip()) if value]
    if len(fields) not in (4, 8):
        expected = "x1 y1 x2 y2" if corners else "x, y, w, h"
        raise DataError(
            f"{where}: {path} line {number}: expected 4 values ({expected}), found "
            f"{len(fields)}: {line.strip()!r}"
        )
    try:
        values = [float(value) for value in fields]
    except ValueError:
        raise DataError(
            f"{where}: {path} line {number}: not a number in {line.strip()!r}"
        ) from None
    if len(values) == 8:  # a VOT polygon: its axis-aligned bounding box
        return polygon_to_xywh(np.array([values]))[0].tolist()
    if corners:
        x1, y1, x2, y2 = values
        return [x1, y1, x2 - x1, y2 - y1]
    return values


def _suspicious_rows(boxes: np.ndarray, nan_rows: bool) -> list[tuple[int, str]]:
    """``(line number, why)`` of rows no annotation tool writes on purpose: a negative width or
    height, an infinity, a row only partly NaN, and (unless the layout marks an absent target
    with NaN) a NaN row. They are read as "target absent", which moves the scores."""
    out = []
    with np.errstate(invalid="ignore"):
        for number, row in enumerate(boxes, start=1):
            nan = np.isnan(row)
            if np.isinf(row).any():
                out.append((number, "an infinite value"))
            elif nan.any() and not nan.all():
                out.append((number, "a row only partly NaN"))
            elif nan.all() and not nan_rows:
                out.append((number, "a NaN row (this layout marks an absent target otherwise)"))
            elif row[2] < 0 or row[3] < 0:
                out.append((number, f"a negative size ({row[2]:g} x {row[3]:g})"))
    return out


def parse_boxes(path: Path, where: str, *, corners: bool = False, nan_rows: bool = False) -> np.ndarray:
    """Read a ground-truth file with one box a line.

    Fields may be separated by commas, spaces, tabs or semicolons; ``nan`` is accepted (an
    absent target in VOT layouts); an 8-value line (a VOT polygon) becomes its bounding box.

    Args:
        path: the file.
        where: ``dataset/sequence`` for messages.
        corners: the file holds ``x1 y1 x2 y2`` (GTOT); converted with ``w = x2 - x1``,
            ``h = y2 - y1`` (no +1, as the GTOT toolkit does).
        nan_rows: the layout writes ``nan`` rows for an absent target (VOT, DepthTrack).
            Otherwise a NaN row, and in any layout a negative size, an infinity or a partly
            NaN row, is read as "absent" with a :class:`DatasetWarning` naming file and lines.

    Returns:
        ``(R, 4)`` float64 ``x, y, w, h`` in pixels, one row a line of the file.

    Raises:
        DataError: a missing or empty file, or a malformed line (named by its number).
    """
    lines = _content_lines(read_text(path, where))
    if not lines:
        raise DataError(f"{where}: ground-truth file {path} is empty")
    boxes = np.empty((len(lines), 4), dtype=np.float64)
    for number, line in enumerate(lines, start=1):
        boxes[number - 1] = _box_row(line, number, path, where, corners)
    suspicious = _suspicious_rows(boxes, nan_rows)
    if suspicious:
        shown = "; ".join(f"line {number}: {why}" for number, why in suspicious[:3])
        more = f"; and {len(suspicious) - 3} more" if len(suspicious) > 3 else ""
        warnings.warn(f"{where}: {path}: {len(suspicious)} box(es) read as target absent: "
                      f"{shown}{more}", DatasetWarning, stacklevel=2)
    return boxes


def parse_line_flags(path: Path, where: str) -> np.ndarray:
    """A file with one integer flag a line (the first field of each line), e.g. VisEvent's
    ``absent_label.txt`` or a VOT ``.tag`` file; returns ``(R,)`` int64."""
    lines = _content_lines(read_text(path, where))
    values = np.empty(len(lines), dtype=np.int64)
    for number, line in enumerate(lines, start=1):
        fields = [value for value in _SEPARATORS.split(line.strip()) if value]
        try:
            values[number - 1] = int(float(fields[0]))
        except (IndexError, ValueError):
            raise DataError(
                f"{where}: {path} line {number}: expected a 0/1 flag, found {line.strip()!r}"
            ) from None
    return values


def parse_flag_row(path: Path, where: str, names: tuple[str, ...]) -> dict[str, bool]:
    """A file of ``len(names)`` 0/1 flags (comma- or space-separated, e.g. LasHeR's
    ``AttriSeqsTxt/<sequence>.txt``) as ``{name: flag}``."""
    text = read_text(path, where)
    fields = [value for value in _SEPARATORS.split(text.strip()) if value]
    if len(fields) != len(names) or any(value not in ("0", "1") for value in fields):
        raise DataError(
            f"{where}: attribute file {path} must hold {len(names)} flags 0/1 "
            f"({', '.join(names)}), found {text.strip()[:80]!r}"
        )
    return {name: value == "1" for name, value in zip(names, fields, strict=True)}


def parse_name_list(text: str) -> list[str]:
    """Sequence names, one a line; blank lines, ``#`` comments and repeats are left out. Names
    keep their quotes and backticks (LasHeR has ``boy`shead`` and ``leftgirl'swhitebag``)."""
    names = (line.strip() for line in text.splitlines())
    return list(dict.fromkeys(name for name in names if name and not name.startswith("#")))


#: mmtrack-kd's own per-sequence attribute file (written by the synthetic generator, accepted
#: from users' data): the names of the attributes the sequence has, one a line.
ATTRIBUTES_FILE = "attributes.txt"


def read_attribute_list(
    folder: Path, where: str, vocabulary: tuple[str, ...] = ()
) -> dict[str, bool] | None:
    """Flags from ``folder/attributes.txt`` (``vocabulary`` names not listed are False), or None
    when the sequence has no such file."""
    path = folder / ATTRIBUTES_FILE
    if not path.is_file():
        return None
    flags = dict.fromkeys(vocabulary, False)
    flags.update(dict.fromkeys(parse_name_list(read_text(path, where)), True))
    return flags


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: rows that are finite with ``w > 0`` and ``h > 0``."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


# --------------------------------------------------------------------------- package data


def packaged_list(filename: str) -> list[str]:
    """A split list shipped in ``plugins/splits/`` (see its README for the sources)."""
    return list(_packaged_list(filename))


@functools.cache
def _packaged_list(filename: str) -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("splits", filename).read_text(encoding="utf-8")
    return tuple(parse_name_list(text))


@functools.cache
def attribute_table(filename: str, names: tuple[str, ...]) -> Mapping[str, Mapping[str, bool]]:
    """A shipped attribute table (``name<TAB>f1,f2,...`` a line) as ``{sequence: {attr: flag}}``."""
    text = resources.files(__package__).joinpath("splits", filename).read_text(encoding="utf-8")
    table: dict[str, dict[str, bool]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        sequence, _, flags = line.rstrip("\r\n").partition("\t")
        values = flags.split(",")
        if len(values) != len(names):  # a packaging bug, not a user error
            raise ValueError(f"plugins/splits/{filename}: {sequence!r} has {len(values)} flags")
        table[sequence] = {name: value == "1" for name, value in zip(names, values, strict=True)}
    return table


# --------------------------------------------------------------------------- folders


def scan_images(folder: Path, suffixes: frozenset[str] = IMAGE_EXTENSIONS) -> tuple[str, ...]:
    """Names of the frame files in ``folder`` (``suffixes``: images by default; one
    ``os.scandir``), naturally sorted; hidden files (``.DS_Store``, ``._x.jpg``) are left out.
    OSError (e.g. a missing folder) propagates."""
    with os.scandir(folder) as entries:
        names = [
            entry.name
            for entry in entries
            if not entry.name.startswith(".")
            and os.path.splitext(entry.name)[1].lower() in suffixes
        ]
    names.sort(key=natural_key)
    return tuple(names)


def first_file(folder: Path, names: Iterable[str]) -> Path | None:
    """The first of ``names`` that is a file in ``folder``, or None."""
    for name in names:
        path = folder / name
        if path.is_file():
            return path
    return None


def require_file(folder: Path, names: tuple[str, ...], where: str, what: str) -> Path:
    """Like :func:`first_file`, but a missing file is a DataError that says what was looked for."""
    path = first_file(folder, names)
    if path is None:
        raise DataError(f"{where}: no {what} file in {folder} (looked for {', '.join(names)})")
    return path


# --------------------------------------------------------------------------- base class


class BenchmarkOptions(DatasetOptions):
    """Options every built-in benchmark plugin accepts."""

    list_source: Literal["auto", "official", "disk"] = Field(
        "auto",
        description="Where the split's sequence names come from. auto: the dataset's own list "
        "file on disk (e.g. testingsetList.txt), else the official list shipped with mmtrack-kd, "
        "else the sequence folders present; official: the shipped list only; disk: the list "
        "file on disk, else the folders.",
    )
    skip_missing: bool = Field(
        False,
        description="Leave out, with a warning, sequences that the split's list names but that "
        "are not on disk (a partial download), instead of failing.",
    )


@dataclass
class Annotations:
    """Ground truth of one sequence as its files give it, before it is aligned with frames.

    Attributes:
        boxes: ``(R, 4)`` x, y, w, h, one row a line of the main ground-truth file.
        visible: ``(R,)`` bool.
        source: the main ground-truth file, named in messages.
        modality_boxes: stream name -> ``(R, 4)`` per-modality ground truth.
        attributes: per-sequence challenge flags.
    """

    boxes: np.ndarray
    visible: np.ndarray
    source: Path
    modality_boxes: dict[str, np.ndarray] = field(default_factory=dict)
    attributes: dict[str, bool] = field(default_factory=dict)

    def head(self, n: int) -> Annotations:
        """The first ``n`` rows."""
        return Annotations(
            self.boxes[:n],
            self.visible[:n],
            self.source,
            {stream: boxes[:n] for stream, boxes in self.modality_boxes.items()},
            self.attributes,
        )


class BenchmarkDataset(DatasetPlugin):
    """A benchmark stored as one folder a sequence, described by class attributes.

    Subclasses set the :class:`DatasetPlugin` attributes plus:

    - ``split_folders``: split -> folders (relative to the root) that may hold its sequences,
      tried in order; ``"."`` (the root itself) is the usual last resort.
    - ``list_files``: split -> the dataset's own list files, looked for on disk (in the split
      folder, its parent and the root).
    - ``packaged_lists``: split -> file in ``plugins/splits/`` naming its sequences (official
      lists shipped with mmtrack-kd), used when there is no list file on disk.
    - ``markers``: files whose presence makes a folder a sequence (its ground truth).
    - ``stream_folders``: stream -> frame folder names tried in a sequence folder.
    - ``surplus_rows``: ``"error"``, or ``"truncate"`` where the real data is known to carry
      more ground-truth rows than frames (cut off with a :class:`DatasetWarning`).

    and implement :meth:`annotations`. Without a list, a split is every folder (or, one level
    down, every folder of a pack folder such as VTUAV's ``test_ST_001/``) holding a marker.
    """

    Options: ClassVar[type[DatasetOptions]] = BenchmarkOptions
    split_folders: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    packaged_lists: ClassVar[Mapping[str, str]] = {}
    list_files: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    markers: ClassVar[tuple[str, ...]] = ()
    stream_folders: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    surplus_rows: ClassVar[str] = "error"

    def __init__(self, options: DatasetOptions | None = None) -> None:
        super().__init__(options)
        self._split_dir: Path | None = None
        self._split_list: tuple[list[str] | None, str] | None = None
        self._index: dict[str, Path] | None = None
        # Frame folders are scanned once each; keep the most recent ones (names only).
        self._scan = functools.lru_cache(maxsize=256)(scan_images)

    def __getstate__(self) -> dict[str, Any]:
        # `evaluate --workers N` sends the plugin to each worker: a cache wrapper does not
        # pickle, and a worker makes its own
        state = dict(self.__dict__)
        del state["_scan"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._scan = functools.lru_cache(maxsize=256)(scan_images)

    # ----------------------------------------------------------------- where things are

    def where(self, name: str) -> str:
        """``dataset/sequence`` for messages."""
        return f"{self.name}/{name}"

    def split_folder_candidates(self) -> tuple[str, ...]:
        """Folders (relative to the root) that may hold the chosen split, in order."""
        return self.split_folders.get(self.options.split, (".",))

    def split_dir(self) -> Path:
        """The folder that holds the chosen split's sequences."""
        if self._split_dir is None:
            candidates = self.split_folder_candidates()
            for relative in candidates:
                folder = self.root if relative == "." else self.root / relative
                if folder.is_dir():
                    self._split_dir = folder
                    break
            else:
                looked = ", ".join(f"{c}/" for c in candidates)
                raise DataError(
                    f"dataset {self.name}: split {self.options.split!r} not found under "
                    f"{self.root} (looked for {looked})\n{self.layout}".rstrip()
                )
        return self._split_dir

    def packaged_list_name(self) -> str | None:
        """The shipped list file of the chosen split, if any."""
        return self.packaged_lists.get(self.options.split)

    def list_file_names(self) -> tuple[str, ...]:
        """List files of the chosen split looked for on disk."""
        return self.list_files.get(self.options.split, ())

    def disk_list_file(self) -> Path | None:
        """The dataset's own list file of the chosen split, looked for in the split folder, the
        folder that holds it (LasHeR keeps its lists beside ``trainingset/``) and the root."""
        split_dir = self.split_dir()
        parent = [split_dir.parent] if split_dir != self.root else []  # never above the root
        bases = list(dict.fromkeys([split_dir, *parent, self.root]))
        for filename in self.list_file_names():
            found = first_file_in(bases, filename)
            if found is not None:
                return found
        return None

    def split_list(self) -> tuple[list[str] | None, str]:
        """The chosen split's sequence names and where they came from, or ``(None, "")`` when
        the split is whatever sequence folders are on disk (see ``list_source``)."""
        if self._split_list is None:
            source = self.options.list_source
            packaged = self.packaged_list_name()
            if source == "official" and not packaged:
                raise DataError(
                    f"dataset {self.name}: no official list of split {self.options.split!r} "
                    "ships with mmtrack-kd; use list_source `auto` or `disk`"
                )
            found = self.disk_list_file() if source != "official" else None
            if found is not None:
                names = parse_name_list(read_text(found, f"dataset {self.name}"))
                self._split_list = (names, str(found))
            elif packaged and source != "disk":
                self._split_list = (
                    packaged_list(packaged),
                    f"the official list shipped with mmtrack-kd (plugins/splits/{packaged})",
                )
            else:
                self._split_list = (None, "")
        return self._split_list

    def is_sequence_dir(self, folder: Path) -> bool:
        """Whether ``folder`` holds one of the marker (ground-truth) files."""
        return any(os.path.isfile(os.path.join(folder, marker)) for marker in self.markers)

    def other_split_folders(self) -> set[str]:
        """Top-level folder names that hold other splits (``test``, ``test_subset``, ...)."""
        current = set(self.split_folder_candidates())
        return {
            candidate.split("/")[0]
            for candidates in self.split_folders.values()
            for candidate in candidates
            if candidate != "." and candidate not in current
        }

    def index(self) -> dict[str, Path]:
        """Sequence name -> folder for the chosen split folder (one scandir, cached).

        When the split folder is the root itself, folders of other splits found there (a
        ``test/`` beside train sequences) are neither sequences nor packs, so one split never
        lists another's sequences."""
        if self._index is None:
            listed, _ = self.split_list()
            wanted = set(listed or ())
            split_dir = self.split_dir()
            reserved = self.other_split_folders() if split_dir == self.root else set()
            index: dict[str, Path] = {}
            for entry in self._subfolders(split_dir):
                if entry.name in reserved and entry.name not in wanted:
                    continue
                path = Path(entry.path)
                if entry.name in wanted or self.is_sequence_dir(path):
                    self._add(index, entry.name, path)
                    continue
                # A pack folder (VTUAV's test_ST_001/, split archives) holding sequences.
                for sub in self._subfolders(path):
                    if sub.name in wanted or self.is_sequence_dir(Path(sub.path)):
                        self._add(index, sub.name, Path(sub.path))
            self._index = index
        return self._index

    def _subfolders(self, folder: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as entries:
                return [e for e in entries if not e.name.startswith(".") and e.is_dir()]
        except OSError as error:
            raise DataError(
                f"dataset {self.name}: cannot list {folder}: {error.strerror or error}"
            ) from None

    def _add(self, index: dict[str, Path], name: str, path: Path) -> None:
        if name in index and index[name] != path:
            raise DataError(
                f"dataset {self.name}: two sequence folders are named {name!r}: {index[name]} "
                f"and {path}; keep one"
            )
        index[name] = path

    def sequence_dir(self, name: str) -> Path:
        """The folder of sequence ``name`` in the chosen split."""
        folder = self.index().get(name)
        if folder is None:
            raise DataError(
                f"{self.where(name)}: no such sequence folder under {self.split_dir()} "
                f"(split {self.options.split!r})"
            )
        return folder

    # ----------------------------------------------------------------- listing

    def list_sequences(self) -> list[str]:
        """Names of the chosen split's sequences (restricted to ``options.sequences``), in the
        official list's order or natural order; reads no image and stats no frame."""
        listed, source = self.split_list()
        index = self.index()
        split = self.options.split
        if listed is not None and not listed:
            raise DataError(f"dataset {self.name}: {source} names no sequences")
        if listed is None and not index:
            raise DataError(
                f"dataset {self.name}: no sequences of split {split!r} in {self.split_dir()} "
                f"(a sequence folder holds {' or '.join(self.markers)})\n{self.layout}".rstrip()
            )
        names = listed if listed is not None else sorted(index, key=natural_key)
        if self.options.sequences is not None:
            known = set(names)
            unknown = [name for name in self.options.sequences if name not in known]
            if unknown:
                raise DataError(
                    f"dataset {self.name}: split {split!r} has no sequence "
                    + ", ".join(repr(name) for name in unknown[:10])
                    + (" ..." if len(unknown) > 10 else "")
                )
            names = list(dict.fromkeys(self.options.sequences))
        missing = [name for name in names if name not in index]
        if missing:
            shown = ", ".join(repr(name) for name in missing[:10]) + (
                " ..." if len(missing) > 10 else ""
            )
            message = (
                f"dataset {self.name}: {len(missing)} of the {len(names)} sequences of split "
                f"{split!r} (listed in {source}) are not under {self.split_dir()}: {shown}"
            )
            if not self.options.skip_missing:
                raise DataError(
                    message + ". Download them, restrict `sequences`, set `skip_missing: true`, "
                    "or choose another `list_source`."
                )
            warnings.warn(message + "; they are left out", DatasetWarning, stacklevel=2)
            names = [name for name in names if name in index]
        return list(names)

    # ----------------------------------------------------------------- loading

    def frame_suffixes(self, stream: str) -> frozenset[str]:
        """Suffixes of the frame files of ``stream``: images (a benchmark's layout)."""
        return IMAGE_EXTENSIONS

    @abc.abstractmethod
    def annotations(self, name: str, folder: Path, where: str) -> Annotations:
        """The sequence's ground truth, attributes and visibility as its files give them."""

    def frames(self, name: str, folder: Path) -> dict[str, tuple[Path, ...]]:
        """Stream -> frame paths, paired by natural order (file names need not match across
        streams: LasHeR mixes patterns); a count mismatch is a DataError naming the folders."""
        where = self.where(name)
        found: dict[str, tuple[Path, tuple[str, ...]]] = {}
        for stream, candidates in self.stream_folders.items():
            for sub in candidates:
                directory = folder / sub
                try:
                    names = self._scan(directory, self.frame_suffixes(stream))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError as error:
                    raise DataError(
                        f"{where}: cannot list {directory}: {error.strerror or error}"
                    ) from None
                break
            else:
                looked = ", ".join(f"{c}/" for c in candidates)
                raise DataError(
                    f"{where}: no {stream} frame folder in {folder} (looked for {looked})"
                )
            if not names:
                suffixes = self.frame_suffixes(stream)
                kind = "images" if suffixes == IMAGE_EXTENSIONS else "frames"
                raise DataError(
                    f"{where}: frame folder {directory} holds no {kind} "
                    f"({', '.join(sorted(suffixes))})"
                )
            found[stream] = (directory, names)
        counts = {len(names) for _, names in found.values()}
        if len(counts) > 1:
            detail = ", ".join(f"{d} has {len(n)}" for d, n in found.values())
            raise DataError(f"{where}: the frame folders do not pair up: {detail} images")
        return {
            stream: tuple(directory / name for name in names)
            for stream, (directory, names) in found.items()
        }

    def align(self, annotations: Annotations, n_frames: int, where: str) -> Annotations:
        """Match ground-truth rows to ``n_frames`` frames (one row a frame by default)."""
        rows = len(annotations.boxes)
        if rows == n_frames:
            return annotations
        if rows > n_frames and self.surplus_rows == "truncate":
            warnings.warn(
                f"{where}: {annotations.source} has {rows} ground-truth rows for {n_frames} "
                f"frames (a known defect of {self.name}); the last {rows - n_frames} are cut off",
                DatasetWarning,
                stacklevel=3,
            )
            return annotations.head(n_frames)
        raise DataError(
            f"{where}: {annotations.source} has {rows} ground-truth rows but the sequence has "
            f"{n_frames} frames"
        )

    def align_without_frames(self, annotations: Annotations, where: str) -> Annotations:
        """Ground truth per frame when the frames are not there (one row a frame by default)."""
        return annotations

    def extras(self, folder: Path, n_frames: int, where: str) -> dict[str, Any]:
        """Further :class:`Sequence` fields (``raw``, ``frame_times``); none by default."""
        return {}

    def load_sequence(self, name: str) -> Sequence:
        """One sequence with paired frame paths, ground truth, visibility and attributes."""
        where = self.where(name)
        folder = self.sequence_dir(name)
        frames = self.frames(name, folder)
        n_frames = len(next(iter(frames.values())))
        annotations = self.align(self.annotations(name, folder, where), n_frames, where)
        return Sequence(
            name=name,
            dataset=self.name,
            frames=frames,
            boxes=annotations.boxes,
            visible=annotations.visible,
            modality_boxes=annotations.modality_boxes,
            attributes=annotations.attributes,
            path=folder,
            **self.extras(folder, n_frames, where),
        )

    def load_groundtruth(self, name: str) -> Sequence:
        """The sequence's ground truth without its frames: a :class:`Sequence` with empty
        ``frames``, for scoring results when only the annotation files are on disk. The number
        of frames is taken from the ground truth (see each plugin for datasets where they
        differ, e.g. VTUAV)."""
        where = self.where(name)
        folder = self.sequence_dir(name)
        annotations = self.align_without_frames(self.annotations(name, folder, where), where)
        return Sequence(
            name=name,
            dataset=self.name,
            frames={},
            boxes=annotations.boxes,
            visible=annotations.visible,
            modality_boxes=annotations.modality_boxes,
            attributes=annotations.attributes,
            path=folder,
        )


def first_file_in(folders: Iterable[Path], filename: str) -> Path | None:
    """``folder / filename`` for the first folder where it is a file, or None."""
    for folder in folders:
        path = folder / filename
        if path.is_file():
            return path
    return None


def expand_every(step: int, rows: int) -> int:
    """Frames spanned by ``rows`` annotations taken every ``step`` frames from frame 0, ending on
    an annotated frame: ``step * (rows - 1) + 1``."""
    return step * (rows - 1) + 1 if rows else 0


def rows_for(step: int, n_frames: int) -> int:
    """Annotated frames (0, step, 2 step, ...) among ``n_frames``: ``ceil(n_frames / step)``."""
    return math.ceil(n_frames / step)
