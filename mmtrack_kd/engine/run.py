"""``mmtrack-kd train``: the run folder, then the recipe's stages in order."""

from __future__ import annotations

import logging
from pathlib import Path

from mmtrack_kd.engine.build import Stage, check_recipe
from mmtrack_kd.engine.distributed import init_distributed, shutdown_distributed
from mmtrack_kd.engine.trainer import StageTrainer, write_env
from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.recipe import Recipe, dump_recipe

log = logging.getLogger(__name__)


def run_folder(recipe: Recipe, run_dir: Path | None = None) -> Path:
    """``run_dir`` if given, else ``train.output_dir / <recipe name>``."""
    return Path(run_dir) if run_dir is not None else recipe.train.output_dir / recipe.run_name


def teacher_for_student(recipe: Recipe, run_dir: Path, teacher: Path | None) -> Path | None:
    """The teacher checkpoint the student stage distils from (and may start from): ``--teacher``
    or the run's own ``teacher/best.pt`` / ``last.pt`` as ``distill.teacher_checkpoint`` says.
    None when the student needs no teacher (single-modality, or FOST started from scratch)."""
    distill = recipe.distill
    needs = not recipe.student.single_modality and (
        distill.feature.weight > 0 or distill.response.weight > 0 or recipe.student.init == "teacher"
    )
    if teacher is not None:
        if not Path(teacher).is_file():
            raise MmtrackError(f"--teacher {teacher} does not exist")
        return Path(teacher)
    if not needs:
        return None
    path = run_dir / "teacher" / f"{distill.teacher_checkpoint}.pt"
    if not path.is_file():
        raise MmtrackError(
            f"the student stage needs a teacher checkpoint and {path} does not exist; run the "
            "teacher stage first (`--stage teacher`) or pass `--teacher PATH`"
        )
    return path


def train(
    recipe: Recipe,
    stage: Stage | None = None,
    teacher: Path | None = None,
    resume: bool = False,
    run_dir: Path | None = None,
) -> Path:
    """Run the recipe's stages (or one) in its run folder; returns the folder."""
    stages: list[Stage] = [stage] if stage else list(recipe.train.stages)
    check_recipe(recipe, stages)
    ctx = init_distributed(recipe.train.device)
    folder = run_folder(recipe, run_dir)
    try:
        if ctx.is_main:
            folder.mkdir(parents=True, exist_ok=True)
            resolved = dump_recipe(recipe)
            previous = folder / "recipe.yaml"
            if resume and previous.is_file() and previous.read_text() != resolved:
                log.warning("the recipe differs from the one %s was started with; resuming with "
                            "the new one", folder)
            previous.write_text(resolved)
            write_env(folder)
            log.info("run folder %s (%d process%s on %s)", folder, ctx.world_size,
                     "es" if ctx.world_size > 1 else "", ctx.device)
        for current in stages:
            teacher_path = teacher_for_student(recipe, folder, teacher) if current == "student" else None
            trainer = StageTrainer(recipe, current, folder, ctx, teacher_checkpoint=teacher_path,
                                   resume=resume)
            trainer.run()
            if ctx.is_main:
                log.info("%s stage finished: %s", current, folder / current)
    finally:
        shutdown_distributed()
    return folder
