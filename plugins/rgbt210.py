"""RGBT210: 210 RGB-T test sequences (the RGBT234 images) with one ground truth each."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from mmtrack_kd import hookimpl
from plugins.common import Annotations, parse_boxes, require_file, valid_boxes
from plugins.rgbt234 import RGBT234


class RGBT210(RGBT234):
    """RGBT210 sequences: ``visible/`` and ``infrared/`` frames and one ``init.txt``
    (comma-separated ``x,y,w,h``). Attributes come from RGBT234's table, of which RGBT210's
    sequences are a subset."""

    name: ClassVar[str] = "rgbt210"
    protocol: str = "rgbt210"
    description: ClassVar[str] = "RGBT210 RGB-T benchmark (210 sequences, one ground truth)"
    layout: ClassVar[str] = """\
RGBT210 (https://github.com/mmic-lcl/Datasets-and-benchmark-code): unpack it so that the root
(or its RGBT210/ folder) holds <sequence>/ folders, each with visible/*.jpg, infrared/*.jpg
and init.txt. Optional: attr_txt/ from the toolkit. The sequence list ships with mmtrack-kd."""

    split_folders: ClassVar[dict[str, tuple[str, ...]]] = {"test": ("RGBT210", ".")}
    packaged_lists: ClassVar[dict[str, str]] = {"test": "rgbt210.txt"}
    markers: ClassVar[tuple[str, ...]] = ("init.txt",)

    def annotations(self, name: str, folder: Path, where: str) -> Annotations:
        """``init.txt`` boxes, visible where ``w > 0`` and ``h > 0``."""
        path = require_file(folder, ("init.txt",), where, "ground-truth")
        boxes = parse_boxes(path, where)
        attributes = dict(self.attribute_flags.get(name, {}))
        return Annotations(boxes, valid_boxes(boxes), path, attributes=attributes)


@hookimpl
def mmtrack_kd_register_datasets(register):
    """Register the RGBT210 dataset plugin."""
    register(RGBT210)
