"""Recipes: the pydantic schema of a training/evaluation run, and loading one from a file.

A recipe is data validated once at the edge; code below the CLI receives a :class:`Recipe`,
never a raw dict. Plugin sections (the ``modality`` and every dataset entry) are validated by the
schema the named plugin declares, looked up in the plugin registry, so an option typo inside them
is reported with its full path (``data.train.0.root``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from mmtrack_kd.errors import MmtrackError, RecipeError, validation_problems
from mmtrack_kd.plugins import default_registry
from mmtrack_kd.recipe_yaml import apply_override, parse_override, parse_yaml


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors."""

    # allow_inf_nan=False: `lr: .inf` or `nan` is a typo to report, never a value to train with
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- plugin sections


class PluginChoice(BaseModel):
    """A section that names a plugin and carries that plugin's options next to the name.

    Validation runs in two passes: the ``name`` is read, the plugin is looked up in the registry
    passed as validation context (``{"registry": Registry}``, the installed plugins otherwise),
    and the remaining keys are validated by the plugin's own ``Options`` model.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    kind: ClassVar[Literal["modality", "dataset"]]

    name: str = Field(description="Name of the plugin that handles this section.")
    _options: BaseModel = PrivateAttr()

    @property
    def options(self) -> BaseModel:
        """The plugin's validated options object."""
        return self._options

    @property
    def plugin(self) -> type:
        """The plugin class (looked up in the installed plugins)."""
        return default_registry().get(self.kind, self.name)

    @model_validator(mode="wrap")
    @classmethod
    def _validate_with_plugin_schema(
        cls, data: Any, handler: Any, info: ValidationInfo
    ) -> "PluginChoice":
        if isinstance(data, cls):
            return data
        if isinstance(data, str):  # `modality: thermal` is short for `modality: {name: thermal}`
            data = {"name": data}
        choice = handler(data)
        registry = (info.context or {}).get("registry")
        if registry is None:
            registry = default_registry()
        try:
            plugin = registry.get(cls.kind, choice.name)
        except MmtrackError as error:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("unknown_plugin", str(error)),
                        loc=("name",),
                        input=choice.name,
                    )
                ],
            ) from None
        options = {key: value for key, value in (choice.model_extra or {}).items()}
        options.update(cls._declared_options(choice))
        choice._options = plugin.Options.model_validate(options, context=info.context)
        return choice

    @classmethod
    def _declared_options(cls, choice: "PluginChoice") -> dict[str, Any]:
        """Declared fields of a subclass that the plugin's options also receive."""
        return {}

    @model_serializer(mode="wrap")
    def _serialise(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        own = {key: value for key, value in handler(self).items() if key not in (self.model_extra or {})}
        options = self._options.model_dump(mode="json") if hasattr(self, "_options") else {}
        return {**own, **options}


class ModalityChoice(PluginChoice):
    """The auxiliary modality: ``name`` of a modality adapter plus that adapter's options."""

    kind: ClassVar[Literal["modality", "dataset"]] = "modality"


class DatasetChoice(PluginChoice):
    """One dataset: ``name`` of a dataset plugin, its options (``root``, ``split``, ...) and the
    share of training pairs drawn from it."""

    kind: ClassVar[Literal["modality", "dataset"]] = "dataset"

    weight: float = Field(1.0, gt=0, description="Relative share of samples drawn from it.")


# --------------------------------------------------------------------------- engine sections


class SamplerConfig(Section):
    """Training pair sampling and augmentation (OSTrack's recipe)."""

    max_gap: int = Field(200, ge=0, description="Largest frame gap between template and search.")
    scale_jitter: float = Field(0.25, ge=0, description="Search crop scale jitter: exp(N(0,1)*s).")
    centre_jitter: float = Field(3.0, ge=0, description="Search centre shift, in sqrt(area) units.")
    template_scale_jitter: float = Field(0.0, ge=0, description="Template crop scale jitter.")
    template_centre_jitter: float = Field(0.0, ge=0, description="Template centre shift.")
    flip_probability: float = Field(0.5, ge=0, le=1, description="Joint horizontal flip.")
    brightness_jitter: float = Field(0.2, ge=0, description="Brightness factor range, RGB.")
    grayscale_probability: float = Field(0.05, ge=0, le=1, description="RGB to grey, RGB only.")
    max_retries: int = Field(100, ge=1, description="Attempts to find a visible pair.")


class DataConfig(Section):
    """Datasets for training and validation and how pairs are drawn from them."""

    train: list[DatasetChoice] = Field(default_factory=list, description="Training datasets.")
    val: list[DatasetChoice] = Field(default_factory=list, description="Validation datasets.")
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    workers: int = Field(2, ge=0, description="DataLoader worker processes.")
    val_samples: int = Field(1000, ge=0, description="Fixed validation pairs per evaluation.")


class BackboneConfig(Section):
    """The ViT shared by teacher and student (ViT-B/16 by default)."""

    depth: int = Field(12, ge=1)
    embed_dim: int = Field(768, ge=8)
    num_heads: int = Field(12, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    patch_size: int = Field(16, ge=1)
    drop_path: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "BackboneConfig":
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}"
            )
        return self


