"""``mmtrack-kd benchmark --what data``: the loader's samples/s beside the model's step time, so
a run can tell whether the loader or the model is the bottleneck."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from mmtrack_kd.data.bench import benchmark_loader
from mmtrack_kd.engine.stages import Stage
from mmtrack_kd.engine.trainer import StageTrainer, to_device
from mmtrack_kd.recipe import Recipe
from mmtrack_kd.runtime.device import choose_device
from mmtrack_kd.runtime.distributed import DistributedContext
from mmtrack_kd.runtime.timing import time_calls


def loader_figures(recipe: Recipe, workers: list[int], batches: int = 20) -> list[dict[str, Any]]:
    """Samples per second of the teacher stage's training loader alone, per worker count."""
    figures = []
    with tempfile.TemporaryDirectory() as scratch:  # the trainer's run folder; nothing is kept
        trainer = _trainer(recipe, "teacher", Path(scratch))
        trainer.build()
        batch = trainer.micro_batch
        for count in workers:
            figure = benchmark_loader(trainer.train_set, workers=count, batch_size=batch,
                                      batches=batches, warmup=2 if count else 1)
            figures.append(figure.as_dict())
    return figures


def step_figures(recipe: Recipe, stages: list[Stage], steps: int = 5) -> list[dict[str, Any]]:
    """Seconds per training step (forward, loss, backward, optimiser) of each stage at the
    recipe's micro-batch, on one fixed batch (no loading), after one warm-up step."""
    figures = []
    with tempfile.TemporaryDirectory() as scratch:
        teacher_path = None
        for stage in stages:
            trainer = _trainer(recipe, stage, Path(scratch), teacher_path)
            trainer.build()
            samples = [trainer.train_set[index] for index in range(trainer.micro_batch)]
            batch = torch.utils.data.default_collate(samples)
            batch = to_device(batch, trainer.ctx.device)
            trainer.model.train()

            def training_step() -> None:
                loss, _ = trainer.forward_loss(batch)
                loss.backward()
                trainer.update()

            times = time_calls(training_step, warmup=1, repeats=steps, device=trainer.ctx.device)
            seconds = sorted(times)[len(times) // 2]
            figures.append({
                "stage": stage, "micro_batch": trainer.micro_batch, "seconds_per_step": seconds,
                "samples_per_second": trainer.micro_batch / seconds,
                "distilling": trainer.training_stage.distilling,
            })
            if stage == "teacher":
                teacher_path = Path(scratch) / "teacher" / "last.pt"
                trainer.save("last.pt")
    return figures


def _trainer(recipe: Recipe, stage: Stage, scratch: Path, teacher: Path | None = None) -> StageTrainer:
    ctx = DistributedContext(device=choose_device(recipe.train.device))
    return StageTrainer(recipe, stage, scratch, ctx, teacher_checkpoint=teacher)
