"""A plain folder layout for a user's own two-stream data.

Layout (folder names are options)::

    <root>/
      <sequence>/
        rgb/               RGB frames, any image names (sorted naturally)
        <aux>/             auxiliary frames (e.g. thermal/), as many as RGB frames
        groundtruth.txt    x,y,w,h a line (commas, spaces or tabs), one a frame; a row of
                           nan or a zero size marks an absent target
        <aux>.txt          optional: the auxiliary modality's own ground truth
        attributes.txt     optional: the sequence's challenge attributes, one name a line
      train.txt            optional: sequence names of split `train` (also val.txt, test.txt)

Split ``all`` (the default) is every sequence folder; ``train``, ``val`` and ``test`` need their
list file. The auxiliary modality's name (``aux``, e.g. ``thermal``, ``depth``, ``event``) is the
modality adapter that reads its frames; the dataset's ``modalities`` are ``("rgb", aux)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from mmtrack_kd import hookimpl
from mmtrack_kd.data import DataError, PluginError, installed_plugins
from plugins.common import (
    Annotations,
    BenchmarkDataset,
    BenchmarkOptions,
    first_file,
    parse_boxes,
    read_attribute_list,
    require_file,
    valid_boxes,
)


class FolderOptions(BenchmarkOptions):
    """Options of the folder plugin: which modality the second stream is and where it lies."""

    split: str = Field(
        "all",
        description="`all` (every sequence folder), or `train` / `val` / `test`, listed in "
        "<root>/<split>.txt.",
    )
    aux: str = Field(
        "thermal",
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="Name of the auxiliary modality (the modality adapter that reads it): "
        "thermal, depth, event, ...",
    )
    rgb_dir: str = Field("rgb", min_length=1, description="RGB frame folder in a sequence.")
    aux_dir: str | None = Field(
        None, description="Auxiliary frame folder in a sequence; defaults to the `aux` name."
    )
    groundtruth: str = Field(
        "groundtruth.txt", min_length=1, description="Ground-truth file in a sequence (x,y,w,h)."
    )
    aux_groundtruth: str | None = Field(
        None,
        description="Optional per-modality ground truth of the auxiliary stream; defaults to "
        "<aux>.txt when that file exists.",
    )


class Folder(BenchmarkDataset):
    """A user's own sequences in the plain layout of the module docstring, scored with the
    OTB-style precision / success protocol."""

    name: ClassVar[str] = "folder"
    Options = FolderOptions
    # The default `aux`; an instance carries ("rgb", aux) (modalities_for).
    modalities: tuple[str, ...] = ("rgb", "thermal")
    splits: ClassVar[tuple[str, ...]] = ("all", "train", "val", "test")
    protocol: str = "otb"
    description: ClassVar[str] = "your own two-stream sequences in a plain folder layout"
    layout: ClassVar[str] = """\
folder: one sub-folder per sequence, each with rgb/ (RGB frames), <aux>/ (auxiliary frames,
e.g. thermal/, as many as RGB frames) and groundtruth.txt (x,y,w,h a line, one a frame).
Optional: <aux>.txt (the auxiliary stream's own boxes), attributes.txt (attribute names, one
a line) and <root>/train.txt, val.txt, test.txt naming the sequences of each split. The folder
names are options (rgb_dir, aux_dir, groundtruth) and `aux` names the modality."""

    def __init__(self, options: FolderOptions | None = None) -> None:
        super().__init__(options)
        aux = self.options.aux
        if aux == "rgb":
            raise DataError(f"dataset {self.name}: `aux` must name the second modality, not rgb")
        self.markers = (self.options.groundtruth,)
        self.stream_folders = {
            "rgb": (self.options.rgb_dir,),
            aux: (self.options.aux_dir or aux,),
        }

    @classmethod
    def modalities_for(cls, options: FolderOptions) -> tuple[str, ...]:
        """``("rgb", aux)``: the second stream is whatever modality ``aux`` names."""
        return ("rgb", options.aux)

    def frame_suffixes(self, stream: str) -> frozenset[str]:
        """The auxiliary stream's frames are the files its modality adapter reads
        (``frame_suffixes``: ``.npy`` for a modality stored as arrays); RGB frames are images."""
        if stream == self.options.aux:
            try:
                return installed_plugins().modality(stream).frame_suffixes
            except PluginError:
                pass  # not installed here (scoring needs no adapter): images, as before
        return super().frame_suffixes(stream)

    def split_folder_candidates(self) -> tuple[str, ...]:
        """Sequences sit directly in the root."""
        return (".",)

    def split_list(self) -> tuple[list[str] | None, str]:
        """Split ``all`` is every sequence folder; the others are listed in ``<split>.txt``."""
        split = self.options.split
        if split != "all" and first_file(self.root, (f"{split}.txt",)) is None:
            raise DataError(
                f"dataset {self.name}: split {split!r} needs {self.root / (split + '.txt')} naming "
                "its sequences, one a line (or use split `all`)"
            )
        return super().split_list()

    def list_file_names(self) -> tuple[str, ...]:
        """``<split>.txt`` in the root (none for ``all``)."""
        split = self.options.split
        return () if split == "all" else (f"{split}.txt",)

    def annotations(self, name: str, folder: Path, where: str) -> Annotations:
        """The ground truth, and the auxiliary stream's own when there is one."""
        options = self.options
        path = require_file(folder, (options.groundtruth,), where, "ground-truth")
        boxes = parse_boxes(path, where, nan_rows=True)
        attributes = read_attribute_list(folder, where) or {}
        aux_file = options.aux_groundtruth or f"{options.aux}.txt"
        aux_path = first_file(folder, (aux_file,))
        if aux_path is None:
            if options.aux_groundtruth is not None:
                raise DataError(f"{where}: no {options.aux_groundtruth} in {folder}")
            return Annotations(boxes, valid_boxes(boxes), path, attributes=attributes)
        aux_boxes = parse_boxes(aux_path, where, nan_rows=True)
        if len(aux_boxes) != len(boxes):
            raise DataError(
                f"{where}: {aux_path} has {len(aux_boxes)} rows but {path} has {len(boxes)}"
            )
        return Annotations(
            boxes,
            valid_boxes(boxes) | valid_boxes(aux_boxes),
            path,
            {"rgb": boxes, options.aux: aux_boxes},
            attributes,
        )


@hookimpl
def mmtrack_kd_register_datasets(register):
    """Register the folder dataset plugin."""
    register(Folder)
