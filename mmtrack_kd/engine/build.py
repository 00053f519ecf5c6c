"""From a validated recipe to the objects a stage needs: adapters, datasets, models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mmtrack_kd.data import DatasetPlugin, ModalityAdapter
from mmtrack_kd.errors import MmtrackError, RecipeError
from mmtrack_kd.plugins import Registry, default_registry
from mmtrack_kd.recipe import DatasetChoice, Recipe

Stage = Literal["teacher", "student"]


@dataclass(frozen=True)
class ModalitySetup:
    """The adapters of a run, RGB first; one adapter for a single-modality run."""

    adapters: tuple[ModalityAdapter, ...]

    @property
    def names(self) -> list[str]:
        return [adapter.name for adapter in self.adapters]

    @property
    def aux_channels(self) -> int:
        return self.adapters[1].channels if len(self.adapters) > 1 else 3


def single_modality(recipe: Recipe, stage: Stage) -> bool:
    """True for the RGB-only baseline (the student stage with ``student.single_modality``)."""
    return stage == "student" and recipe.student.single_modality


def build_modalities(recipe: Recipe, stage: Stage, registry: Registry | None = None) -> ModalitySetup:
    """The RGB adapter and, unless single-modality, the recipe's auxiliary adapter."""
    registry = registry or default_registry()
    rgb = registry.modality("rgb")()
    if single_modality(recipe, stage):
        return ModalitySetup((rgb,))
    aux = registry.modality(recipe.modality.name)(recipe.modality.options)
    return ModalitySetup((rgb, aux))


def build_datasets(
    choices: list[DatasetChoice], registry: Registry | None = None
) -> list[tuple[DatasetPlugin, float]]:
    """Dataset plugin instances with their weights (:func:`check_recipe` has checked that each
    carries the run's modality)."""
    registry = registry or default_registry()
    return [(registry.dataset(choice.name)(choice.options), choice.weight) for choice in choices]


def stage_modality(recipe: Recipe, stage: Stage) -> str:
    """The auxiliary modality a stage reads: the recipe's, or ``rgb`` for the RGB-only student."""
    return "rgb" if single_modality(recipe, stage) else recipe.modality.name


def dataset_problems(
    recipe: Recipe, stages: list[Stage], registry: Registry | None = None
) -> list[tuple[str, str]]:
    """``(path, message)`` for every dataset entry (``data.train``, ``data.val``,
    ``evaluate.datasets``) that does not carry a modality the stages read, asked of the entry as
    configured (:meth:`~mmtrack_kd.data.DatasetPlugin.modalities_for`: ``folder`` with
    ``aux: nir`` carries nir)."""
    registry = registry or default_registry()
    needed = list(dict.fromkeys(stage_modality(recipe, stage) for stage in stages))
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
    used = "teacher" in stages or (
        "student" in stages and recipe.student.init == "pretrained"
    )
    if path is None or not used or Path(path).is_file():
        return
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


def model_config(recipe: Recipe, stage: Stage, aux_channels: int) -> tuple[str, dict[str, Any]]:
    """The model kind and constructor arguments for a stage (what a checkpoint stores)."""
    model = recipe.model
    backbone = model.backbone
    common: dict[str, Any] = {
        "template_size": model.template_size,
        "search_size": model.search_size,
        "patch_size": backbone.patch_size,
        "embed_dim": backbone.embed_dim,
        "depth": backbone.depth,
        "num_heads": backbone.num_heads,
        "mlp_ratio": backbone.mlp_ratio,
        "drop_path_rate": backbone.drop_path,
        "head_channels": model.head_channels,
    }
    if stage == "teacher":
        prompter = recipe.teacher.prompter
        return "teacher", {
            **common,
            "aux_in_chans": aux_channels,
            "fusion": model.fusion,
            "prompters": prompter.enabled,
            "spatial_attention": prompter.spatial_attention,
            "token_attention": prompter.token_attention,
            "history": prompter.history,
            "layer_type": prompter.layer_type,
            "reduction": prompter.reduction,
            "mplt_compat": prompter.mplt_compat,
        }
    student = recipe.student
    elimination = student.candidate_elimination
    single = student.single_modality
    shape = student.shape
    return "student", {
        **common,
        "depth": shape.resolve_depth(backbone.depth),
        "fuse_after": 0 if single else shape.fuse_after,
        "aux_pool": 1 if single else shape.aux_pool,
        "ce_pairing": elimination.pairing,
        "num_modalities": 1 if single else 2,
        "aux_in_chans": aux_channels,
        "fusion": model.fusion,
        "modality_embedding": student.modality_embedding and not single,
        "ce_layers": list(elimination.layers) if elimination.enabled else [],
        "ce_keep_ratio": elimination.keep_ratio if elimination.enabled else 1.0,
        "ce_template_range": elimination.template_range,
    }
