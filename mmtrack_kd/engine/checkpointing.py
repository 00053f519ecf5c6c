"""A training stage's ``last.pt`` and ``best.pt``: written and resumed through the run checkpoint.

What a stage saves is a :class:`~mmtrack_kd.checkpoints.RunCheckpoint`: the model with its
description (kind, configuration, modalities, crop geometry, recipe) and the position in the
run; ``last.pt`` adds the optimiser, scheduler, scaler and RNG states that resuming needs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmtrack_kd.checkpoints import (
    VERSION,
    ModalityEntry,
    RunCheckpoint,
    RunPosition,
    capture_rng,
    non_finite_tensors,
    restore_rng,
)
from mmtrack_kd.data.crop import CropSettings
from mmtrack_kd.engine.signals import TrainingStopped
from mmtrack_kd.engine.stages import ModalitySetup
from mmtrack_kd.errors import CheckpointError, MmtrackError
from mmtrack_kd.recipe import Recipe


def stage_checkpoint(
    recipe: Recipe,
    stage: str,
    kind: str,
    model_config: dict[str, Any],
    model: nn.Module,
    modalities: ModalitySetup,
    progress: RunPosition,
    training: dict[str, Any] | None = None,
) -> RunCheckpoint:
    """The checkpoint of a stage at ``progress``; ``training`` (``optimizer``, ``scheduler``,
    ``scaler`` and ``rng`` states) makes it one a run can resume from."""
    return RunCheckpoint(
        version=VERSION,
        kind=kind,
        stage=stage,
        model_config=model_config,
        model=model.state_dict(),
        modalities=[ModalityEntry.of_adapter(adapter) for adapter in modalities.adapters],
        crop=CropSettings.from_recipe(recipe.model),
        progress=replace(progress),
        recipe=json.loads(recipe.model_dump_json()),
        **(training or {}),
    )


def training_state(optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
                   rng: dict[str, Any] | None) -> dict[str, Any]:
    """The entries resuming needs beyond the weights (``rng``: the states at the last update
    boundary; None: the states now)."""
    return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": rng or capture_rng()}


def refuse_non_finite(checkpoint: RunCheckpoint, stage: str, path: Path, last_saved: Path | None) -> None:
    """"Last good" must mean finite: weights can turn NaN in an update whose loss was still
    finite, and a checkpoint of them would be named as the one to go back to.

    Raises:
        TrainingStopped: naming the update, the first non-finite tensors and the last good file.
    """
    bad = non_finite_tensors(checkpoint.model)
    if checkpoint.optimizer is not None:
        bad += [f"optimizer.{key}" for key in non_finite_tensors(_flat_tensors(checkpoint.optimizer))]
    if bad:
        update = checkpoint.progress.update if checkpoint.progress is not None else 0
        raise TrainingStopped(
            f"{stage}: the weights became non-finite by update {update} "
            f"({len(bad)} tensors, first: {', '.join(bad[:3])}); {path} was not written. "
            f"Last good checkpoint: {last_saved or 'none written yet'}"
        )


def resume_from(
    path: Path,
    stage: str,
    model_config: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
) -> RunPosition:
    """Load ``last.pt`` into the model, optimiser, scheduler and scaler, restore the RNG
    states, and return the position to continue from.

    Raises:
        CheckpointError: a file without what resuming needs, or one that does not load.
        MmtrackError: a checkpoint of another stage or another model configuration.
    """
    checkpoint = RunCheckpoint.read(path)
    missing = checkpoint.missing_for_resume
    if missing:
        raise CheckpointError(
            f"{path} cannot be resumed from: it holds no {', '.join(missing)} (a best.pt, or "
            "a file written for a bare model by save_model, has weights only); resume needs "
            "the run's own last.pt"
        )
    if checkpoint.stage != stage:
        raise MmtrackError(f"{path} is a {checkpoint.stage} checkpoint, not {stage}")
    if checkpoint.model_config != model_config:
        raise MmtrackError(
            f"{path} was written for a different model configuration; resume with the "
            "recipe that started the run (see its recipe.yaml)"
        )
    try:
        model.load_state_dict(checkpoint.model)
        optimizer.load_state_dict(checkpoint.optimizer)
        scheduler.load_state_dict(checkpoint.scheduler)
        scaler.load_state_dict(checkpoint.scaler)
        restore_rng(checkpoint.rng)
    except (RuntimeError, ValueError, TypeError, KeyError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path} cannot be resumed from: {first}") from None
    return checkpoint.progress


def _flat_tensors(state: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a nested state dict (an optimiser's) under dotted keys."""
    if isinstance(state, torch.Tensor):
        return {prefix.rstrip("."): state}
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return {}
    out: dict[str, torch.Tensor] = {}
    for key, value in items:
        out.update(_flat_tensors(value, f"{prefix}{key}."))
    return out