class ModelConfig(Section):
    """Sizes shared by every model of a run."""

    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    template_size: int = Field(128, ge=16, description="Template crop side in pixels.")
    search_size: int = Field(256, ge=16, description="Search crop side in pixels.")
    template_factor: float = Field(2.0, gt=0, description="Template crop side / sqrt(w*h).")
    search_factor: float = Field(4.0, gt=0, description="Search crop side / sqrt(w*h).")
    head_channels: int = Field(256, ge=8, description="First width of the centre head.")
    fusion: Literal["linear", "conv"] = Field(
        "linear", description="Search-half fusion: one Linear 2D->D, or MPLT's conv3x3+BN+ReLU."
    )
    pretrained: Path | None = Field(
        None, description="OSTrack, MAE or timm checkpoint to start the backbone (and head) from."
    )

    @model_validator(mode="after")
    def _sizes_fit_patches(self) -> "ModelConfig":
        patch = self.backbone.patch_size
        for key in ("template_size", "search_size"):
            if getattr(self, key) % patch:
                raise ValueError(f"{key} {getattr(self, key)} is not a multiple of patch {patch}")
        return self


class OptimConfig(Section):
    """One stage's optimisation schedule (the paper's numbers by default)."""

    epochs: int = Field(15, ge=1)
    batch_size: int = Field(24, ge=1, description="Global batch (all processes together).")
    samples_per_epoch: int = Field(60000, ge=1)
    lr_backbone: float = Field(7.5e-5, gt=0)
    lr: float = Field(7.5e-4, gt=0, description="Learning rate of everything but the backbone.")
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["step", "cosine"] = Field(
        "step", description="After the warm-up, step: the rates drop by lr_drop_factor after "
        "lr_drop_epoch epochs (the paper's); cosine: they fall along half a cosine to 0 at the "
        "last update (for short runs).")
    lr_drop_epoch: int = Field(10, ge=0, description="Multiply learning rates by lr_drop_factor "
                               "after this many epochs (0: never). schedule: step only.")
    lr_drop_factor: float = Field(0.1, gt=0, description="schedule: step only.")
    warmup_epochs: float = Field(0.0, ge=0)
    grad_clip: float = Field(0.1, ge=0, description="Gradient norm clip (0: off).")
    accumulate: int = Field(1, ge=1, description="Gradient accumulation steps per update.")

    @model_validator(mode="after")
    def _step_keys_need_step_schedule(self) -> "OptimConfig":
        # A drop the cosine schedule would ignore is a recipe mistake, not a setting. Compared
        # with the defaults, not model_fields_set: a run's recipe.yaml carries every default.
        if self.schedule != "step":
            fields = type(self).model_fields
            given = [key for key in ("lr_drop_epoch", "lr_drop_factor")
                     if getattr(self, key) != fields[key].default]
            if given:
                verb = "applies" if len(given) == 1 else "apply"
                raise ValueError(f"{' and '.join(given)} {verb} to schedule: step only; this "
                                 f"stage's schedule is {self.schedule}")
        return self


