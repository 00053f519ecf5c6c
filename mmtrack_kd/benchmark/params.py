"""The four models a benchmark compares, built at a recipe's sizes, and ``--what params``.

* ``teacher``: the two-stream teacher with the recipe's prompters.
* ``student``: the one-stream student, candidate elimination off.
* ``student_ce``: the same student with candidate elimination: the recipe's layers and keep
  ratio (OSTrack's blocks 3, 6, 9 and 0.7 when the recipe leaves it disabled).
* ``baseline``: the single-modality student (OSTrack), RGB only, candidate elimination as the
  recipe configures it (off by default, so that it compares with ``student``).

And the cheaper student shapes (:data:`SHAPES`), each the ``student`` row with its shape changed,
sized relative to the teacher's depth ``L`` (ViT-B: ``L = 12``):

* ``student_half`` / ``student_third``: ``L/2`` / ``L/3`` blocks;
* ``student_half_fused`` / ``student_third_fused``: the same, RGB and auxiliary tokens fused into
  one after the first block (every later block runs on half the tokens);
* ``student_pooled`` / ``student_half_pooled``: the auxiliary tokens pooled 2 x 2 (a quarter of
  them), at full and at half depth.

Models are built from :func:`mmtrack_kd.engine.build.model_config`, with random weights (speed
and size do not depend on them); nothing is downloaded or loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mmtrack_kd.engine.stages import StudentStage, TeacherStage
from mmtrack_kd.models import build_model
from mmtrack_kd.models.profile import count_flops, count_parameters
from mmtrack_kd.recipe import Recipe

#: Student shapes: (depth as a fraction of the teacher's, blocks before token fusion (0: none),
#: auxiliary pooling).
SHAPES: dict[str, tuple[float, int, int]] = {
    "student_half": (1 / 2, 0, 1),
    "student_third": (1 / 3, 0, 1),
    "student_half_fused": (1 / 2, 1, 1),
    "student_third_fused": (1 / 3, 1, 1),
    "student_pooled": (1, 0, 2),
    "student_half_pooled": (1 / 2, 0, 2),
}

MODEL_NAMES = ("teacher", "student", "student_ce", "baseline", *SHAPES)

LABELS = {
    "teacher": "teacher",
    "student": "student",
    "student_ce": "student+CE",
    "baseline": "RGB baseline",
}


@dataclass
class BenchModel:
    """One benchmarked model: how to build it and the adapters its tracker reads frames with."""

    name: str
    kind: str
    config: dict[str, Any]
    adapters: tuple = field(default_factory=tuple)

    @property
    def label(self) -> str:
        if self.name in SHAPES:
            parts = [f"student {self.config['depth']} blocks"]
            if self.config.get("fuse_after"):
                parts.append(f"fused after {self.config['fuse_after']}")
            if self.config.get("aux_pool", 1) > 1:
                parts.append(f"aux pooled {self.config['aux_pool']}x{self.config['aux_pool']}")
            return ", ".join(parts)
        return LABELS.get(self.name, self.name)

    def build(self) -> nn.Module:
        """A fresh model in eval mode (random weights)."""
        return build_model(self.kind, self.config).eval()


def elimination_layers(layers: list[int], depth: int) -> list[int]:
    """The recipe's elimination blocks when they fit the depth; otherwise OSTrack's blocks
    3, 6, 9 of 12 scaled to ``depth`` (a disabled section keeps its ViT-B defaults)."""
    if all(0 <= layer < depth for layer in layers):
        return layers
    scaled = sorted({round(layer * depth / 12) for layer in (3, 6, 9)})
    return [layer for layer in scaled if 0 < layer < depth] or [depth - 1]


def benchmark_models(recipe: Recipe, registry: Any = None, names: tuple[str, ...] = MODEL_NAMES) -> list[BenchModel]:
    """The models named in ``names`` (default: all four) at the recipe's sizes."""
    setup = TeacherStage(recipe).modalities(registry)
    adapters = tuple(setup.adapters)
    aux = setup.aux_channels
    teacher_kind, teacher_config = TeacherStage(recipe).model_config(aux)
    student_kind, student_config = StudentStage(recipe).model_config(aux)
    # the student's model_config already follows the recipe's single_modality switch;
    # the benchmark always wants the two-modality student and the baseline side by side.
    two = {**student_config, "num_modalities": 2, "modality_embedding": recipe.student.modality_embedding}
    elimination = recipe.student.candidate_elimination
    with_ce = {**two, "ce_layers": elimination_layers(list(elimination.layers), recipe.model.backbone.depth),
               "ce_keep_ratio": elimination.keep_ratio}
    without_ce = {**two, "ce_layers": [], "ce_keep_ratio": 1.0}
    baseline = {
        **two,
        "num_modalities": 1,
        "modality_embedding": False,
        "ce_layers": list(elimination.layers) if elimination.enabled else [],
        "ce_keep_ratio": elimination.keep_ratio if elimination.enabled else 1.0,
    }
    depth = recipe.model.backbone.depth
    every = {
        **{name: BenchModel(name, student_kind, shape_config(without_ce, depth, *fractions), adapters)
           for name, fractions in SHAPES.items()},
        "teacher": BenchModel("teacher", teacher_kind, teacher_config, adapters),
        "student": BenchModel("student", student_kind, without_ce, adapters),
        "student_ce": BenchModel("student_ce", student_kind, with_ce, adapters),
        "baseline": BenchModel("baseline", student_kind, baseline, adapters[:1]),
    }
    return [every[name] for name in names]


