"""The two training stages: what the teacher and the distilled student do differently.

A stage owns the modalities it reads, its model (kind, configuration, start weights and which
parts a start file may leave fresh or unused), whether it needs a teacher, its loss terms
(tracking loss; for the student also feature and response distillation against a frozen teacher)
and its keep-ratio schedule. The loop (:class:`mmtrack_kd.engine.trainer.StageTrainer`), the
``train`` command and the recipe checks are the same for both and ask the stage.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmtrack_kd.checkpoints import FORMAT, check_declared, load_model, load_pretrained
from mmtrack_kd.data import ModalityAdapter
from mmtrack_kd.engine.losses import DistillationLoss, FeatureDistillLoss, ResponseDistillLoss, TrackingLoss
from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.models import BackboneSettings, OneStreamStudent, TwoStreamTeacher, build_model
from mmtrack_kd.plugins import Registry, default_registry
from mmtrack_kd.recipe import OptimConfig, Recipe, StudentConfig, TeacherConfig
from mmtrack_kd.runtime.distributed import DistributedContext

log = logging.getLogger(__name__)

Stage = Literal["teacher", "student"]

#: Backbone settings a stored ``model_config`` does not list among the backbone's: ``qkv_bias``
#: has no recipe key (the model's default), ``aux_in_chans`` comes with the stage's modality
#: arguments. Checkpoints store the config, so its keys keep their order.
_BACKBONE_KEYS_NOT_SHARED = ("qkv_bias", "aux_in_chans")


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


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def loss_inputs(output: Any) -> dict[str, Any]:
    """A model's :class:`TrackerOutput` as the mapping the losses read (``keep_mask`` is the
    per-block token mask of candidate elimination)."""
    return {
        "score_map": output.score_map,
        "score_logits": output.score_logits,
        "boxes": output.boxes,
        "features": output.features,
        "keep_mask": output.feature_masks,
    }


def keep_ratio_at(recipe: Recipe, epoch: int) -> float | None:
    """Candidate elimination's scheduled keep ratio: 1 until the ramp starts, then linear to
    the target (OSTrack's schedule), None when elimination is off."""
    elimination = recipe.student.candidate_elimination
    if not elimination.enabled:
        return None
    start, end = elimination.ramp_epochs
    if epoch < start:
        return 1.0
    if epoch >= end or end <= start:
        return elimination.keep_ratio
    progress = (epoch - start) / (end - start)
    return 1.0 - (1.0 - elimination.keep_ratio) * progress


class TrainingStage:
    """What one stage of a recipe trains and how its loss is computed.

    Args:
        recipe: the validated recipe.
        ctx: where this process runs (its device; rank 0 logs); default: one process on the CPU
            (enough to ask a stage what it reads and builds).
        teacher_checkpoint: the teacher the student distils from and may start from.
    """

    name: ClassVar[Stage]
    #: the kind of model the stage trains (:data:`mmtrack_kd.models.MODEL_KINDS`)
    kind: ClassVar[str]
    #: whether the stage works with a teacher checkpoint at all (``--teacher`` applies to it)
    takes_teacher: ClassVar[bool] = False

    def __init__(self, recipe: Recipe, ctx: DistributedContext | None = None,
                 teacher_checkpoint: Path | None = None) -> None:
        self.recipe = recipe
        self.ctx = ctx if ctx is not None else DistributedContext()
        self.teacher_checkpoint = teacher_checkpoint
        self.tracking_loss = TrackingLoss(recipe.train.loss.focal, recipe.train.loss.giou, recipe.train.loss.l1)
        #: whether a teacher's outputs enter the loss
        self.distilling = False
        #: whether the stage needs a teacher checkpoint (to distil from or to start from)
        self.needs_teacher = False

    @property
    def section(self) -> TeacherConfig | StudentConfig:
        """The recipe's section of this stage (``teacher`` or ``student``)."""
        raise NotImplementedError

    @property
    def optim(self) -> OptimConfig:
        """The stage's optimiser settings."""
        return self.section.optim

    # -- the modalities -------------------------------------------------------------------------

    @property
    def single_modality(self) -> bool:
        """True for the RGB-only baseline (the student with ``student.single_modality``)."""
        return False

    @property
    def aux_modality(self) -> str:
        """The auxiliary modality the stage reads: the recipe's, or ``rgb`` when RGB-only."""
        return "rgb" if self.single_modality else self.recipe.modality.name

    def modalities(self, registry: Registry | None = None) -> ModalitySetup:
        """The adapters this stage reads, RGB first: the RGB adapter and, unless
        single-modality, the recipe's auxiliary adapter with its options."""
        registry = registry or default_registry()
        rgb = registry.modality("rgb")()
        if self.single_modality:
            return ModalitySetup((rgb,))
        modality = self.recipe.modality
        return ModalitySetup((rgb, registry.modality(modality.name)(modality.options)))

    # -- the model ------------------------------------------------------------------------------

    def backbone_settings(self, aux_channels: int) -> BackboneSettings:
        """The backbone of the stage's model, from the recipe's ``model`` section."""
        model = self.recipe.model
        backbone = model.backbone
        return BackboneSettings(
            template_size=model.template_size, search_size=model.search_size, patch_size=backbone.patch_size,
            embed_dim=backbone.embed_dim, depth=backbone.depth, num_heads=backbone.num_heads,
            mlp_ratio=backbone.mlp_ratio, drop_path_rate=backbone.drop_path, aux_in_chans=aux_channels,
        )

    def model_config(self, aux_channels: int) -> tuple[str, dict[str, Any]]:
        """``(kind, constructor arguments)`` of the stage's model (what a checkpoint stores):
        the backbone's settings, the head, then the stage's own arguments."""
        settings = self.backbone_settings(aux_channels)
        shared = {key: value for key, value in asdict(settings).items() if key not in _BACKBONE_KEYS_NOT_SHARED}
        return self.kind, {**shared, "head_channels": self.recipe.model.head_channels,
                           **self.model_arguments(settings)}

    def model_arguments(self, backbone: BackboneSettings) -> dict[str, Any]:
        """The constructor arguments of the stage's model beyond the backbone and the head."""
        raise NotImplementedError

    def build(self, modalities: ModalitySetup, start_weights: bool = True) -> tuple[str, dict[str, Any], nn.Module]:
        """``(kind, model_config, model)``: the stage's model built from the recipe's seed (the
        same initial weights on every rank; DDP also broadcasts rank 0's when it wraps), started
        from its start file unless ``start_weights`` is False (a resumed stage's weights come
        from its ``last.pt``)."""
        kind, config = self.model_config(modalities.aux_channels)
        torch.manual_seed(self.recipe.seed)
        model = build_model(kind, config)
        if start_weights:
            self.initialise(model)
        return kind, config, model

    def start_file(self) -> Path | None:
        """The checkpoint the stage's weights start from (None: fresh initialisation)."""
        return self.recipe.model.pretrained

    def block_sources(self) -> list[int] | None:
        """The 0-indexed block of the start file that starts each model block (None: by number)."""
        return None

    def initialise(self, model: nn.Module) -> None:
        """Load the start file into ``model``; a file that leaves a part fresh or a tensor
        unused beyond what :meth:`declared_parts` allows is refused."""
        source = self.start_file()
        if source is None:
            return
        report = load_pretrained(model, source, block_sources=self.block_sources())
        fresh, unused = self.declared_parts(report.format)
        check_declared(report, fresh, unused)
        if self.ctx.is_main:
            # A student started from its own teacher leaves the prompters unused by design: a
            # normal event. Fresh or unused tensors of any other file deserve a warning.
            expected = source == self.teacher_checkpoint
            level = logging.INFO if report.complete or expected else logging.WARNING
            log.log(level, "%s: initialised from %s\n%s", self.name, source, report)

    def declared_parts(self, format: str) -> tuple[list[str], list[str]]:
        """The parts that may start fresh and the parts of the file that may go unused when this
        stage starts from a file of ``format``: the recipe's ``fresh`` / ``unused`` where set,
        else what such a file cannot hold (:meth:`parts_a_file_lacks`)."""
        fresh, unused = self.parts_a_file_lacks(format)
        section = self.section
        return (fresh if section.fresh is None else list(section.fresh),
                unused if section.unused is None else list(section.unused))

    def parts_a_file_lacks(self, format: str) -> tuple[list[str], list[str]]:
        """``(fresh, unused)`` parts a start file of ``format`` cannot fill or cannot place."""
        raise NotImplementedError

    # -- the loss -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Load what the loss needs beyond the model (the student's teacher)."""

    def forward_loss(self, model: nn.Module, batch: dict[str, Any], keep_ratio: float | None
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, terms)`` of ``model`` (DDP-wrapped or not) on one micro-batch."""
        output = model(batch["template"], batch["search"], keep_ratio=keep_ratio)
        return self.tracking_loss(loss_inputs(output), batch)

    def keep_ratio(self, epoch: int) -> float | None:
        """Candidate elimination's keep ratio in ``epoch`` (None: the model's own)."""
        return None


class TeacherStage(TrainingStage):
    """The two-stream teacher: starts from ``model.pretrained`` (OSTrack, MPLT, MAE, timm or
    our own file) and trains on the tracking loss alone."""

    name = "teacher"
    kind = TwoStreamTeacher.kind

    @property
    def section(self) -> TeacherConfig:
        return self.recipe.teacher

    def model_arguments(self, backbone: BackboneSettings) -> dict[str, Any]:
        """The auxiliary channels, the fusion and the prompters."""
        prompter = self.recipe.teacher.prompter
        return {
            "aux_in_chans": backbone.aux_in_chans,
            "fusion": self.recipe.model.fusion,
            "prompters": prompter.enabled,
            "spatial_attention": prompter.spatial_attention,
            "token_attention": prompter.token_attention,
            "history": prompter.history,
            "layer_type": prompter.layer_type,
            "reduction": prompter.reduction,
            "mplt_compat": prompter.mplt_compat,
        }

    def parts_a_file_lacks(self, format: str) -> tuple[list[str], list[str]]:
        """A teacher from OSTrack lacks prompters and fusion (MAE and timm also the head); our
        own format and MPLT's fill it completely."""
        fresh = ["prompters", "fusion"] if format in ("ostrack", "mae", "timm") else []
        if format in ("mae", "timm"):
            fresh.append("head")
        return fresh, []