class LossConfig(Section):
    """Tracking loss weights (focal / GIoU / L1)."""

    focal: float = Field(1.0, ge=0)
    giou: float = Field(2.0, ge=0)
    l1: float = Field(5.0, ge=0)


class PrompterConfig(Section):
    """The teacher's mutual prompters and the paper's ablation switches."""

    enabled: bool = Field(True, description="False: two independent streams (ablation).")
    spatial_attention: bool = Field(True, description="Attention over positions (7x7 conv map).")
    token_attention: bool = Field(True, description="Attention over channels (pooled bottleneck).")
    history: bool = Field(True, description="Feed each prompter the previous layer's prompt.")
    layer_type: Literal["linear", "conv2d"] = Field("linear", description="1x1 layers as.")
    reduction: int = Field(8, ge=1, description="Channel-attention bottleneck D -> D/r -> D.")
    mplt_compat: bool = Field(
        False,
        description="Reproduce the MPLT teacher's forward quirk (needed to use converted MPLT "
        "weights; set model.fusion: conv too).",
    )

    @model_validator(mode="after")
    def _mplt_quirk_needs_its_parts(self) -> "PrompterConfig":
        # The quirk lives in the history and token-attention paths (REFERENCE.md, MPLT).
        if self.mplt_compat and not (self.history and self.token_attention):
            raise ValueError("mplt_compat needs history: true and token_attention: true")
        return self


_FRESH_HELP = (
    "Parts of the model that may start fresh when the stage starts from a file (model.pretrained, "
    "or the teacher's weights for a student): named parts (backbone, prompters, fusion, "
    "token_fusion, head, modality_embed, aux_patch_embed) or parameter-name prefixes. Any other model tensor the file "
    "does not fill is an error listing it. Unset: the stage's defaults ({default})."
)
_UNUSED_HELP = (
    "Parts of the start file that may be left without a place in the model (same names as "
    "'fresh'); anything else left over is an error listing it. Unset: the stage's defaults "
    "({default})."
)


class TeacherConfig(Section):
    """The two-stream teacher and its training stage."""

    prompter: PrompterConfig = Field(default_factory=PrompterConfig)
    fresh: list[str] | None = Field(None, description=_FRESH_HELP.format(
        default="prompters and fusion from an OSTrack file, and the head too from an MAE or timm "
                "file; nothing from an MPLT or mmtrack-kd file"))
    unused: list[str] | None = Field(None, description=_UNUSED_HELP.format(default="none"))
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(epochs=15, batch_size=24))


class CandidateEliminationConfig(Section):
    """OSTrack-style removal of search tokens that the template ignores (beyond the paper)."""

    enabled: bool = False
    layers: list[int] = Field(default_factory=lambda: [3, 6, 9], description="0-indexed blocks.")
    keep_ratio: float = Field(0.7, gt=0, le=1)
    template_range: Literal["centre", "all"] = Field(
        "centre", description="Template tokens whose attention ranks the search tokens: the centre "
        "token (OSTrack's CTR_POINT) or the mean over all template tokens.")
    ramp_epochs: tuple[int, int] = Field(
        (2, 6), description="Keep ratio goes from 1 to keep_ratio between these epochs."
    )
    pairing: Literal["independent", "paired"] = Field(
        "independent",
        description="Two modalities: each keeps its own best search tokens, or co-located RGB and "
        "auxiliary tokens are kept or dropped together (scored by their mean).",
    )


