"""RGBT234: 234 RGB-T test sequences with a ground truth per modality."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import ClassVar, Mapping

from pydantic import Field

from mmtrack_kd import hookimpl
from mmtrack_kd.data import DataError
from plugins.common import (
    Annotations,
    BenchmarkDataset,
    BenchmarkOptions,
    attribute_table,
    first_file,
    parse_boxes,
    parse_line_flags,
    parse_name_list,
    read_text,
    require_file,
    valid_boxes,
)

#: RGBT234's 12 challenge attributes, in the order of its toolkit.
RGBT234_ATTRIBUTES: tuple[str, ...] = (
    "BC", "CM", "DEF", "FM", "HO", "LI", "LR", "MB", "NO", "TC", "PO", "SC",
)  # fmt: skip


class RGBT234Options(BenchmarkOptions):
    """Options of the RGBT234 (and RGBT210) plugin."""

    split: str = Field("test", description="The benchmark's one split, `test`.")
    attributes_dir: Path | None = Field(
        None,
        description="The toolkit's attr_txt/ folder (SequencesName.txt and one <ATTR>.txt of 0/1 "
        "lines per attribute). When unset, <root>/attr_txt is used if present, otherwise the "
        "table shipped with mmtrack-kd.",
    )


class RGBT234(BenchmarkDataset):
    """RGBT234 sequences: ``visible/`` and ``infrared/`` frames, ``visible.txt`` and
    ``infrared.txt`` boxes (comma-separated ``x,y,w,h``, one a frame).

    ``boxes`` are the visible-light ones; ``modality_boxes`` holds both (``rgb`` and
    ``thermal``) for the MPR/MSR protocol. A sequence with only ``init.txt`` gets it as
    ``boxes`` and no per-modality ground truth. ``visible`` is True where either modality's
    box has a positive size.
    """

    name: ClassVar[str] = "rgbt234"
    Options = RGBT234Options
    modalities: tuple[str, ...] = ("rgb", "thermal")
    splits: ClassVar[tuple[str, ...]] = ("test",)
    protocol: str = "rgbt234"
    attribute_names: tuple[str, ...] = RGBT234_ATTRIBUTES
    description: ClassVar[str] = "RGBT234 RGB-T benchmark (234 sequences, per-modality boxes)"
    layout: ClassVar[str] = """\
RGBT234 (https://github.com/mmic-lcl/Datasets-and-benchmark-code): unpack it so that the root
(or its RGBT234/ folder) holds <sequence>/ folders, each with visible/*.jpg, infrared/*.jpg,
visible.txt and infrared.txt (or init.txt). Optional: attr_txt/ from the toolkit (a copy of
the attribute table ships with mmtrack-kd). The sequence list ships with mmtrack-kd."""

    split_folders: ClassVar[dict[str, tuple[str, ...]]] = {"test": ("RGBT234", ".")}
    packaged_lists: ClassVar[dict[str, str]] = {"test": "rgbt234.txt"}
    markers: ClassVar[tuple[str, ...]] = ("visible.txt", "init.txt")
    stream_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "rgb": ("visible",),
        "thermal": ("infrared",),
    }

    @functools.cached_property
    def attribute_flags(self) -> Mapping[str, Mapping[str, bool]]:
        """Sequence -> attribute flags, from ``attr_txt/`` on disk or the shipped table."""
        configured = self.options.attributes_dir
        if configured is not None and not Path(configured).is_dir():
            raise DataError(f"dataset {self.name}: attributes_dir {configured} is not a folder")
        folder = Path(configured) if configured is not None else self.root / "attr_txt"
        if (folder / "SequencesName.txt").is_file():
            return read_attr_txt(folder, self.name)
        return attribute_table("rgbt234_attributes.txt", RGBT234_ATTRIBUTES)

    def annotations(self, name: str, folder: Path, where: str) -> Annotations:
        """Visible and infrared boxes (or ``init.txt``) with the sequence's attributes."""
        attributes = dict(self.attribute_flags.get(name, {}))
        rgb_path = first_file(folder, ("visible.txt",))
        thermal_path = first_file(folder, ("infrared.txt",))
        if rgb_path is None or thermal_path is None:
            path = require_file(folder, ("visible.txt", "init.txt"), where, "ground-truth")
            boxes = parse_boxes(path, where)
            return Annotations(boxes, valid_boxes(boxes), path, attributes=attributes)
        rgb = parse_boxes(rgb_path, where)
        thermal = parse_boxes(thermal_path, where)
        if len(thermal) != len(rgb):
            raise DataError(
                f"{where}: {thermal_path} has {len(thermal)} rows but {rgb_path} has {len(rgb)}"
            )
        return Annotations(
            rgb,
            valid_boxes(rgb) | valid_boxes(thermal),
            rgb_path,
            {"rgb": rgb, "thermal": thermal},
            attributes,
        )


def read_attr_txt(folder: Path, dataset: str) -> dict[str, dict[str, bool]]:
    """The RGBT toolkit's ``attr_txt/``: ``SequencesName.txt`` and one file a attribute with a
    0/1 line a sequence, in that order. Attribute files that are missing are left out."""
    where = f"dataset {dataset}"
    names = parse_name_list(read_text(folder / "SequencesName.txt", where))
    table: dict[str, dict[str, bool]] = {name: {} for name in names}
    for attribute in RGBT234_ATTRIBUTES:
        path = folder / f"{attribute}.txt"
        if not path.is_file():
            continue
        flags = parse_line_flags(path, where)
        if len(flags) != len(names):
            raise DataError(
                f"{where}: {path} has {len(flags)} lines for the {len(names)} sequences of "
                f"{folder / 'SequencesName.txt'}"
            )
        for name, flag in zip(names, flags, strict=True):
            table[name][attribute] = bool(flag)
    return table


@hookimpl
def mmtrack_kd_register_datasets(register):
    """Register the RGBT234 dataset plugin."""
    register(RGBT234)
