"""GTOT: 50 RGB-T test sequences with corner-format ground truth per modality."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from mmtrack_kd import hookimpl
from mmtrack_kd.data import DataError
from plugins.common import (
    Annotations,
    BenchmarkDataset,
    BenchmarkOptions,
    first_file,
    parse_boxes,
    require_file,
    valid_boxes,
)


class GTOTOptions(BenchmarkOptions):
    """Options of the GTOT plugin."""

    split: str = Field("test", description="The benchmark's one split, `test`.")


class GTOT(BenchmarkDataset):
    """GTOT sequences: ``v/`` and ``i/`` frames; ``groundTruth_v.txt`` and
    ``groundTruth_i.txt`` with space-separated corners ``x1 y1 x2 y2``, converted to ``x, y, w,
    h`` with ``w = x2 - x1`` (no +1, as the GTOT toolkit and its ``init.txt`` do).

    ``boxes`` are the visible-light ones and ``modality_boxes`` holds both (``rgb``,
    ``thermal``) for the min-error / max-overlap protocol. Without the corner files, the
    tab-separated ``init.txt`` (``x y w h``) is used alone. GTOT has no per-sequence attribute
    files in its public toolkits, so sequences carry none.
    """

    name: ClassVar[str] = "gtot"
    Options = GTOTOptions
    modalities: tuple[str, ...] = ("rgb", "thermal")
    splits: ClassVar[tuple[str, ...]] = ("test",)
    protocol: str = "gtot"
    description: ClassVar[str] = "GTOT RGB-T benchmark (50 sequences, per-modality boxes)"
    layout: ClassVar[str] = """\
GTOT (https://github.com/mmic-lcl/Datasets-and-benchmark-code): unpack it so that the root (or
its GTOT/ folder) holds <sequence>/ folders, each with v/*.png, i/*.png, groundTruth_v.txt and
groundTruth_i.txt (x1 y1 x2 y2) or init.txt. The sequence list ships with mmtrack-kd."""

    split_folders: ClassVar[dict[str, tuple[str, ...]]] = {"test": ("GTOT", ".")}
    packaged_lists: ClassVar[dict[str, str]] = {"test": "gtot.txt"}
    markers: ClassVar[tuple[str, ...]] = ("groundTruth_v.txt", "init.txt")
    stream_folders: ClassVar[dict[str, tuple[str, ...]]] = {"rgb": ("v",), "thermal": ("i",)}

    def annotations(self, name: str, folder: Path, where: str) -> Annotations:
        """Corner boxes of both modalities (or ``init.txt``)."""
        rgb_path = first_file(folder, ("groundTruth_v.txt",))
        if rgb_path is None:
            path = require_file(folder, ("init.txt",), where, "ground-truth")
            boxes = parse_boxes(path, where)
            return Annotations(boxes, valid_boxes(boxes), path)
        rgb = parse_boxes(rgb_path, where, corners=True)
        thermal_path = first_file(folder, ("groundTruth_i.txt",))
        if thermal_path is None:
            return Annotations(rgb, valid_boxes(rgb), rgb_path)
        thermal = parse_boxes(thermal_path, where, corners=True)
        if len(thermal) != len(rgb):
            raise DataError(
                f"{where}: {thermal_path} has {len(thermal)} rows but {rgb_path} has {len(rgb)}"
            )
        return Annotations(
            rgb, valid_boxes(rgb) | valid_boxes(thermal), rgb_path, {"rgb": rgb, "thermal": thermal}
        )


@hookimpl
def mmtrack_kd_register_datasets(register):
    """Register the GTOT dataset plugin."""
    register(GTOT)