class StudentShapeConfig(Section):
    """How much cheaper than the teacher the student is (the defaults are the paper's student)."""

    depth: int | None = Field(None, ge=1, description="Student blocks; None: model.backbone.depth.")
    blocks_from: list[int] | Literal["spread"] = Field(
        "spread",
        description="The 1-indexed teacher (or model.pretrained) block that starts each student "
        "block, one per student block, increasing; spread: block ceil(j * L / depth) for student "
        "block j of L (every other block at half depth, all blocks at full depth).",
    )
    fuse_after: int = Field(
        0, ge=0, description="Fuse co-located RGB and auxiliary tokens into one after this "
        "student block (0: never); later blocks run on half the tokens.",
    )
    aux_pool: int = Field(
        1, ge=1, description="Average-pool the auxiliary tokens aux_pool x aux_pool (2: a quarter "
        "of the auxiliary tokens).",
    )

    def resolve_depth(self, teacher_depth: int) -> int:
        """The student's number of blocks."""
        return self.depth or teacher_depth

    def resolve_blocks(self, teacher_depth: int) -> list[int]:
        """The 1-indexed teacher block each student block starts from (one per student block)."""
        if isinstance(self.blocks_from, list):
            return list(self.blocks_from)
        depth = self.resolve_depth(teacher_depth)
        return [math.ceil(j * teacher_depth / depth) for j in range(1, depth + 1)]

    def problems(self, teacher_depth: int, grids: tuple[int, int]) -> list[tuple[tuple[str, ...], str]]:
        """What makes this shape impossible at a teacher of ``teacher_depth`` blocks, by key."""
        depth = self.resolve_depth(teacher_depth)
        out: list[tuple[tuple[str, ...], str]] = []
        if depth > teacher_depth:
            out.append((("depth",), f"{depth} blocks: more than the teacher's {teacher_depth}"))
        blocks = self.resolve_blocks(teacher_depth)
        if len(blocks) != depth:
            out.append((("blocks_from",), f"{len(blocks)} entries for a student of {depth} blocks"))
        if any(not 1 <= b <= teacher_depth for b in blocks) or blocks != sorted(set(blocks)):
            out.append((("blocks_from",), f"{blocks}: must increase within 1..{teacher_depth}"))
        if self.fuse_after >= depth:
            out.append((("fuse_after",), f"{self.fuse_after} must be below the student's {depth} blocks "
                        "(fusing after the last block is the plain student's final fusion)"))
        if self.aux_pool > 1 and any(grid % self.aux_pool for grid in grids):
            out.append((("aux_pool",), f"{self.aux_pool} does not divide the token grids {grids}"))
        return out

    @property
    def reduces_tokens(self) -> bool:
        return bool(self.fuse_after) or self.aux_pool > 1


class StudentConfig(Section):
    """The one-stream student and its training stage."""

    single_modality: bool = Field(False, description="RGB only: exactly OSTrack (baseline).")
    modality_embedding: bool = Field(True, description="Learned, zero-initialised.")
    shape: StudentShapeConfig = Field(default_factory=StudentShapeConfig)
    candidate_elimination: CandidateEliminationConfig = Field(
        default_factory=CandidateEliminationConfig
    )
    init: Literal["teacher", "pretrained", "none"] = Field(
        "teacher", description="Start from the teacher's weights, model.pretrained, or scratch."
    )
    fresh: list[str] | None = Field(None, description=_FRESH_HELP.format(
        default="the modality embedding from the teacher; fusion and modality embedding from an "
                "OSTrack file into a two-modality student, the head too from MAE or timm; nothing "
                "into the RGB-only student from OSTrack"))
    unused: list[str] | None = Field(None, description=_UNUSED_HELP.format(
        default="the teacher's prompters, from a teacher file"))
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(epochs=13, batch_size=12))


class FeatureDistillConfig(Section):
    """MSE between student and teacher tokens after chosen blocks."""

    weight: float = Field(0.035, ge=0)
    layers: list[int] | Literal["even", "first-half", "second-half", "all"] = Field(
        "even",
        description="1-indexed teacher blocks, or a rule over the teacher's depth: the paper's "
        "even layers (2, 4, ..., 12 at depth 12), first six, last six, all (its Table 5). Each "
        "is matched with the student block started from it (student.shape.blocks_from); a rule "
        "keeps the blocks that start a student block.",
    )
    pairs: list[tuple[int, int]] | None = Field(
        None, description="Explicit (student block, teacher block) pairs, 1-indexed; replaces layers."
    )
    weighting: Literal["uniform", "layer_index"] = Field(
        "uniform", description="Per-layer weights: equal, or proportional to the layer index."
    )

    def resolve_layers(self, depth: int) -> list[int]:
        """The 1-indexed block numbers to distil at a model of ``depth`` blocks."""
        if isinstance(self.layers, list):
            return list(self.layers)
        every = list(range(1, depth + 1))
        half = depth // 2
        return {
            "even": every[1::2],
            "first-half": every[:half],
            "second-half": every[half:],
            "all": every,
        }[self.layers]

    def resolve_pairs(self, teacher_depth: int, blocks_from: list[int]) -> list[tuple[int, int]]:
        """``(student block, teacher block)`` pairs, 1-indexed, in the student's block order."""
        if self.pairs is not None:
            return [tuple(pair) for pair in self.pairs]  # type: ignore[misc]
        wanted = set(self.resolve_layers(teacher_depth))
        return [(student, teacher) for student, teacher in enumerate(blocks_from, 1) if teacher in wanted]


