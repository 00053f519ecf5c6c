"""One training stage (teacher, or distilled student) and the run that chains them.

The loop is deliberately plain: a deterministic sample stream, gradient accumulation, mixed
precision, clipping, a per-update learning-rate schedule, atomic checkpoints at update
boundaries and a clean stop on Ctrl-C or a non-finite loss. Everything needed to continue is in
``last.pt``, so ``--resume`` ends with the same weights as an uninterrupted run on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from mmtrack_kd.checkpoints import (
    FORMAT,
    VERSION,
    RunCheckpoint,
    RunPosition,
    capture_rng,
    check_declared,
    load_model,
    load_pretrained,
    non_finite_tensors,
    restore_rng,
)
from mmtrack_kd.engine.build import (
    ModalitySetup,
    Stage,
    build_datasets,
    build_modalities,
    check_recipe,
    model_config,
)
from mmtrack_kd.engine.metrics_log import MetricsLog
from mmtrack_kd.engine.optim import build_optimizer, build_scheduler
from mmtrack_kd.errors import CheckpointError, MmtrackError
from mmtrack_kd.recipe import OptimConfig, Recipe
from mmtrack_kd.runtime.distributed import DistributedContext
from mmtrack_kd.runtime.precision import autocast, autocast_dtype

log = logging.getLogger(__name__)


class TrainingStopped(MmtrackError):
    """The run stopped early (non-finite loss); the message names the step and the checkpoint."""


class StageSampler(DistributedSampler):
    """A :class:`DistributedSampler` over a deterministic sample stream that can start part-way
    through an epoch.

    Sample ``epoch * samples_per_epoch + k`` is always the same pair (the dataset derives it
    from the seed and the index), so there is nothing to shuffle: each update takes the next
    ``batch_size`` indices, split across ranks and accumulation steps, and a resumed run skips
    exactly the micro-batches already consumed.
    """

    def __init__(self, dataset: Any, ctx: DistributedContext, batch_size: int,
                 accumulate: int, samples_per_epoch: int) -> None:
        super().__init__(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=False)
        self.batch_size = batch_size
        self.accumulate = accumulate
        self.micro = batch_size // (ctx.world_size * accumulate)
        self.updates_per_epoch = samples_per_epoch // batch_size
        self.samples_per_epoch = samples_per_epoch
        self.start_batch = 0

    def set_start(self, batch_in_epoch: int) -> None:
        """Skip the first ``batch_in_epoch`` micro-batches of the next epoch iterated."""
        self.start_batch = batch_in_epoch

    def __len__(self) -> int:
        return (self.updates_per_epoch * self.accumulate - self.start_batch) * self.micro

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * self.samples_per_epoch
        world = self.num_replicas
        for batch in range(self.start_batch, self.updates_per_epoch * self.accumulate):
            update, step = divmod(batch, self.accumulate)
            first = base + update * self.batch_size + (step * world + self.rank) * self.micro
            yield from range(first, first + self.micro)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor (and lists of tensors) of a batch to ``device``."""
    moved: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device, non_blocking=True)
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
            moved[key] = [item.to(device, non_blocking=True) for item in value]
        else:
            moved[key] = value
    return moved


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


