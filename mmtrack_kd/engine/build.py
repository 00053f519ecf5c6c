"""From a validated recipe to the datasets a stage trains on, and the checks a recipe passes
before ``train`` builds anything (the adapters and the model are the stage's own:
:mod:`mmtrack_kd.engine.stages`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmtrack_kd.data import DatasetPlugin
from mmtrack_kd.engine.stages import STAGES, Stage
from mmtrack_kd.errors import MmtrackError, RecipeError
from mmtrack_kd.plugins import Registry, default_registry
from mmtrack_kd.recipe import DatasetChoice, Recipe


def build_datasets(
    choices: list[DatasetChoice], registry: Registry | None = None
) -> list[tuple[DatasetPlugin, float]]:
    """Dataset plugin instances with their weights (:func:`check_recipe` has checked that each
    carries the run's modality)."""
    registry = registry or default_registry()
    return [(registry.dataset(choice.name)(choice.options), choice.weight) for choice in choices]


def dataset_problems(
    recipe: Recipe, stages: list[Stage], registry: Registry | None = None
) -> list[tuple[str, str]]:
    """``(path, message)`` for every dataset entry (``data.train``, ``data.val``,
    ``evaluate.datasets``) that does not carry a modality the stages read, asked of the entry as
    configured (:meth:`~mmtrack_kd.data.DatasetPlugin.modalities_for`: ``folder`` with
    ``aux: nir`` carries nir)."""
    registry = registry or default_registry()
    needed = list(dict.fromkeys(STAGES[stage](recipe).aux_modality for stage in stages))
    sections = {"data.train": recipe.data.train, "data.val": recipe.data.val,
                "evaluate.datasets": recipe.evaluate.datasets}
    problems = []
    for section, choices in sections.items():
        for index, choice in enumerate(choices):
            carried = registry.dataset(choice.name).modalities_for(choice.options)
            missing = [name for name in needed if name not in carried]
            if missing:
                problems.append((
                    f"{section}.{index}.name",
                    f"dataset {choice.name} (as configured) carries {', '.join(carried)}; the "
                    f"recipe's modality is {', '.join(missing)}",
                ))
    return problems


def generated_data_problems(recipe: Recipe, registry: Registry | None = None) -> list[tuple[str, str]]:
    """``(path, message)`` for every entry that shares the folder of an earlier entry whose
    plugin writes its data there (``synthetic``) but asks for other data. The usual cause: a
    ``--set`` override of ``data.train.0`` that the YAML anchor (``<<: *synthetic``) of the
    ``data.val`` and ``evaluate.datasets`` entries does not carry, since an anchor copies values
    when the file is read."""
    registry = registry or default_registry()
    sections = {"data.train": recipe.data.train, "data.val": recipe.data.val,
                "evaluate.datasets": recipe.evaluate.datasets}
    first: dict[Path, tuple[str, dict[str, Any]]] = {}
    problems = []
    for section, choices in sections.items():
        for index, choice in enumerate(choices):
            data = registry.dataset(choice.name).generated_data(choice.options)
            if data is None:
                continue
            root, wanted = data
            path = f"{section}.{index}"
            if root not in first:
                first[root] = (path, wanted)
                continue
            other, expected = first[root]
            changes = [f"{key} {wanted.get(key)} here, {expected.get(key)} there"
                       for key in sorted(set(wanted) | set(expected)) if wanted.get(key) != expected.get(key)]
            if changes:
                problems.append((path, f"writes {root} like {other} but asks for other data "
                                       f"({'; '.join(changes)}). A YAML anchor (<<: *synthetic) "
                                       "copies values when the file is read, not later --set "
                                       "overrides: set every entry, or use a smaller recipe "
                                       "(recipes/smoke-*.yaml)"))
    return problems


def check_pretrained(recipe: Recipe, stages: list[Stage]) -> None:
    """A named pretrained checkpoint that is missing stops the run before anything starts,
    saying what to download and where it goes."""
    path = recipe.model.pretrained
    if path is None or Path(path).is_file():
        return
    if not any(STAGES[stage](recipe).start_file() == path for stage in stages):
        return  # no stage starts from it
    raise MmtrackError(
        f"model.pretrained: {path} does not exist. Download an OSTrack checkpoint (for ViT-B "
        "256/128: OSTrack_ep0300.pth.tar of vitb_256_mae_ce_32x4_ep300 from the OSTrack "
        "release), or MAE / timm ViT weights, and put it there or set "
        "`--set model.pretrained=PATH` (`--set model.pretrained=null` trains from scratch)."
    )


def check_recipe(
    recipe: Recipe, stages: list[Stage] | None = None, registry: Registry | None = None
) -> None:
    """Every check ``train`` runs on a validated recipe before it builds anything, so that
    ``recipe check`` passes exactly the recipes ``train`` accepts: the datasets carry the
    modality, entries that generate data into one folder ask for the same data, and a named
    pretrained checkpoint exists.

    Raises:
        RecipeError: datasets that do not carry the modality, each with its path; the message
            names the recipe file.
        MmtrackError: a missing pretrained checkpoint.
    """
    stages = list(recipe.train.stages) if stages is None else stages
    if not recipe.data.train:
        raise RecipeError(recipe.source, [("data.train", "the recipe names no training dataset")])
    problems = dataset_problems(recipe, stages, registry) + generated_data_problems(recipe, registry)
    if problems:
        raise RecipeError(recipe.source, problems)
    check_pretrained(recipe, stages)