class ResponseDistillConfig(Section):
    """Soft-target focal loss between temperature-scaled score logits."""

    weight: float = Field(0.7, ge=0)
    temperature: float = Field(2.0, gt=0)


class DistillConfig(Section):
    """Knowledge distillation from teacher to student (both weights 0: FOST)."""

    feature: FeatureDistillConfig = Field(default_factory=FeatureDistillConfig)
    response: ResponseDistillConfig = Field(default_factory=ResponseDistillConfig)
    teacher_checkpoint: Literal["best", "last"] = "best"


class TrainConfig(Section):
    """Settings common to both stages."""

    stages: list[Literal["teacher", "student"]] = Field(
        default_factory=lambda: ["teacher", "student"]
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    processes: int = Field(
        1,
        ge=1,
        description="Training processes on this machine (DistributedDataParallel over gloo on "
        "CPUs, each with an equal share of the cores; on CUDA at most one per GPU). Above 1, "
        "`mmtrack-kd train` starts them itself through torchrun's launcher; under an outer "
        "torchrun its process count wins. On a CPU, processes of one thread each beat one "
        "process of several threads for small models (thread barriers cost more than their "
        "small matrix products gain). The batch sizes are global: they must divide by it.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on CUDA when supported, fp32 on CPU."
    )
    output_dir: Path = Field(Path("runs"), description="Run folders go in here.")
    checkpoint_every: int = Field(500, ge=1, description="Steps between last.pt saves.")
    log_every: int = Field(10, ge=1)
    loss: LossConfig = Field(default_factory=LossConfig)


class EvaluateConfig(Section):
    """Default evaluation targets."""

    datasets: list[DatasetChoice] = Field(default_factory=list)
    workers: int = Field(1, ge=1, description="Tracker worker processes.")
    hann_window: bool = True


class Recipe(Section):
    """A whole run: modality, data, models, stages, distillation and evaluation."""

    name: str | None = Field(None, description="Run name; the recipe file's stem by default.")
    seed: int = 0
    modality: ModalityChoice
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    @model_validator(mode="after")
    def _layers_exist(self) -> "Recipe":
        depth = self.model.backbone.depth
        errors: list[tuple[tuple[str, ...], str]] = []
        shape = self.student.shape
        patch = self.model.backbone.patch_size
        grids = (self.model.template_size // patch, self.model.search_size // patch)
        shape_problems = shape.problems(depth, grids)
        errors += [(("student", "shape", *loc), message) for loc, message in shape_problems]
        student_depth = shape.resolve_depth(depth)
        feature = self.distill.feature
        bad = [layer for layer in feature.resolve_layers(depth) if not 1 <= layer <= depth]
        if bad:
            errors.append(
                (("distill", "feature", "layers"), f"layers {bad} outside 1..{depth} (teacher depth)")
            )
        elif not shape_problems:
            blocks = shape.resolve_blocks(depth)
            if feature.pairs is not None:
                wrong = [p for p in feature.pairs if not (1 <= p[0] <= student_depth and 1 <= p[1] <= depth)]
                if wrong:
                    errors.append((("distill", "feature", "pairs"), f"pairs {wrong} outside student blocks "
                                   f"1..{student_depth} / teacher blocks 1..{depth}"))
            elif isinstance(feature.layers, list) and (unmatched := sorted(set(feature.layers) - set(blocks))):
                errors.append((("distill", "feature", "layers"), f"teacher blocks {unmatched} start no "
                               f"student block (student.shape.blocks_from is {blocks})"))
            if feature.weight > 0 and not self.student.single_modality and not feature.resolve_pairs(depth, blocks):
                errors.append((("distill", "feature", "layers"), f"no teacher block of {feature.layers!r} "
                               f"starts a student block (student.shape.blocks_from is {blocks})"))
        if self.student.single_modality and shape.reduces_tokens:
            errors.append((("student", "shape"), "fuse_after and aux_pool need two modalities"))
        elimination = self.student.candidate_elimination
        bad = [layer for layer in elimination.layers if not 0 <= layer < student_depth]
        if elimination.enabled and bad:
            errors.append(
                (
                    ("student", "candidate_elimination", "layers"),
                    f"layers {bad} outside 0..{student_depth - 1} (0-indexed student blocks)",
                )
            )
        if elimination.enabled and shape.reduces_tokens:
            errors.append((("student", "candidate_elimination", "enabled"),
                           "candidate elimination needs the plain token layout (student.shape."
                           "fuse_after 0 and aux_pool 1)"))
        for stage in ("teacher", "student"):
            optim = getattr(self, stage).optim
            if optim.batch_size % (self.train.processes * optim.accumulate):
                errors.append(((stage, "optim", "batch_size"), f"{optim.batch_size} is the global batch; "
                               f"it must divide by train.processes {self.train.processes} x "
                               f"{stage}.optim.accumulate {optim.accumulate}"))
        epochs = self.student.optim.epochs
        start, end = elimination.ramp_epochs
        if elimination.enabled and elimination.keep_ratio < 1 and (end > epochs or start > end):
            # Otherwise the student never trains at the keep ratio it tracks with (and with
            # start >= epochs it never sees a token dropped at all).
            errors.append(
                (
                    ("student", "candidate_elimination", "ramp_epochs"),
                    f"ramp {start}..{end} must lie within the student's {epochs} epochs "
                    "(start <= end <= student.optim.epochs) so that training reaches keep_ratio",
                )
            )
        if errors:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("recipe_value", message), loc=loc, input=None
                    )
                    for loc, message in errors
                ],
            )
        return self

    _source: str | None = PrivateAttr(None)

    @property
    def run_name(self) -> str:
        """The run's name (``name`` or the recipe file's stem, set by :func:`load_recipe`)."""
        return self.name or "run"

    @property
    def source(self) -> str:
        """Where the recipe came from, for messages: its file (set by :func:`load_recipe`), else
        its run name."""
        return self._source or self.run_name