class StageTrainer:
    """Trains one stage of a recipe in ``run_dir/<stage>/``."""

    def __init__(
        self,
        recipe: Recipe,
        stage: Stage,
        run_dir: Path,
        ctx: DistributedContext,
        teacher_checkpoint: Path | None = None,
        resume: bool = False,
    ) -> None:
        self.recipe = recipe
        self.stage = stage
        self.ctx = ctx
        self.folder = Path(run_dir) / stage
        self.resume = resume
        self.optim: OptimConfig = recipe.teacher.optim if stage == "teacher" else recipe.student.optim
        self.teacher_checkpoint = teacher_checkpoint
        depth = recipe.model.backbone.depth
        #: (student block, teacher block) pairs of feature distillation, 1-indexed
        self.pairs = recipe.distill.feature.resolve_pairs(depth, recipe.student.shape.resolve_blocks(depth))
        world, accumulate = ctx.world_size, self.optim.accumulate
        if self.optim.batch_size % (world * accumulate):
            raise MmtrackError(
                f"{stage}.optim.batch_size {self.optim.batch_size} is not divisible by "
                f"world size {world} x accumulate {accumulate}; the batch size is global"
            )
        if self.optim.samples_per_epoch < self.optim.batch_size:
            raise MmtrackError(
                f"{stage}.optim.samples_per_epoch {self.optim.samples_per_epoch} is smaller than "
                f"the batch size {self.optim.batch_size}"
            )
        self.micro_batch = self.optim.batch_size // (world * accumulate)
        self.updates_per_epoch = self.optim.samples_per_epoch // self.optim.batch_size
        self.amp_dtype = autocast_dtype(recipe.train.precision, ctx.device)
        self.progress = RunPosition()
        self._boundary_rng: dict[str, Any] | None = None
        self._last_saved: Path | None = None

    # -- construction -----------------------------------------------------------------------

    def _build(self) -> None:
        from mmtrack_kd.data.loader import build_train_dataset, build_val_dataset
        from mmtrack_kd.engine.losses import (
            DistillationLoss,
            FeatureDistillLoss,
            ResponseDistillLoss,
            TrackingLoss,
        )
        from mmtrack_kd.models import build_model

        recipe, stage = self.recipe, self.stage
        self.modalities: ModalitySetup = build_modalities(recipe, stage)
        self.kind, self.model_config = model_config(recipe, stage, self.modalities.aux_channels)
        # Same initial weights on every rank (DDP also broadcasts rank 0's at wrap time).
        torch.manual_seed(recipe.seed)
        model = build_model(self.kind, self.model_config)
        self._initialise(model)
        self.model = model.to(self.ctx.device)
        self.teacher = self._load_teacher() if stage == "student" else None

        check_recipe(recipe, [stage])
        train_sets = build_datasets(recipe.data.train)
        val_sets = build_datasets(recipe.data.val or recipe.data.train)
        common = dict(
            adapters=list(self.modalities.adapters),
            model=recipe.model,
            sampler=recipe.data.sampler,
        )
        self.train_set = build_train_dataset(
            datasets=train_sets, seed=recipe.seed, samples_per_epoch=self.optim.samples_per_epoch, **common
        )
        self.val_set = build_val_dataset(
            datasets=val_sets, seed=recipe.seed + 1_000_003, num_samples=recipe.data.val_samples, **common
        ) if recipe.data.val_samples else None

        loss_weights = recipe.train.loss
        tracking = TrackingLoss(loss_weights.focal, loss_weights.giou, loss_weights.l1)
        self.tracking_loss = tracking
        if stage == "student" and not recipe.student.single_modality:
            feature = recipe.distill.feature
            response = recipe.distill.response
            self.criterion = DistillationLoss(
                tracking,
                FeatureDistillLoss(
                    layers=[student_block for student_block, _ in self.pairs] or [1],
                    weighting=feature.weighting,
                    weight=feature.weight,
                ),
                ResponseDistillLoss(temperature=response.temperature, weight=response.weight),
            )
            self.distilling = feature.weight > 0 or response.weight > 0
            self.need_features = feature.weight > 0
        else:
            self.criterion = tracking
            self.distilling = False
            self.need_features = False
        if self.teacher is not None and not self.distilling:
            self.teacher = None  # FOST: the teacher is never run

        if self.ctx.enabled:
            ddp_args = {"device_ids": [self.ctx.local_rank]} if self.ctx.device.type == "cuda" else {}
            self.model = DistributedDataParallel(self.model, **ddp_args)
        self.optimizer = build_optimizer(unwrap(self.model), self.optim)
        self.scheduler = build_scheduler(self.optimizer, self.updates_per_epoch, self.optim)
        self.scaler = torch.amp.GradScaler(
            self.ctx.device.type, enabled=self.amp_dtype == torch.float16
        )

    def _initialise(self, model: nn.Module) -> None:
        """Start weights: a pretrained checkpoint (teacher; student with init=pretrained) or the
        teacher's backbone, fusion and head (student with init=teacher). A file that leaves a
        part fresh or a tensor unused beyond what :meth:`_declared_parts` allows is refused."""
        recipe = self.recipe
        if self.resume and (self.folder / "last.pt").is_file():
            return  # weights come from last.pt
        source = None
        if self.stage == "teacher" or recipe.student.init == "pretrained":
            source = recipe.model.pretrained
        elif recipe.student.init == "teacher" and self.teacher_checkpoint is not None:
            source = self.teacher_checkpoint
        if source is None:
            return
        report = load_pretrained(model, source, block_sources=self._block_sources())
        fresh, unused = self._declared_parts(report.format)
        check_declared(report, fresh, unused)
        if self.ctx.is_main:
            # A student started from its own teacher leaves the prompters unused by design: a
            # normal event. Fresh or unused tensors of any other file deserve a warning.
            expected = source == self.teacher_checkpoint
            level = logging.INFO if report.complete or expected else logging.WARNING
            log.log(level, "%s: initialised from %s\n%s", self.stage, source, report)

    def _block_sources(self) -> list[int] | None:
        """For a student shallower than the teacher, the 0-indexed block of the initialising
        checkpoint (teacher or ``model.pretrained``) that starts each student block."""
        if self.stage != "student":
            return None
        depth = self.recipe.model.backbone.depth
        blocks = self.recipe.student.shape.resolve_blocks(depth)
        if blocks == list(range(1, depth + 1)):
            return None  # the full-depth student: blocks load by their own numbers
        return [block - 1 for block in blocks]

    def _declared_parts(self, format: str) -> tuple[list[str], list[str]]:
        """The parts that may start fresh and the parts of the file that may go unused when this
        stage starts from a file of ``format``: the recipe's ``fresh`` / ``unused`` where set,
        else what such a file cannot hold. A teacher from OSTrack lacks prompters and fusion
        (MAE and timm also the head); a student from its teacher lacks the modality embedding
        and leaves the prompters over (with token fusion: also lacks that layer and leaves the
        search fusion over); the RGB-only student is exactly OSTrack and lacks
        nothing. Our own format and MPLT's fill a teacher completely."""
        section = self.recipe.teacher if self.stage == "teacher" else self.recipe.student
        backbone_only = format in ("mae", "timm")
        if self.stage == "teacher":
            fresh = ["prompters", "fusion"] if format in ("ostrack", "mae", "timm") else []
            unused: list[str] = []
        elif format == FORMAT:
            fresh, unused = ["modality_embed"], ["prompters"]
        elif self.recipe.student.single_modality:
            fresh, unused = [], []
        else:
            fresh, unused = ["fusion", "modality_embed"], []
        if backbone_only:
            fresh.append("head")
        if self.stage == "student" and not self.recipe.student.single_modality and self.recipe.student.shape.fuse_after:
            # token fusion replaces the final search fusion: its layer is new, a file's fusion unused
            fresh = [part for part in fresh if part != "fusion"] + ["token_fusion"]
            unused.append("fusion")
        return (fresh if section.fresh is None else list(section.fresh),
                unused if section.unused is None else list(section.unused))

    def _load_teacher(self) -> nn.Module | None:
        if self.teacher_checkpoint is None:
            return None
        teacher, _ = load_model(self.teacher_checkpoint)
        if getattr(teacher, "kind", "teacher") != "teacher":
            raise MmtrackError(f"{self.teacher_checkpoint} holds a {teacher.kind}, not a teacher")
        # Frozen, eval mode, outside DDP: it only provides targets.
        teacher.eval().requires_grad_(False)
        return teacher.to(self.ctx.device)

    # -- checkpoints ------------------------------------------------------------------------

    def _checkpoint(self, full: bool) -> RunCheckpoint:
        """The stage as a run checkpoint; ``full`` adds what resuming needs (optimiser,
        scheduler, scaler, RNG states), ``best.pt`` has the weights and description only."""
        checkpoint = RunCheckpoint(
            version=VERSION,
            kind=self.kind,
            stage=self.stage,
            model_config=self.model_config,
            model=unwrap(self.model).state_dict(),
            modalities=[
                {"name": adapter.name, "options": adapter.options.model_dump(mode="json")}
                for adapter in self.modalities.adapters
            ],
            crop={
                "template_size": self.recipe.model.template_size,
                "search_size": self.recipe.model.search_size,
                "template_factor": self.recipe.model.template_factor,
                "search_factor": self.recipe.model.search_factor,
            },
            progress=replace(self.progress),
            recipe=json.loads(self.recipe.model_dump_json()),
        )
        if full:
            checkpoint.optimizer = self.optimizer.state_dict()
            checkpoint.scheduler = self.scheduler.state_dict()
            checkpoint.scaler = self.scaler.state_dict()
            checkpoint.rng = self._boundary_rng or capture_rng()
        return checkpoint

    def save(self, name: str = "last.pt", full: bool = True) -> Path:
        """Write a checkpoint atomically (rank 0 only)."""
        path = self.folder / name
        if self.ctx.is_main:
            checkpoint = self._checkpoint(full)
            # "last good" must mean finite: weights can turn NaN in an update whose loss was
            # still finite, and a checkpoint of them would be named as the one to go back to
            bad = non_finite_tensors(checkpoint.model)
            if full:
                bad += [f"optimizer.{key}" for key in non_finite_tensors(_flat_tensors(checkpoint.optimizer))]
            if bad:
                raise TrainingStopped(
                    f"{self.stage}: the weights became non-finite by update {self.progress.update} "
                    f"({len(bad)} tensors, first: {', '.join(bad[:3])}); {path} was not written. "
                    f"Last good checkpoint: {self._last_saved or 'none written yet'}"
                )
            checkpoint.save(path)
            if name == "last.pt":
                self._last_saved = path
        return path

    def _restore(self, path: Path) -> None:
        checkpoint = RunCheckpoint.read(path)
        missing = checkpoint.missing_for_resume
        if missing:
            raise CheckpointError(
                f"{path} cannot be resumed from: it holds no {', '.join(missing)} (a best.pt, or "
                "a file written for a bare model by save_model, has weights only); resume needs "
                "the run's own last.pt"
            )
        if checkpoint.stage != self.stage:
            raise MmtrackError(f"{path} is a {checkpoint.stage} checkpoint, not {self.stage}")
        if checkpoint.model_config != self.model_config:
            raise MmtrackError(
                f"{path} was written for a different model configuration; resume with the "
                "recipe that started the run (see its recipe.yaml)"
            )
        try:
            unwrap(self.model).load_state_dict(checkpoint.model)
            self.optimizer.load_state_dict(checkpoint.optimizer)
            self.scheduler.load_state_dict(checkpoint.scheduler)
            self.scaler.load_state_dict(checkpoint.scaler)
            self.progress = checkpoint.progress
            restore_rng(checkpoint.rng)
        except (RuntimeError, ValueError, TypeError, KeyError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CheckpointError(f"{path} cannot be resumed from: {first}") from None
        self._last_saved = path

    def _main_has(self, path: Path) -> bool:
        """Whether ``path`` exists on the main process, agreed by every process: a refusal on
        rank 0 alone would leave the other ranks waiting in their first collective."""
        exists = torch.tensor(float(path.is_file() and self.ctx.is_main), device=self.ctx.device)
        if self.ctx.enabled:
            torch.distributed.broadcast(exists, src=0)
        return bool(exists.item())

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> Path:
        """Train (or continue) the stage; returns the folder holding last.pt and best.pt."""
        self.prepare()
        return self.train()

    def prepare(self) -> None:
        """Build everything and restore ``last.pt`` (``--resume``), or refuse: every check that
        can stop the stage runs here, before :meth:`train` writes anything."""
        self._build()
        last = self.folder / "last.pt"
        if self.resume and last.is_file():
            self._restore(last)
            if self.ctx.is_main:
                log.info("%s: resumed from %s at epoch %d, update %d", self.stage, last,
                         self.progress.epoch, self.progress.update)
        elif self._main_has(last):
            raise MmtrackError(
                f"{self.folder} already holds a run; pass --resume to continue it or choose "
                "another --run-dir"
            )

    def train(self) -> Path:
        """Train the prepared stage to its end (nothing to do for a finished one)."""
        if self.progress.finished:
            return self.folder
        self.metrics = MetricsLog(self.folder, enabled=self.ctx.is_main)
        self._mark_boundary()
        with _stop_on_signals(self.stage):
            return self._run_loop()

    def _run_loop(self) -> Path:
        """The epochs, with the save-and-stop path of an interruption."""
        try:
            while self.progress.epoch < self.optim.epochs:
                self._train_epoch()
                self._end_epoch()
            self.progress.finished = True
            self.save("last.pt")
        except (KeyboardInterrupt, RuntimeError) as error:
            # SIGTERM reaches the DataLoader workers too, and their death can surface as a
            # RuntimeError while the KeyboardInterrupt is being handled: both mean "stop".
            # (Under DDP that RuntimeError stops this rank alone; torchrun then ends the others
            # when this process exits. The stop the ranks agree on is the flag, see _check_step.)
            if not (isinstance(error, KeyboardInterrupt) or _STOP.requested):
                raise
            if _STOP.hard:
                # A second signal may have landed inside an update, between the optimiser step
                # and the bookkeeping: what is in memory need not be consistent, so keep the
                # last.pt already on disk.
                if self.ctx.is_main:
                    log.warning("%s: stopped at once on a second signal; not saved (the last "
                                "checkpoint is %s)", self.stage, self._last_saved or "none")
                raise KeyboardInterrupt from None
            # Weights only change at updates: save the state of the last completed one, so a
            # half-accumulated update is redone on resume rather than skipped.
            self.progress = replace(self._boundary_progress)
            # micro-batches of a half-accumulated update moved the BatchNorm statistics; they
            # are run again on resume, so the saved buffers are the boundary's
            self._restore_boundary_buffers()
            path = self.save("last.pt")
            if self.ctx.is_main:
                log.warning("%s: interrupted; saved %s at update %d (continue with --resume)",
                            self.stage, path, self.progress.update)
            raise KeyboardInterrupt from None
        finally:
            self.metrics.close()
        return self.folder

    def _loader(self) -> DataLoader:
        sampler = StageSampler(self.train_set, self.ctx, self.optim.batch_size,
                               self.optim.accumulate, self.optim.samples_per_epoch)
        sampler.set_epoch(self.progress.epoch)
        sampler.set_start(self.progress.batch_in_epoch)
        workers = self.recipe.data.workers
        return DataLoader(
            self.train_set,
            batch_size=self.micro_batch,
            sampler=sampler,
            num_workers=workers,
            worker_init_fn=_training_worker_init if workers else None,
            # A private generator: creating an iterator must not draw from the global RNG, or
            # a resumed run would see different dropout than an uninterrupted one.
            generator=torch.Generator().manual_seed(self.recipe.seed),
            pin_memory=self.ctx.device.type == "cuda",
            drop_last=True,
            persistent_workers=False,
        )

    def _forward_loss(self, batch: dict[str, Any], keep_ratio: float | None) -> tuple[torch.Tensor, dict[str, float]]:
        with autocast(self.ctx.device, self.amp_dtype):
            output = self.model(batch["template"], batch["search"],
                                return_features=self.need_features, keep_ratio=keep_ratio)
            if self.stage == "student" and not self.recipe.student.single_modality:
                teacher_output = None
                if self.teacher is not None:
                    with torch.no_grad():
                        teacher_output = self.teacher(batch["template"], batch["search"],
                                                      return_features=self.need_features)
                return self.criterion(loss_inputs(output), batch,
                                      None if teacher_output is None else self._teacher_targets(teacher_output))
            return self.criterion(loss_inputs(output), batch)

    def _teacher_targets(self, teacher_output: Any) -> dict[str, Any]:
        """The teacher's outputs as loss inputs, its features keyed by the student block they
        teach and arranged as that block's tokens (:meth:`OneStreamStudent.teacher_target`)."""
        targets = loss_inputs(teacher_output)
        if teacher_output.features is not None:
            student = unwrap(self.model)
            targets["features"] = {
                student_block: student.teacher_target(student_block, teacher_output.features[teacher_block - 1])
                for student_block, teacher_block in self.pairs
            }
        return targets

    def _train_epoch(self) -> None:
        model, optim = self.model, self.optim
        model.train()
        keep_ratio = keep_ratio_at(self.recipe, self.progress.epoch) if self.stage == "student" else None
        loader = self._loader()
        accumulate = optim.accumulate
        total_batches = self.updates_per_epoch * accumulate
        started = time.perf_counter()
        seen_at_start = self.progress.samples
        running: dict[str, float] = {}
        count = 0
        bar = _ProgressBar(self.ctx.is_main, f"{self.stage} epoch {self.progress.epoch + 1}/{optim.epochs}",
                           total_batches, self.progress.batch_in_epoch)
        with bar:
            for batch in loader:
                batch = to_device(batch, self.ctx.device)
                step = self.progress.batch_in_epoch % accumulate
                last_micro = step == accumulate - 1
                sync = contextlib.nullcontext()
                if self.ctx.enabled and not last_micro:
                    sync = model.no_sync()
                # before the forward: a forward in training mode updates the BatchNorm
                # statistics, and a micro-batch stopped after it would run twice on resume
                self._check_stop()
                with sync:
                    loss, terms = self._forward_loss(batch, keep_ratio)
                    self._check_step(loss, terms)
                    self.scaler.scale(loss / accumulate).backward()
                self.progress.batch_in_epoch += 1
                for key, value in terms.items():
                    running[key] = running.get(key, 0.0) + float(value)
                count += 1
                if not last_micro:
                    continue
                self._update()
                elapsed = time.perf_counter() - started
                rate = (self.progress.samples - seen_at_start) / max(elapsed, 1e-9)
                means = {key: value / count for key, value in running.items()}
                bar.advance(accumulate, means, rate)
                if self.progress.update % self.recipe.train.log_every == 0:
                    self.metrics.write({
                        "event": "train", "epoch": self.progress.epoch, "update": self.progress.update,
                        "samples": self.progress.samples, "lr": self.scheduler.get_last_lr()[-1],
                        "lr_backbone": self.scheduler.get_last_lr()[0],
                        "samples_per_s": rate, "keep_ratio": keep_ratio, **means,
                    })
                    if not bar.visible and self.ctx.is_main:
                        log.info("%s epoch %d update %d: %s, %.1f samples/s", self.stage,
                                 self.progress.epoch + 1, self.progress.update,
                                 ", ".join(f"{k} {v:.4f}" for k, v in means.items()), rate)
                    running, count = {}, 0
                if self.progress.update % self.recipe.train.checkpoint_every == 0:
                    self.save("last.pt")

    def _update(self) -> None:
        optim = self.optim
        if optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(unwrap(self.model).parameters(), optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.progress.update += 1
        self.progress.samples += optim.batch_size
        self._mark_boundary()

    def _mark_boundary(self) -> None:
        """Remember the position, RNG state and buffers (BatchNorm statistics) of a completed
        update: what an interrupted run saves."""
        self._boundary_rng = capture_rng()
        self._boundary_progress = replace(self.progress)
        self._boundary_buffers = {name: buffer.detach().clone()
                                  for name, buffer in unwrap(self.model).named_buffers()}

    def _restore_boundary_buffers(self) -> None:
        buffers = dict(unwrap(self.model).named_buffers())
        with torch.no_grad():
            for name, saved in getattr(self, "_boundary_buffers", {}).items():
                buffers[name].copy_(saved)

    def _check_stop(self) -> None:
        """Stop on a requested stop (SIGTERM, Ctrl-C) before a micro-batch's forward, on every
        rank at the same micro-batch (one all-reduce of the flag), so no rank is left waiting in
        the next collective for one that stopped."""
        flag = torch.tensor(float(_STOP.requested), device=self.ctx.device)
        if self.ctx.enabled:
            torch.distributed.all_reduce(flag)
        if float(flag):
            raise KeyboardInterrupt

    def _check_step(self, loss: torch.Tensor, terms: dict[str, float]) -> None:
        """Stop on a non-finite loss, on every rank at the same micro-batch (one all-reduce)."""
        flag = (~torch.isfinite(loss.detach())).to(torch.float32).reshape(())
        if self.ctx.enabled:
            torch.distributed.all_reduce(flag)
        if not float(flag):
            return
        shown = ", ".join(f"{key}={float(value):.6g}" for key, value in terms.items())
        last = self._last_saved or "none written yet"
        raise TrainingStopped(
            f"{self.stage}: non-finite loss at epoch {self.progress.epoch + 1}, update "
            f"{self.progress.update + 1} (loss terms: {shown or float(loss)}); stopped without "
            f"saving the diverged weights. Last good checkpoint: {last}"
        )

    @torch.no_grad()
    def validate(self) -> float:
        """Mean tracking loss over the fixed validation pairs."""
        if self.val_set is None:
            return math.nan
        model = unwrap(self.model)
        model.eval()
        loader = DataLoader(self.val_set, batch_size=self.micro_batch, shuffle=False,
                            num_workers=self.recipe.data.workers,
                            worker_init_fn=_training_worker_init if self.recipe.data.workers else None,
                            generator=torch.Generator().manual_seed(0))
        total, count = 0.0, 0
        for batch in loader:
            # A stop asked for during validation is not kept waiting for all of it (one process
            # only: under DDP, rank 0 validates alone while the others wait in the barrier, and
            # every rank stops together at the next micro-batch instead).
            if _STOP.requested and not self.ctx.enabled:
                raise KeyboardInterrupt
            batch = to_device(batch, self.ctx.device)
            output = model(batch["template"], batch["search"])
            loss, _ = self.tracking_loss(loss_inputs(output), batch)
            size = batch["search_box"].shape[0]
            total += float(loss) * size
            count += size
        model.train()
        return total / max(count, 1)

    def _end_epoch(self) -> None:
        val_loss = math.nan
        if self.ctx.is_main:
            val_loss = self.validate()
        self.progress.epoch += 1
        self.progress.batch_in_epoch = 0
        improved = not math.isnan(val_loss) and val_loss < self.progress.best_val
        if improved:
            self.progress.best_val = val_loss
        # after best_val: a stop before the next update saves this epoch's best loss too
        self._boundary_progress = replace(self.progress)
        self.metrics.write({"event": "epoch", "epoch": self.progress.epoch, "update": self.progress.update,
                            "samples": self.progress.samples, "val_loss": val_loss})
        if self.ctx.is_main:
            log.info("%s epoch %d done: validation loss %.4f%s", self.stage, self.progress.epoch,
                     val_loss, " (best)" if improved else "")
        # best.pt before last.pt: a kill between the two leaves the previous last.pt, whose
        # resume runs this epoch again and writes the same best.pt; the other order would
        # leave a last.pt whose best_val no best.pt holds, and never write that one
        if improved or (math.isnan(val_loss) and self.ctx.is_main):
            self.save("best.pt", full=False)
        self.save("last.pt")
        if self.ctx.enabled:
            torch.distributed.barrier()


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


class _StopFlag:
    requested = False  # a first SIGTERM / SIGINT: stop at the next micro-batch and save
    hard = False  # a second one: stop at once, without saving


_STOP = _StopFlag()


def _request_stop(signum: int, frame: Any) -> None:
    """SIGTERM / SIGINT during training: the first asks the loop to stop at its next micro-batch
    (it saves the last completed update); a second stops at once.

    The first signal only sets a flag. Raising from a handler lands wherever the main thread is,
    and where that is inside a hook whose exceptions Python ignores (logging's at-fork lock
    release while DataLoader workers start, a ``__del__``) the KeyboardInterrupt is printed and
    lost, and the run trains on. DataLoader workers install it too (:func:`_training_worker_init`).
    """
    if _STOP.requested:
        _STOP.hard = True
        raise KeyboardInterrupt
    _STOP.requested = True


def _training_worker_init(worker_id: int) -> None:
    """A training DataLoader worker: seeded as every loader's, and deferring SIGTERM / SIGINT to
    the main process. torch's workers die on SIGTERM, and a pre-emption signal sent to the whole
    process group would then kill them under the main process, whose next batch fails with
    "DataLoader worker killed"; here the first signal is noted and ignored, the main process
    stops at its next micro-batch and shuts the workers down (a second signal still stops them,
    and a worker whose main process is gone exits by torch's own watchdog)."""
    from mmtrack_kd.data.loader import worker_init_fn

    worker_init_fn(worker_id)
    _STOP.requested = _STOP.hard = False
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _request_stop)


@contextlib.contextmanager
def _stop_on_signals(stage: str) -> Iterator[None]:
    """Route SIGTERM and SIGINT to :func:`_request_stop` while a stage trains (main thread only:
    Python delivers signals there, and elsewhere the caller keeps its own handling). A signal
    that came too late to stop the stage (during its last update or its final save) still
    stops the run after it, before a next stage starts."""
    _STOP.requested = _STOP.hard = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _request_stop) for number in (signal.SIGTERM, signal.SIGINT)}
    late = False
    try:
        yield
        late = _STOP.requested
    finally:
        for number, handler in previous.items():
            if handler is not None:  # None: installed from C, cannot be put back from Python
                signal.signal(number, handler)
        _STOP.requested = _STOP.hard = False
    if late:
        log.warning("%s: finished; stopping on the signal that came during its last step", stage)
        raise KeyboardInterrupt


class _ProgressBar:
    """A rich progress bar with loss terms, samples/s and ETA, on a terminal and rank 0 only."""

    def __init__(self, enabled: bool, title: str, total: int, completed: int) -> None:
        from mmtrack_kd.console import error_console

        self.visible = enabled and error_console.is_terminal
        self._progress = None
        if self.visible:
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self._progress = RichProgress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                console=error_console, transient=False,
            )
            self._task = self._progress.add_task(title, total=total, completed=completed, status="")

    def __enter__(self) -> "_ProgressBar":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, steps: int, terms: dict[str, float], rate: float) -> None:
        if self._progress is None:
            return
        status = " ".join(f"{key} {value:.3f}" for key, value in terms.items()) + f" | {rate:.1f}/s"
        self._progress.update(self._task, advance=steps, status=status)
