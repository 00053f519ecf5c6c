"""VTUAV: visible-thermal UAV tracking, short-term and long-term, annotated every 10th frame.

How ground-truth rows map to frames (from the public VTUAV loaders: their training loaders
repeat each row over 10 frames and require ``10 * rows >= frames``; the protocol scores frames
1, 11, 21, ...): row ``k`` of ``rgb.txt`` / ``ir.txt`` is the box of frame ``10 k`` (0-based),
so a sequence of ``N`` frames carries ``ceil(N / 10)`` rows. In a loaded :class:`Sequence` the
other frames have NaN boxes and ``visible`` False. A file with one row a frame (``N`` rows) is
taken as dense. Surplus rows are cut off with a warning; too few rows is an error. Without the
frames (:meth:`VTUAV.load_groundtruth`) a sequence is taken to end on its last annotated frame:
``N = 10 (rows - 1) + 1``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from mmtrack_kd import hookimpl
from mmtrack_kd.data import DataError, root_variable
from plugins.common import (
    Annotations,
    BenchmarkDataset,
    BenchmarkOptions,
    DatasetWarning,
    expand_every,
    parse_boxes,
    require_file,
    rows_for,
    valid_boxes,
)

#: Frames between two annotated frames.
ANNOTATION_STEP = 10

_TERMS = {"st": ("short-term", "ST"), "lt": ("long-term", "LT")}


class VTUAVOptions(BenchmarkOptions):
    """Options of the VTUAV plugin."""

    subset: Literal["st", "lt"] = Field(
        "st", description="Short-term (st: 176 test sequences) or long-term (lt: 74) subset."
    )


class VTUAVFixedOptions(BenchmarkOptions):
    """Options of the ``vtuav-st`` / ``vtuav-lt`` plugins (the subset is in the name)."""

    split: str = Field("test", description="Which split to list: `test` (default) or `train`.")


class VTUAV(BenchmarkDataset):
    """VTUAV sequences: ``rgb/`` and ``ir/`` frames (``000001.jpg``, ...), ``rgb.txt`` and
    ``ir.txt`` space-separated ``x y w h`` rows, one every 10th frame (module docstring).

    ``boxes`` are the RGB ones; ``modality_boxes`` holds both (``rgb``, ``thermal``) for the
    min-error / max-overlap protocol. Sequences may sit directly in the subset folder or in the
    pack folders of the download (``test_ST_001/animal_001``); names are the bare sequence names
    (``animal_001``), as result files are named. Test lists ship with mmtrack-kd; the training
    split is every sequence folder on disk.
    """

    name: ClassVar[str] = "vtuav"
    Options = VTUAVOptions
    modalities: tuple[str, ...] = ("rgb", "thermal")
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    protocol: str = "vtuav"
    description: ClassVar[str] = "VTUAV RGB-T UAV benchmark (short-term / long-term subsets)"
    layout: ClassVar[str] = """\