def shape_config(student: dict[str, Any], teacher_depth: int, depth: float, fuse_after: int,
                 aux_pool: int) -> dict[str, Any]:
    """A student configuration with its depth set as a fraction of the teacher's (token fusion
    needs a block after it: a one-block student stays unfused)."""
    blocks = max(1, round(depth * teacher_depth))
    fuse = min(blocks - 1, fuse_after)
    return {**student, "depth": blocks, "fuse_after": fuse, "aux_pool": aux_pool}


def model_size(model: nn.Module) -> dict[str, Any]:
    """Parameters (total, trainable) and FLOPs / GFLOPs per frame (batch 1, FlopCounterMode)."""
    total, trainable = count_parameters(model)
    flops = count_flops(model, batch_size=1)
    return {"parameters": total, "trainable": trainable, "flops": flops, "gflops": flops / 1e9, "gmacs": flops / 2e9}


def params_benchmark(recipe: Recipe, registry: Any = None, names: tuple[str, ...] = MODEL_NAMES) -> dict[str, Any]:
    """``--what params``: size and FLOPs per frame of the four models.

    Returns ``{"what": "params", "sizes": {...}, "models": {name: {"label", "kind", "parameters",
    "trainable", "flops", "gflops", "gmacs"}}, "ratios": {"student/teacher": {...}}}``.
    """
    rows: dict[str, Any] = {}
    for entry in benchmark_models(recipe, registry, names):
        model = entry.build()
        rows[entry.name] = {"label": entry.label, "kind": entry.kind, **model_size(model)}
        del model
    result: dict[str, Any] = {"what": "params", "sizes": recipe_sizes(recipe), "models": rows}
    result["ratios"] = ratios(rows, ("parameters", "gflops"))
    return result


def recipe_sizes(recipe: Recipe) -> dict[str, Any]:
    backbone = recipe.model.backbone
    return {
        "template_size": recipe.model.template_size,
        "search_size": recipe.model.search_size,
        "depth": backbone.depth,
        "embed_dim": backbone.embed_dim,
        "num_heads": backbone.num_heads,
        "patch_size": backbone.patch_size,
        "modality": recipe.modality.name,
    }


def ratios(rows: dict[str, dict[str, Any]], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``<name>/teacher`` ratios of the given figures for every other row (same precision: the
    rows' own figures)."""
    out: dict[str, dict[str, float]] = {}
    if "teacher" not in rows:
        return out
    for name in rows:
        if name == "teacher":
            continue
        values = {}
        for key in keys:
            a, b = rows[name].get(key), rows["teacher"].get(key)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
                values[key] = a / b
        out[f"{name}/teacher"] = values
    return out
