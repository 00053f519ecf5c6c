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
layout. The ``modalities`` and ``crop`` entries are typed here (:class:`ModalityEntry`,
:class:`~mmtrack_kd.data.crop.CropSettings`) and plain dicts on disk, written in full (an older
entry that lacks a key, or holds None, is read with the value the tracker always used for it).
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
from mmtrack_kd.data.crop import CropSettings
from mmtrack_kd.data.modality import ModalityAdapter
from mmtrack_kd.errors import CheckpointError
from mmtrack_kd.models.build import MODEL_KINDS, build_model

#: The ``version`` entry of the run checkpoints the trainer writes.
VERSION = 1

#: The keys of the ``crop`` entry on disk, in their order; the patch size is the model's.
CROP_KEYS = ("template_size", "search_size", "template_factor", "search_factor")


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


@dataclass(frozen=True)
class ModalityEntry:
    """One modality adapter a model was trained with: its registered name and its options as
    plain data (what the adapter's ``Options`` model validates when the tracker rebuilds it)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_adapter(cls, adapter: ModalityAdapter) -> "ModalityEntry":
        """The entry of a built adapter."""
        return cls(adapter.name, adapter.options.model_dump(mode="json"))

    def to_payload(self) -> dict[str, Any]:
        """``{"name", "options"}``, as on disk."""
        return {"name": self.name, "options": dict(self.options)}


@dataclass
class RunCheckpoint:
    """One mmtrack-kd checkpoint file, typed.

    Attributes:
        kind: ``teacher`` or ``student`` (:data:`mmtrack_kd.models.MODEL_KINDS`).
        model_config: the model's constructor arguments (rebuilds it without the recipe).
        model: the model's state dict.
        version: :data:`VERSION` in the trainer's files; None in a bare model's.
        stage: the training stage that wrote it.
        modalities: the adapters, RGB first (:class:`ModalityEntry`; on disk
            ``[{"name", "options"}, ...]``).
        crop: the crop geometry the model was trained with (on disk the :data:`CROP_KEYS`;
            keys an older file lacks come from ``model_config`` or the defaults).
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
    modalities: list[ModalityEntry] | None = None
    crop: CropSettings | None = None
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
        this class's fields by name (typed, or as plain data as on disk), anything else kept in
        ``extra`` (plain data only)."""
        kind = getattr(model, "kind", "")
        if kind not in MODEL_KINDS:
            raise ValueError(f"{type(model).__name__} is not a tracking model of a known kind")
        own = {"format", "kind", "model_config", "model"} & set(entries)
        if own:
            raise ValueError(f"extra keys {sorted(own)} would overwrite the checkpoint's own")
        names = {item.name for item in fields(cls)} - {"extra"}
        known = {key: value for key, value in entries.items() if key in names}
        extra = {key: value for key, value in entries.items() if key not in names}
        config = dict(model.config)
        known.update(_typed_entries(known, config, f"for {type(model).__name__}"))
        return cls(kind=kind, model_config=config, model=model.state_dict(), extra=extra, **known)

    # -- plain data ---------------------------------------------------------------------------

    def to_payload(self) -> dict[str, Any]:
        """The dict written to disk, entries in their fixed order; None entries are left out."""
        payload: dict[str, Any] = {"format": self.format}
        for name, value in (
            ("version", self.version), ("kind", self.kind), ("stage", self.stage),
            ("model_config", self.model_config), ("model", self.model),
            ("modalities", None if self.modalities is None else [entry.to_payload() for entry in self.modalities]),
            ("crop", None if self.crop is None else {key: getattr(self.crop, key) for key in CROP_KEYS}),
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
        names = {item.name for item in fields(cls)} - {"extra"}
        known = {key: value for key, value in payload.items() if key in names}
        known.update(kind=kind, model_config=config, model=state, **_typed_entries(payload, config, source))
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


def _typed_entries(entries: Mapping[str, Any], config: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The ``modalities``, ``crop`` and ``progress`` of ``entries`` typed (each left as it is
    when already typed or absent); plain data of the wrong shape is a CheckpointError."""
    typed: dict[str, Any] = {}
    modalities = entries.get("modalities")
    if modalities is not None:
        typed["modalities"] = _modality_entries(modalities, source)
    crop = entries.get("crop")
    if crop is not None and not isinstance(crop, CropSettings):
        typed["crop"] = _crop_settings(crop, config, source)
    progress = entries.get("progress")
    if progress is not None and not isinstance(progress, RunPosition):
        try:
            typed["progress"] = RunPosition(**progress)
        except TypeError as error:
            raise CheckpointError(f"checkpoint {source}: 'progress' is not a run position: {error}") from None
    return typed


def _modality_entries(entries: Any, source: str) -> list[ModalityEntry]:
    """``[{"name", "options"}, ...]`` (or entries already typed) as :class:`ModalityEntry`."""
    def plain(entry: Any) -> bool:
        return isinstance(entry, Mapping) and "name" in entry and isinstance(entry.get("options") or {}, Mapping)

    if not (isinstance(entries, list) and all(isinstance(e, ModalityEntry) or plain(e) for e in entries)):
        raise CheckpointError(f"checkpoint {source}: 'modalities' must be a list of {{name, options}}")
    return [entry if isinstance(entry, ModalityEntry)
            else ModalityEntry(str(entry["name"]), dict(entry.get("options") or {})) for entry in entries]


def _crop_settings(entry: Any, config: Mapping[str, Any], source: str) -> CropSettings:
    """A ``crop`` entry as :class:`CropSettings`: a key the entry lacks (or holds as None) is
    the model config's, else the default; the patch size is the model config's."""
    if not isinstance(entry, Mapping):
        raise CheckpointError(f"checkpoint {source}: 'crop' is a {type(entry).__name__}, not a mapping")

    def value(key: str) -> Any:
        for values in (entry, config):
            if values.get(key) is not None:
                return values[key]
        return getattr(CropSettings, key)  # the dataclass field's default

    try:
        return CropSettings(
            int(value("template_size")), int(value("search_size")),
            float(value("template_factor")), float(value("search_factor")), int(value("patch_size")),
        )
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {source}: 'crop' is not a crop geometry: {error}") from None


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