VTUAV (https://zhang-pengyu.github.io/DUT-VTUAV/): unpack the archives so that the root holds
  test_ST/ and test_LT/ (or test/short-term/, test/long-term/), train_ST/ and train_LT/
each with <sequence>/ folders, directly or inside the pack folders of the download
(test_ST_001/animal_001/), each with rgb/*.jpg, ir/*.jpg, rgb.txt and ir.txt.
Pick the subset with the `subset` option (st, lt) or the vtuav-st / vtuav-lt datasets."""

    packaged_lists: ClassVar[dict[str, str]] = {}
    markers: ClassVar[tuple[str, ...]] = ("rgb.txt",)
    stream_folders: ClassVar[dict[str, tuple[str, ...]]] = {"rgb": ("rgb",), "thermal": ("ir",)}

    @property
    def subset(self) -> str:
        """``st`` (short-term) or ``lt`` (long-term)."""
        return self.options.subset

    def split_folder_candidates(self) -> tuple[str, ...]:
        """``<split>_ST``, ``<split>/short-term``, ... for the chosen split and subset."""
        return subset_folders(self.options.split, self.subset)

    def other_split_folders(self) -> set[str]:
        """Top-level folders of the other split / subset combinations."""
        current = set(self.split_folder_candidates())
        return {
            candidate.split("/")[0]
            for split in self.splits
            for subset in _TERMS
            for candidate in subset_folders(split, subset)
            if candidate != "." and candidate not in current
        }

    def packaged_list_name(self) -> str | None:
        """The shipped test lists (176 short-term, 74 long-term sequences)."""
        return f"vtuav_test_{self.subset}.txt" if self.options.split == "test" else None

    def annotations(self, name: str, folder: Path, where: str) -> Annotations:
        """The raw rows of ``rgb.txt`` and ``ir.txt`` (one every 10th frame)."""
        rgb_path = require_file(folder, ("rgb.txt",), where, "ground-truth")
        thermal_path = require_file(folder, ("ir.txt",), where, "thermal ground-truth")
        rgb = parse_boxes(rgb_path, where)
        thermal = parse_boxes(thermal_path, where)
        if len(thermal) != len(rgb):
            raise DataError(
                f"{where}: {thermal_path} has {len(thermal)} rows but {rgb_path} has {len(rgb)}"
            )
        return Annotations(
            rgb, valid_boxes(rgb) | valid_boxes(thermal), rgb_path, {"rgb": rgb, "thermal": thermal}
        )

    def align(self, annotations: Annotations, n_frames: int, where: str) -> Annotations:
        """Place row ``k`` on frame ``10 k``; NaN and not visible elsewhere."""
        rows = len(annotations.boxes)
        if rows == n_frames:  # dense annotation: one row a frame
            return annotations
        expected = rows_for(ANNOTATION_STEP, n_frames)
        if rows < expected:
            raise DataError(
                f"{where}: {annotations.source} has {rows} rows but {n_frames} frames need "
                f"{expected} (one every {ANNOTATION_STEP}th frame)"
            )
        if rows > expected:
            warnings.warn(
                f"{where}: {annotations.source} has {rows} rows for {n_frames} frames (one every "
                f"{ANNOTATION_STEP}th frame needs {expected}); the last {rows - expected} are "
                "cut off",
                DatasetWarning,
                stacklevel=3,
            )
            annotations = annotations.head(expected)
        return spread(annotations, n_frames, ANNOTATION_STEP)

    def align_without_frames(self, annotations: Annotations, where: str) -> Annotations:
        """Spread the rows over ``10 (rows - 1) + 1`` frames."""
        rows = len(annotations.boxes)
        return spread(annotations, expand_every(ANNOTATION_STEP, rows), ANNOTATION_STEP)


def subset_folders(split: str, subset: str) -> tuple[str, ...]:
    """Folders (relative to the root) that may hold a split's subset, in order."""
    long_name, short = _TERMS[subset]
    candidates = [
        f"{split}_{short}",
        f"{split}/{split}_{short}",
        f"{split}/{long_name}",
        f"{split}/{short}",
    ]
    if split == "test":  # ViPT's layout: the root is VTUAV/test
        candidates.append(long_name)
    return (*candidates, ".")


def spread(annotations: Annotations, n_frames: int, step: int) -> Annotations:
    """Annotations of frames ``0, step, 2 step, ...`` laid out over ``n_frames`` frames."""
    index = np.arange(len(annotations.boxes)) * step

    def place(rows: np.ndarray) -> np.ndarray:
        boxes = np.full((n_frames, 4), np.nan)
        boxes[index] = rows
        return boxes

    visible = np.zeros(n_frames, dtype=bool)
    visible[index] = annotations.visible
    return Annotations(
        place(annotations.boxes),
        visible,
        annotations.source,
        {stream: place(rows) for stream, rows in annotations.modality_boxes.items()},
        annotations.attributes,
    )


class _VTUAVSubset(VTUAV):
    """A VTUAV subset under its own name; its root may also come from MMTRACK_KD_VTUAV_ROOT."""

    Options = VTUAVFixedOptions
    fixed_subset: ClassVar[str]

    @property
    def subset(self) -> str:
        """The subset this plugin is named after."""
        return self.fixed_subset

    def resolve_root(self) -> Path:
        """The root from the options, ``MMTRACK_KD_<NAME>_ROOT``, or ``MMTRACK_KD_VTUAV_ROOT``."""
        shared = os.environ.get(root_variable(VTUAV.name))
        if self.options.root is None and not os.environ.get(root_variable(self.name)) and shared:
            self.options = self.options.model_copy(update={"root": Path(shared)})
        return super().resolve_root()


class VTUAVShortTerm(_VTUAVSubset):
    """VTUAV's short-term subset (176 test sequences)."""

    name: ClassVar[str] = "vtuav-st"
    fixed_subset: ClassVar[str] = "st"
    description: ClassVar[str] = "VTUAV short-term subset (176 test sequences)"


class VTUAVLongTerm(_VTUAVSubset):
    """VTUAV's long-term subset (74 test sequences)."""

    name: ClassVar[str] = "vtuav-lt"
    fixed_subset: ClassVar[str] = "lt"
    description: ClassVar[str] = "VTUAV long-term subset (74 test sequences)"


@hookimpl
def mmtrack_kd_register_datasets(register):
    """Register VTUAV (subset as an option) and its subsets vtuav-st and vtuav-lt."""
    register(VTUAV)
    register(VTUAVShortTerm)
    register(VTUAVLongTerm)
