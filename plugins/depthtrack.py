"""DepthTrack: RGB-D long-term tracking in the VOT layout (150 train / 50 test sequences)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from mmtrack_kd import hookimpl
from plugins.common import (
    Annotations,
    BenchmarkDataset,
    parse_boxes,
    parse_line_flags,
    read_attribute_list,
    require_file,
    valid_boxes,
)

#: DepthTrack's per-frame attribute tags (VOT ``<tag>.tag`` files in a sequence folder), as the
#: DepthTrack authors' analysis scripts name them. Unverified against the raw download: tag
#: files of other names are kept too.
DEPTHTRACK_ATTRIBUTES: tuple[str, ...] = (
    "aspect-change",
    "background-clutter",
    "dark-scene",
    "deformable",
    "depth-change",
    "fast-motion",
    "full-occlusion",
    "moving-view",
    "out-of-frame",
    "out-of-plane",
    "partial-occlusion",
    "reflective-target",
    "similar-objects",
    "size-change",
)


class DepthTrack(BenchmarkDataset):
    """DepthTrack sequences in the VOT layout: ``color/%08d.jpg`` and ``depth/%08d.png``
    (single-channel 16-bit; read them with ``cv2.IMREAD_UNCHANGED``), ``groundtruth.txt`` with
    comma-separated ``x,y,w,h`` and ``nan,nan,nan,nan`` where the target is absent (kept as NaN,
    ``visible`` False).

    Known defect of the real data: a sequence with more ground-truth rows than frames; the
    surplus rows are cut off with a :class:`~plugins.common.DatasetWarning`. Fewer rows than
    frames is an error. Attributes are per-frame VOT tags; a sequence has an attribute when any
    of its frames is tagged. Without ``.tag`` files, mmtrack-kd's ``attributes.txt`` (attribute
    names one a line, as the synthetic generator writes) is read; otherwise there are none.
    """

    name: ClassVar[str] = "depthtrack"
    modalities: tuple[str, ...] = ("rgb", "depth")
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    protocol: str = "depthtrack"
    attribute_names: tuple[str, ...] = DEPTHTRACK_ATTRIBUTES
    description: ClassVar[str] = "DepthTrack RGB-D long-term benchmark (VOT layout)"
    layout: ClassVar[str] = """\
DepthTrack (https://github.com/xiaozai/DeT, Zenodo records of the test and training sets):
unpack them so that the root holds
  test/<sequence>/   (or DepthTrack_test/, a VOT workspace's sequences/)
  train/<sequence>/  (or DepthTrack_train/)
each <sequence>/ with color/%08d.jpg, depth/%08d.png (16-bit) and groundtruth.txt; the train
folder's list.txt names its sequences (the test list ships with mmtrack-kd)."""

    split_folders: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("train", "DepthTrack_train", "depthtrack_train", "."),
        # A VOT workspace (sequences/ with list.txt) is an evaluation layout: test only.
        "test": (
            "test/sequences",
            "test",
            "DepthTrack_test/sequences",
            "DepthTrack_test",
            "depthtrack_test",
            "sequences",
            ".",
        ),
    }
    packaged_lists: ClassVar[dict[str, str]] = {"test": "depthtrack_test.txt"}
    list_files: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("list.txt",),
        "test": ("list.txt",),
    }
    markers: ClassVar[tuple[str, ...]] = ("groundtruth.txt",)
    stream_folders: ClassVar[dict[str, tuple[str, ...]]] = {"rgb": ("color",), "depth": ("depth",)}
    surplus_rows: ClassVar[str] = "truncate"

    def annotations(self, name: str, folder: Path, where: str) -> Annotations:
        """``groundtruth.txt`` (NaN rows absent) and the sequence's tags."""
        path = require_file(folder, ("groundtruth.txt",), where, "ground-truth")
        boxes = parse_boxes(path, where, nan_rows=True)
        attributes = read_tags(folder, where)
        if not attributes:
            attributes = read_attribute_list(folder, where, DEPTHTRACK_ATTRIBUTES) or {}
        return Annotations(boxes, valid_boxes(boxes), path, attributes=attributes)


def read_tags(folder: Path, where: str) -> dict[str, bool]:
    """Per-sequence flags from the VOT ``<tag>.tag`` files of ``folder`` (one scandir): True when
    any frame is tagged. Known tags without a file are False; no tag files at all gives ``{}``."""
    with os.scandir(folder) as entries:
        tag_files = sorted(
            Path(entry.path) for entry in entries if entry.name.endswith(".tag") and entry.is_file()
        )
    if not tag_files:
        return {}
    flags = {name: False for name in DEPTHTRACK_ATTRIBUTES}
    for path in tag_files:
        flags[path.stem] = bool(parse_line_flags(path, where).any())
    return flags


@hookimpl
def mmtrack_kd_register_datasets(register):
    """Register the DepthTrack dataset plugin."""
    register(DepthTrack)
