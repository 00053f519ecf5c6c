"""Checkpoints: our typed run checkpoint, and converters from foreign formats.

* :mod:`~mmtrack_kd.checkpoints.run` -- :class:`RunCheckpoint`, the file the trainer writes
  (``last.pt``, ``best.pt``) and the tracker, exporter and evaluator read; :func:`load_model`
  rebuilds its model.
* :mod:`~mmtrack_kd.checkpoints.foreign` -- OSTrack, MPLT, MAE and timm weights converted to our
  parameter names, and format detection.
* :mod:`~mmtrack_kd.checkpoints.loading` -- :func:`load_pretrained` loads any of them into a
  built model and returns a :class:`LoadReport`; :func:`check_declared` refuses what a run did
  not declare.
* :mod:`~mmtrack_kd.checkpoints.file` -- the one atomic writer and the one weights-only reader.
"""

from mmtrack_kd.checkpoints.file import FORMAT, ForeignObject, read_file, write_atomic
from mmtrack_kd.checkpoints.foreign import CONVERTERS, detect_format, resize_pos_embed, split_pos_embed
from mmtrack_kd.checkpoints.loading import (
    MODEL_PARTS,
    LoadReport,
    check_declared,
    check_finite,
    load_pretrained,
    load_state,
    non_finite_tensors,
    select_blocks,
)
from mmtrack_kd.checkpoints.run import (
    VERSION,
    ModalityEntry,
    RunCheckpoint,
    RunPosition,
    capture_rng,
    load_model,
    restore_rng,
    save_model,
)

__all__ = [
    "CONVERTERS",
    "FORMAT",
    "MODEL_PARTS",
    "ForeignObject",
    "LoadReport",
    "ModalityEntry",
    "RunCheckpoint",
    "RunPosition",
    "VERSION",
    "capture_rng",
    "check_declared",
    "check_finite",
    "detect_format",
    "load_model",
    "load_pretrained",
    "load_state",
    "non_finite_tensors",
    "read_file",
    "resize_pos_embed",
    "restore_rng",
    "save_model",
    "select_blocks",
    "split_pos_embed",
    "write_atomic",
]