def validate_recipe(data: Any, source: str = "<recipe>", registry: Any = None) -> Recipe:
    """Validate raw recipe data; every problem is reported at once with its path."""
    if not isinstance(data, dict):
        raise RecipeError(source, [("(recipe)", "the recipe must be a mapping of sections")])
    context = {"registry": registry} if registry is not None else None
    try:
        return Recipe.model_validate(data, context=context)
    except ValidationError as error:
        raise RecipeError(source, validation_problems(error)) from None


def load_recipe(
    path: Path | str, overrides: list[str] = (), registry: Any = None
) -> Recipe:
    """Read a recipe file, apply ``--set`` overrides, validate. The run's name defaults to the
    file's stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RecipeError(str(path), [("(file)", f"cannot read: {error.strerror or error}")]) from None
    except UnicodeDecodeError as error:
        raise RecipeError(str(path), [("(file)", f"not UTF-8 text (byte {error.start}: "
                                                 f"{error.object[error.start:error.start + 1]!r})")]) from None
    data = parse_yaml(text, str(path))
    if data is None:
        data = {}
    for override in overrides:
        key_path, value = parse_override(override)
        if not isinstance(data, dict):
            break
        apply_override(data, key_path, value)
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    recipe = validate_recipe(data, str(path), registry)
    recipe._source = str(path)
    return recipe


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe (defaults filled in) as YAML."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
