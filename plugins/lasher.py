"""LasHeR: the large-scale RGB-T tracking benchmark (979 training, 245 test sequences)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from mmtrack_kd import hookimpl
from mmtrack_kd.data import DataError
from plugins.common import (
    Annotations,
    BenchmarkDataset,
    BenchmarkOptions,
    attribute_table,
    parse_boxes,
    parse_flag_row,
    require_file,
    valid_boxes,
)

#: LasHeR's 19 challenge attributes, in the order of its ``Attributes_order.txt``.
LASHER_ATTRIBUTES: tuple[str, ...] = (
    "NO", "PO", "TO", "HO", "MB", "LI", "HI", "AIV", "LR", "DEF",
    "BC", "SA", "CM", "TC", "FL", "OV", "FM", "SV", "ARC",
)  # fmt: skip


class LasHeROptions(BenchmarkOptions):
    """Options of the LasHeR plugin."""

    attributes_dir: Path | None = Field(
        None,
        description="Folder of LasHeR's per-sequence attribute files (AttriSeqsTxt/<sequence>.txt, "
        "19 flags). When unset, <root>/AttriSeqsTxt or <root>/LasHeR_Attributes/AttriSeqsTxt is "
        "used if present, otherwise the table shipped with mmtrack-kd.",
    )


class LasHeR(BenchmarkDataset):
    """LasHeR RGB-T sequences: ``visible/`` and ``infrared/`` frames, ``visible.txt`` boxes.

    Frame file names differ between sequences (``v000001.jpg`` / ``i000001.jpg`` in most, other
    patterns in some, ``000000.jpg`` after some users' renaming), so each folder is listed,
    sorted naturally and paired by position; different counts are an error naming the sequence.
    Ground truth is ``visible.txt`` (``init.txt`` when it is missing; ``infrared.txt`` holds the
    same boxes): comma-separated integers ``x,y,w,h``; an absent target is ``0,0,0,0`` or
    ``x,y,0,0`` and is kept as written, with ``visible`` False.
    """

    name: ClassVar[str] = "lasher"
    Options = LasHeROptions
    modalities: tuple[str, ...] = ("rgb", "thermal")
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    protocol: str = "lasher"
    attribute_names: tuple[str, ...] = LASHER_ATTRIBUTES
    description: ClassVar[str] = "LasHeR RGB-T benchmark (979 train / 245 test sequences)"
    layout: ClassVar[str] = """\
LasHeR (https://github.com/mmic-lcl/Datasets-and-benchmark-code): unpack the training and
testing sets so that the root holds
  trainingset/<sequence>/   (or TrainingSet/trainingset/, train/)
  testingset/<sequence>/    (or TestingSet/testingset/, test/)
each <sequence>/ with visible/*.jpg, infrared/*.jpg and visible.txt (or init.txt).
Optional: AttriSeqsTxt/<sequence>.txt (the attribute files; a copy ships with mmtrack-kd).
The official split lists (trainingsetList.txt, testingsetList.txt) ship with mmtrack-kd."""

    split_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("trainingset", "TrainingSet/trainingset", "TrainingSet", "train", "."),
        "test": ("testingset", "TestingSet/testingset", "TestingSet", "test", "."),
    }
    packaged_lists: ClassVar[dict[str, str]] = {
        "train": "lasher_train.txt",
        "test": "lasher_test.txt",
    }
    list_files: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("trainingsetList.txt",),
        "test": ("testingsetList.txt",),
    }
    markers: ClassVar[tuple[str, ...]] = ("visible.txt", "init.txt")
    stream_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "rgb": ("visible",),
        "thermal": ("infrared",),
    }

    @functools.cached_property
    def attributes_dir(self) -> Path | None:
        """The on-disk ``AttriSeqsTxt/`` folder, or None to use the shipped table."""
        configured = self.options.attributes_dir
        if configured is not None:
            if not Path(configured).is_dir():
                raise DataError(f"dataset {self.name}: attributes_dir {configured} is not a folder")
            return Path(configured)
        candidates = [
            self.root / "AttriSeqsTxt",
            self.root / "LasHeR_Attributes" / "AttriSeqsTxt",
            self.split_dir().parent / "AttriSeqsTxt",
        ]
        return next((folder for folder in candidates if folder.is_dir()), None)

    def sequence_attributes(self, name: str, where: str) -> dict[str, bool]:
        """The 19 attribute flags: the on-disk file when there is one, else the shipped table,
        else none (a sequence LasHeR does not know, e.g. a renamed folder)."""
        directory = self.attributes_dir
        if directory is not None:
            path = directory / f"{name}.txt"
            if path.is_file():
                return parse_flag_row(path, where, LASHER_ATTRIBUTES)
        shipped = attribute_table("lasher_attributes.txt", LASHER_ATTRIBUTES)
        return dict(shipped.get(name, {}))

    def annotations(self, name: str, folder: Path, where: str) -> Annotations:
        """``visible.txt`` (or ``init.txt``) boxes, visible where ``w > 0`` and ``h > 0``."""
        path = require_file(folder, ("visible.txt", "init.txt"), where, "ground-truth")
        boxes = parse_boxes(path, where)
        return Annotations(
            boxes, valid_boxes(boxes), path, attributes=self.sequence_attributes(name, where)
        )


@hookimpl
def mmtrack_kd_register_datasets(register):
    """Register the LasHeR dataset plugin."""
    register(LasHeR)
