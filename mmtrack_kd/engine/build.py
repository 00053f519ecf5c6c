"""From a validated recipe to the objects a stage needs: adapters, datasets, models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mmtrack_kd.data import DatasetPlugin, ModalityAdapter
from mmtrack_kd.errors import RecipeError
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
    choices: list[DatasetChoice], section: str, modality: str, registry: Registry | None = None
) -> list[tuple[DatasetPlugin, float]]:
    """Dataset plugin instances with their weights; each must carry the recipe's modality."""
    registry = registry or default_registry()
    built = []
    for index, choice in enumerate(choices):
        plugin = registry.dataset(choice.name)
        if modality not in plugin.modalities:
            raise RecipeError(
                "recipe",
                [
                    (
                        f"{section}.{index}.name",
                        f"dataset {choice.name} carries {', '.join(plugin.modalities)}; the "
                        f"recipe's modality is {modality}",
                    )
                ],
            )
        built.append((plugin(choice.options), choice.weight))
    return built


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
