"""Our own checkpoint: the typed run checkpoint the trainer writes and everything else reads.

On disk a checkpoint is one dict of plain data (so ``torch.load(weights_only=True)`` reads it)::

    {"format": "mmtrack-kd", "version": 1, "kind": "teacher" | "student", "stage": ...,
     "model_config": {...}, "model": state_dict, "modalities": [{"name", "options"}, ...],
     "crop": {...}, "progress": {...}, "recipe": {...},
     "optimizer": ..., "scheduler": ..., "scaler": ..., "rng": ...}

The trainer's ``last.pt`` holds every entry; its ``best.pt`` stops after ``recipe`` (weights
only, nothing to resume); a file written for a bare model (:meth:`RunCheckpoint.of_model`) holds
``format``, ``kind``, ``model_config`` and ``model`` plus whatever the caller adds. Entries a
file lacks are None here and absent on disk, so a file read and saved again keeps its bytes'
layout.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from mmtrack_kd.checkpoints.file import FORMAT, read_file, write_atomic
from mmtrack_kd.checkpoints.foreign import detect_format
from mmtrack_kd.checkpoints.loading import LoadReport, check_finite, load_state
from mmtrack_kd.errors import CheckpointError
from mmtrack_kd.models.build import MODEL_KINDS, build_model

#: The ``version`` entry of the run checkpoints the trainer writes.
VERSION = 1


@dataclass
class RunPosition:
    """Where a training stage is: epochs done, micro-batches consumed in the current epoch,
    optimiser updates, samples seen, the best validation loss so far, and whether it ended."""

    epoch: int = 0
    batch_in_epoch: int = 0
    update: int = 0
    samples: int = 0
    best_val: float = float("inf")
    finished: bool = False


@dataclass
class RunCheckpoint:
    """One mmtrack-kd checkpoint file, typed.

    Attributes:
        kind: ``teacher`` or ``student`` (:data:`mmtrack_kd.models.MODEL_KINDS`).
        model_config: the model's constructor arguments (rebuilds it without the recipe).
        model: the model's state dict.
        version: :data:`VERSION` in the trainer's files; None in a bare model's.
        stage: the training stage that wrote it.
        modalities: the adapters, RGB first, as ``[{"name", "options"}, ...]``.
        crop: template and search sizes and factors the model was trained with.
        progress: the position in the run (:class:`RunPosition`).
        recipe: the resolved recipe as plain data.
        optimizer, scheduler, scaler: their state dicts (``last.pt`` only).
        rng: every RNG state (:func:`capture_rng`; ``last.pt`` only).
        extra: any other entries of the file, kept as they are.
    """

    kind: str
    model_config: dict[str, Any]
    model: dict[str, Tensor]
    version: int | None = None
    stage: str | None = None
    modalities: list[dict[str, Any]] | None = None
    crop: dict[str, Any] | None = None
    progress: RunPosition | None = None
    recipe: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    #: The ``format`` entry on disk: a file of any other format is not a run checkpoint.
    format: ClassVar[str] = FORMAT
    #: Entries a training run needs to continue from this file.
    RESUME_ENTRIES: ClassVar[tuple[str, ...]] = ("optimizer", "scheduler", "scaler", "progress", "rng")

    @classmethod
    def of_model(cls, model: nn.Module, **entries: Any) -> "RunCheckpoint":
        """The checkpoint of a bare model (its kind, config and weights) with ``entries``:
        this class's fields by name, anything else kept in ``extra`` (plain data only)."""
        kind = getattr(model, "kind", "")
        if kind not in MODEL_KINDS:
            raise ValueError(f"{type(model).__name__} is not a tracking model of a known kind")
        own = {"format", "kind", "model_config", "model"} & set(entries)
        if own:
            raise ValueError(f"extra keys {sorted(own)} would overwrite the checkpoint's own")
        names = {item.name for item in fields(cls)} - {"extra"}
        known = {key: value for key, value in entries.items() if key in names}
        extra = {key: value for key, value in entries.items() if key not in names}
        if isinstance(known.get("progress"), Mapping):
            known["progress"] = RunPosition(**known["progress"])
        return cls(kind=kind, model_config=dict(model.config), model=model.state_dict(), extra=extra, **known)

    # -- plain data ---------------------------------------------------------------------------

    def to_payload(self) -> dict[str, Any]:
        """The dict written to disk, entries in their fixed order; None entries are left out."""
        payload: dict[str, Any] = {"format": self.format}
        for name, value in (
            ("version", self.version), ("kind", self.kind), ("stage", self.stage),
            ("model_config", self.model_config), ("model", self.model),
            ("modalities", self.modalities), ("crop", self.crop),
            ("progress", None if self.progress is None else vars(self.progress).copy()),
            ("recipe", self.recipe), ("optimizer", self.optimizer), ("scheduler", self.scheduler),
            ("scaler", self.scaler), ("rng", self.rng),
        ):
            if value is not None:
                payload[name] = value
        payload.update(self.extra)
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], source: str = "checkpoint") -> "RunCheckpoint":
        """A loaded dict of our format as a checkpoint; entries of the wrong type are a
        :class:`CheckpointError` naming ``source`` and the entry."""
        format, state = detect_format(payload, f"checkpoint {source}")
        if format != FORMAT:
            raise CheckpointError(
                f"checkpoint {source} is an {format} checkpoint without a model description; build the "
                "model from a recipe and load it with load_pretrained()"
            )
        kind, config = payload.get("kind"), payload.get("model_config")
        if kind not in MODEL_KINDS or not isinstance(config, dict):
            raise CheckpointError(f"checkpoint {source}: kind {kind!r} / model_config do not describe a known model")
        crop = payload.get("crop")
        if crop is not None and not isinstance(crop, Mapping):
            raise CheckpointError(f"checkpoint {source}: 'crop' is a {type(crop).__name__}, not a mapping")
        modalities = payload.get("modalities")
        if modalities is not None and not (
            isinstance(modalities, list) and all(isinstance(e, Mapping) and "name" in e for e in modalities)
        ):
            raise CheckpointError(f"checkpoint {source}: 'modalities' must be a list of {{name, options}}")
        progress = payload.get("progress")
        if progress is not None:
            try:
                progress = RunPosition(**progress)
            except TypeError as error:
                raise CheckpointError(f"checkpoint {source}: 'progress' is not a run position: {error}") from None
        names = {item.name for item in fields(cls)} - {"extra"}
        known = {key: value for key, value in payload.items() if key in names}
        known.update(kind=kind, model_config=config, model=state, progress=progress)
        extra = {key: value for key, value in payload.items() if key not in names and key != "format"}
        return cls(extra=extra, **known)

    # -- files --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint atomically (:func:`~mmtrack_kd.checkpoints.file.write_atomic`)."""
        return write_atomic(self.to_payload(), path)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "RunCheckpoint":
        """Read an mmtrack-kd checkpoint (weights only); any other file is a CheckpointError
        naming it (a foreign format is loaded into a built model by ``load_pretrained``)."""
        return cls.from_payload(read_file(path), str(path))

    @property
    def missing_for_resume(self) -> list[str]:
        """The :data:`RESUME_ENTRIES` this file lacks (empty: a run can continue from it)."""
        return [name for name in self.RESUME_ENTRIES if getattr(self, name) is None]

    def build_model(self, source: str = "checkpoint") -> tuple[nn.Module, LoadReport]:
        """The model this checkpoint describes, with its weights loaded strictly, in eval mode
        on the CPU; NaN or inf weights and a config that builds no model are refused."""
        check_finite(self.model, source)
        try:
            model = build_model(self.kind, self.model_config)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"checkpoint {source}: model_config cannot build a {self.kind}: {error}") from error
        report = load_state(model, self.model, source, FORMAT, strict=True)
        return model.eval(), report


def save_model(model: nn.Module, path: str | os.PathLike, **entries: Any) -> Path:
    """Write a bare model's checkpoint (:meth:`RunCheckpoint.of_model`) atomically."""
    return RunCheckpoint.of_model(model, **entries).save(path)


def load_model(path: str | os.PathLike) -> tuple[nn.Module, RunCheckpoint]:
    """Rebuild the model an mmtrack-kd checkpoint describes and load its weights strictly.

    Returns the model (in eval mode, on the CPU) and the checkpoint it came from.
    """
    checkpoint = RunCheckpoint.read(path)
    model, _ = checkpoint.build_model(str(path))
    return model, checkpoint


# -- random number generators -----------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Every RNG state as plain data (tensors and lists)."""
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_lists(random.getstate()),
        "numpy": {
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng` captured."""
    random.setstate(_to_tuples(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_lists(item) for item in value]
    return value


def _to_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuples(item) for item in value)
    return value
