"""The training loop of one stage (teacher, or distilled student); the stage says what differs.

The loop is deliberately plain: a deterministic sample stream, gradient accumulation, mixed
precision, clipping, a per-update learning-rate schedule, atomic checkpoints at update
boundaries and a clean stop on Ctrl-C or a non-finite loss. Everything needed to continue is in
``last.pt``, so ``--resume`` ends with the same weights as an uninterrupted run on the CPU. What
the teacher and the student do differently (model, start weights, loss terms, keep-ratio
schedule) is in :mod:`mmtrack_kd.engine.stages`; stopping on signals in
:mod:`mmtrack_kd.engine.signals`; what a checkpoint holds in :mod:`mmtrack_kd.engine.checkpointing`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from mmtrack_kd.checkpoints import RunPosition, capture_rng
from mmtrack_kd.console import ProgressBar
from mmtrack_kd.data.loader import build_train_dataset, build_val_dataset
from mmtrack_kd.engine.build import build_datasets, check_recipe
from mmtrack_kd.engine.checkpointing import refuse_non_finite, resume_from, stage_checkpoint, training_state
from mmtrack_kd.engine.metrics_log import MetricsLog
from mmtrack_kd.engine.optim import build_optimizer, build_scheduler
from mmtrack_kd.engine.signals import STOP, TrainingStopped, stop_on_signals, training_worker_init
from mmtrack_kd.engine.stages import STAGES, Stage, TrainingStage, loss_inputs, unwrap
from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.recipe import Recipe
from mmtrack_kd.runtime.distributed import DistributedContext
from mmtrack_kd.runtime.precision import autocast, autocast_dtype

log = logging.getLogger(__name__)


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


class StageTrainer:
    """Trains one stage of a recipe in ``run_dir/<stage>/``: the loop, the same for every stage;
    what differs is asked of :attr:`training_stage` (:mod:`mmtrack_kd.engine.stages`)."""

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
        #: what this stage trains and how its loss is computed
        self.training_stage: TrainingStage = STAGES[stage](recipe, ctx, teacher_checkpoint)
        self.optim = self.training_stage.optim
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

    def build(self) -> None:
        """Build the stage's model (with its start weights unless resuming), datasets,
        optimiser, scheduler and scaler: what :meth:`prepare` does before it restores."""
        recipe, stage = self.recipe, self.training_stage
        self.modalities = stage.modalities()
        # a resumed stage's weights come from its last.pt
        start_weights = not (self.resume and (self.folder / "last.pt").is_file())
        self.kind, self.model_config, model = stage.build(self.modalities, start_weights)
        self.model = model.to(self.ctx.device)
        stage.prepare()

        check_recipe(recipe, [self.stage])
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

        if self.ctx.enabled:
            ddp_args = {"device_ids": [self.ctx.local_rank]} if self.ctx.device.type == "cuda" else {}
            self.model = DistributedDataParallel(self.model, **ddp_args)
            # The head's 1x1 convolutions see a token map in channels-last strides, so their
            # weight gradients come in that layout and DDP copies them into its bucket (a few
            # hundred numbers). Harmless, and a warning per process on every run would say otherwise.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        self.optimizer = build_optimizer(unwrap(self.model), self.optim)
        self.scheduler = build_scheduler(self.optimizer, self.updates_per_epoch, self.optim)
        self.scaler = torch.amp.GradScaler(
            self.ctx.device.type, enabled=self.amp_dtype == torch.float16
        )

    # -- checkpoints ------------------------------------------------------------------------

    def save(self, name: str = "last.pt", full: bool = True) -> Path:
        """Write a checkpoint atomically (rank 0 only); ``full``: with what resuming needs."""
        path = self.folder / name
        if self.ctx.is_main:
            training = None
            if full:
                training = training_state(self.optimizer, self.scheduler, self.scaler, self._boundary_rng)
            checkpoint = stage_checkpoint(self.recipe, self.stage, self.kind, self.model_config,
                                          unwrap(self.model), self.modalities, self.progress, training)
            refuse_non_finite(checkpoint, self.stage, path, self._last_saved)
            checkpoint.save(path)
            if name == "last.pt":
                self._last_saved = path
        return path

    def _restore(self, path: Path) -> None:
        self.progress = resume_from(path, self.stage, self.model_config, unwrap(self.model),
                                    self.optimizer, self.scheduler, self.scaler)
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
        self.build()
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
        with stop_on_signals(self.stage):
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
            if not (isinstance(error, KeyboardInterrupt) or STOP.requested):
                raise
            if STOP.hard:
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
            worker_init_fn=training_worker_init if workers else None,
            # A private generator: creating an iterator must not draw from the global RNG, or
            # a resumed run would see different dropout than an uninterrupted one.
            generator=torch.Generator().manual_seed(self.recipe.seed),
            pin_memory=self.ctx.device.type == "cuda",
            drop_last=True,
            persistent_workers=False,
        )

    def forward_loss(self, batch: dict[str, Any], keep_ratio: float | None = None
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, terms)`` of the stage on one micro-batch (on the device) under the recipe's
        precision; ``keep_ratio`` None: the model's own."""
        with autocast(self.ctx.device, self.amp_dtype):
            return self.training_stage.forward_loss(self.model, batch, keep_ratio)

    def _train_epoch(self) -> None:
        model, optim = self.model, self.optim
        model.train()
        keep_ratio = self.training_stage.keep_ratio(self.progress.epoch)
        loader = self._loader()
        accumulate = optim.accumulate
        total_batches = self.updates_per_epoch * accumulate
        started = time.perf_counter()
        seen_at_start = self.progress.samples
        running: dict[str, float] = {}
        count = 0
        bar = ProgressBar(self.ctx.is_main, f"{self.stage} epoch {self.progress.epoch + 1}/{optim.epochs}",
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
                    loss, terms = self.forward_loss(batch, keep_ratio)
                    self._check_step(loss, terms)
                    self.scaler.scale(loss / accumulate).backward()
                self.progress.batch_in_epoch += 1
                for key, value in terms.items():
                    running[key] = running.get(key, 0.0) + float(value)
                count += 1
                if not last_micro:
                    continue
                self.update()
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

    def update(self) -> None:
        """One optimiser update from the accumulated gradients (clipped, scaled), then the
        scheduler step and the position in the run."""
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
        flag = torch.tensor(float(STOP.requested), device=self.ctx.device)
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
                            worker_init_fn=training_worker_init if self.recipe.data.workers else None,
                            generator=torch.Generator().manual_seed(0))
        total, count = 0.0, 0
        for batch in loader:
            # A stop asked for during validation is not kept waiting for all of it (one process
            # only: under DDP, rank 0 validates alone while the others wait in the barrier, and
            # every rank stops together at the next micro-batch instead).
            if STOP.requested and not self.ctx.enabled:
                raise KeyboardInterrupt
            batch = to_device(batch, self.ctx.device)
            output = model(batch["template"], batch["search"])
            loss, _ = self.training_stage.tracking_loss(loss_inputs(output), batch)
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