class StudentStage(TrainingStage):
    """The one-stream student: starts from its teacher (or ``model.pretrained``), may keep only
    some of the teacher's blocks, and learns from the frozen teacher's features and response
    maps (with both distillation weights at zero it is FOST, the no-distillation control; the
    RGB-only student is OSTrack)."""

    name = "student"
    kind = OneStreamStudent.kind
    takes_teacher = True

    def __init__(self, recipe: Recipe, ctx: DistributedContext | None = None,
                 teacher_checkpoint: Path | None = None) -> None:
        super().__init__(recipe, ctx, teacher_checkpoint)
        depth = recipe.model.backbone.depth
        #: (student block, teacher block) pairs of feature distillation, 1-indexed
        self.pairs = recipe.distill.feature.resolve_pairs(depth, recipe.student.shape.resolve_blocks(depth))
        self.teacher: nn.Module | None = None
        self.need_features = False
        self.criterion: nn.Module = self.tracking_loss
        if not recipe.student.single_modality:
            feature, response = recipe.distill.feature, recipe.distill.response
            self.criterion = DistillationLoss(
                self.tracking_loss,
                FeatureDistillLoss(
                    layers=[student_block for student_block, _ in self.pairs] or [1],
                    weighting=feature.weighting,
                    weight=feature.weight,
                ),
                ResponseDistillLoss(temperature=response.temperature, weight=response.weight),
            )
            self.distilling = feature.weight > 0 or response.weight > 0
            self.need_features = feature.weight > 0
            # FOST started from scratch needs none; the RGB-only student never reads one
            self.needs_teacher = self.distilling or recipe.student.init == "teacher"

    @property
    def section(self) -> StudentConfig:
        return self.recipe.student

    @property
    def single_modality(self) -> bool:
        return self.recipe.student.single_modality

    def backbone_settings(self, aux_channels: int) -> BackboneSettings:
        """The teacher's backbone at the student's depth (``student.shape``)."""
        settings = super().backbone_settings(aux_channels)
        return replace(settings, depth=self.recipe.student.shape.resolve_depth(settings.depth))

    def model_arguments(self, backbone: BackboneSettings) -> dict[str, Any]:
        """The shape, candidate elimination, the modalities and the fusion; the RGB-only student
        is OSTrack (one modality, no fusion or modality embedding)."""
        student = self.recipe.student
        elimination = student.candidate_elimination
        single = student.single_modality
        return {
            "fuse_after": 0 if single else student.shape.fuse_after,
            "aux_pool": 1 if single else student.shape.aux_pool,
            "ce_pairing": elimination.pairing,
            "num_modalities": 1 if single else 2,
            "aux_in_chans": backbone.aux_in_chans,
            "fusion": self.recipe.model.fusion,
            "modality_embedding": student.modality_embedding and not single,
            "ce_layers": list(elimination.layers) if elimination.enabled else [],
            "ce_keep_ratio": elimination.keep_ratio if elimination.enabled else 1.0,
            "ce_template_range": elimination.template_range,
        }

    def start_file(self) -> Path | None:
        student = self.recipe.student
        if student.init == "pretrained":
            return self.recipe.model.pretrained
        if student.init == "teacher":
            return self.teacher_checkpoint
        return None

    def block_sources(self) -> list[int] | None:
        """For a student shallower than the teacher, the 0-indexed block of the initialising
        checkpoint (teacher or ``model.pretrained``) that starts each student block."""
        depth = self.recipe.model.backbone.depth
        blocks = self.recipe.student.shape.resolve_blocks(depth)
        if blocks == list(range(1, depth + 1)):
            return None  # the full-depth student: blocks load by their own numbers
        return [block - 1 for block in blocks]

    def parts_a_file_lacks(self, format: str) -> tuple[list[str], list[str]]:
        """A student from its teacher lacks the modality embedding and leaves the prompters over
        (with token fusion: also lacks that layer and leaves the search fusion over); the
        RGB-only student is exactly OSTrack and lacks nothing; from OSTrack a two-modality
        student lacks fusion and modality embedding (from MAE or timm also the head)."""
        student = self.recipe.student
        unused: list[str]
        if format == FORMAT:
            fresh, unused = ["modality_embed"], ["prompters"]
        elif student.single_modality:
            fresh, unused = [], []
        else:
            fresh, unused = ["fusion", "modality_embed"], []
        if format in ("mae", "timm"):
            fresh.append("head")
        if not student.single_modality and student.shape.fuse_after:
            # token fusion replaces the final search fusion: its layer is new, a file's fusion unused
            fresh = [part for part in fresh if part != "fusion"] + ["token_fusion"]
            unused.append("fusion")
        return fresh, unused

    def prepare(self) -> None:
        """Load the frozen teacher (a file that holds no teacher is refused even where the loss
        does not use it) and keep it when the loss does (FOST never runs one)."""
        teacher = self._load_teacher()
        self.teacher = teacher if self.distilling else None

    def _load_teacher(self) -> nn.Module | None:
        if self.teacher_checkpoint is None:
            return None
        teacher, _ = load_model(self.teacher_checkpoint)
        if getattr(teacher, "kind", "teacher") != "teacher":
            raise MmtrackError(f"{self.teacher_checkpoint} holds a {teacher.kind}, not a teacher")
        # Frozen, eval mode, outside DDP: it only provides targets.
        teacher.eval().requires_grad_(False)
        return teacher.to(self.ctx.device)

    def forward_loss(self, model: nn.Module, batch: dict[str, Any], keep_ratio: float | None
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        if self.recipe.student.single_modality:
            return super().forward_loss(model, batch, keep_ratio)
        output = model(batch["template"], batch["search"], return_features=self.need_features, keep_ratio=keep_ratio)
        targets = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_output = self.teacher(batch["template"], batch["search"], return_features=self.need_features)
            targets = self._teacher_targets(unwrap(model), teacher_output)
        return self.criterion(loss_inputs(output), batch, targets)

    def _teacher_targets(self, student: nn.Module, teacher_output: Any) -> dict[str, Any]:
        """The teacher's outputs as loss inputs, its features keyed by the student block they
        teach and arranged as that block's tokens (:meth:`OneStreamStudent.teacher_target`)."""
        targets = loss_inputs(teacher_output)
        if teacher_output.features is not None:
            targets["features"] = {
                student_block: student.teacher_target(student_block, teacher_output.features[teacher_block - 1])
                for student_block, teacher_block in self.pairs
            }
        return targets

    def keep_ratio(self, epoch: int) -> float | None:
        return keep_ratio_at(self.recipe, epoch)


STAGES: dict[str, type[TrainingStage]] = {"teacher": TeacherStage, "student": StudentStage}
