"""``mmtrack-kd train``: the run folder, then the recipe's stages in order."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Iterator

import torch.distributed

from mmtrack_kd.engine.build import check_recipe
from mmtrack_kd.engine.stages import STAGES, Stage, TrainingStage
from mmtrack_kd.engine.trainer import StageTrainer
from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.plugins import default_registry
from mmtrack_kd.recipe import Recipe, dump_recipe
from mmtrack_kd.runtime.distributed import DistributedContext, init_distributed, shutdown_distributed
from mmtrack_kd.runtime.environment import write_env

log = logging.getLogger(__name__)


def run_folder(recipe: Recipe, run_dir: Path | None = None) -> Path:
    """``run_dir`` if given, else ``train.output_dir / <recipe name>``."""
    return Path(run_dir) if run_dir is not None else recipe.train.output_dir / recipe.run_name


def teacher_for_stage(stage: TrainingStage, run_dir: Path, teacher: Path | None) -> Path | None:
    """The teacher checkpoint a stage distils from (and may start from): ``--teacher`` or the
    run's own ``teacher/best.pt`` / ``last.pt`` as ``distill.teacher_checkpoint`` says. None for
    a stage that takes no teacher, and, without ``--teacher``, for one that needs none
    (:attr:`~TrainingStage.needs_teacher`: the single-modality student, FOST started from
    scratch)."""
    if not stage.takes_teacher:
        return None
    if teacher is not None:
        if not Path(teacher).is_file():
            raise MmtrackError(f"--teacher {teacher} does not exist")
        return Path(teacher)
    if not stage.needs_teacher:
        return None
    path = run_dir / "teacher" / f"{stage.recipe.distill.teacher_checkpoint}.pt"
    if not path.is_file():
        raise MmtrackError(
            f"the {stage.name} stage needs a teacher checkpoint and {path} does not exist; run the "
            "teacher stage first (`--stage teacher`) or pass `--teacher PATH`"
        )
    return path


#: The lock file of a run folder (see :func:`lock_run_folder`).
LOCK_FILE = ".lock"


def make_run_folder(folder: Path) -> None:
    """Create the run folder; a file in the way or a folder we may not write is a user's error."""
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise MmtrackError(f"run folder {folder}: {parent} is a file, not a folder "
                               "(check train.output_dir and --run-dir)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MmtrackError(f"run folder {folder}: cannot create it: {error.strerror or error}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MmtrackError(f"run folder {folder}: not writable")


@contextlib.contextmanager
def lock_run_folder(folder: Path) -> Iterator[None]:
    """Hold an exclusive OS lock (``flock``) on ``<folder>/.lock`` while a run trains there.

    A second ``train`` into the same folder is refused at once instead of interleaving its
    checkpoints, recipe and metrics with the first's. The kernel drops the lock when the process
    ends, however it ends, so a crashed run leaves no stale lock behind.
    """
    path = folder / LOCK_FILE
    try:
        handle = open(path, "a+", encoding="utf-8")
    except OSError as error:
        raise MmtrackError(f"run folder {folder}: cannot open its lock file: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise MmtrackError(
                f"run folder {folder} is in use by another `mmtrack-kd train` (process {holder}); "
                "wait for it to end, or choose another --run-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def check_not_started(folder: Path, stages: list[Stage], resume: bool) -> None:
    """Refuse a fresh run in a folder that holds one, before anything in it is written."""
    if resume:
        return
    started = [stage for stage in stages if (folder / stage / "last.pt").is_file()]
    if started:
        raise MmtrackError(
            f"{folder / started[0]} already holds a run; pass --resume to continue it or choose "
            "another --run-dir"
        )


class PeerRefused(MmtrackError):
    """The main process refused the run and has said why; the other processes stop quietly."""

    quiet = True


def agree_to_start(ctx: DistributedContext, refusal: Exception | None) -> None:
    """Tell every process whether the main process refused the run (a folder that holds one, a
    folder that cannot be made, a lock held by another run) before the first collective of
    training: otherwise the others go on into DistributedDataParallel's set-up and crash there
    with a traceback when the main process exits.

    Raises:
        Exception: ``refusal`` itself on the main process; :class:`PeerRefused` on the others.
    """
    if ctx.enabled:
        message = [None if refusal is None else str(refusal)]
        torch.distributed.broadcast_object_list(message, src=0)
        if refusal is None and message[0] is not None:
            raise PeerRefused(f"process {ctx.rank}: the main process refused the run: {message[0]}")
    if refusal is not None:
        raise refusal


def write_run_files(folder: Path, recipe: Recipe, resume: bool) -> None:
    """``recipe.yaml`` (resolved) and ``env.json``: written once the run is known to start."""
    resolved = dump_recipe(recipe)
    previous = folder / "recipe.yaml"
    if resume and previous.is_file() and previous.read_text() != resolved:
        log.warning("the recipe differs from the one %s was started with; resuming with "
                    "the new one", folder)
    previous.write_text(resolved, encoding="utf-8")
    write_env(folder, default_registry().plugins)


def train(
    recipe: Recipe,
    stage: Stage | None = None,
    teacher: Path | None = None,
    resume: bool = False,
    run_dir: Path | None = None,
) -> Path:
    """Run the recipe's stages (or one) in its run folder; returns the folder.

    The folder is locked for the whole run (:func:`lock_run_folder`), and nothing in it is
    written before every check that can refuse the run has passed: a second run, a fresh start
    over an existing run, a missing teacher, a ``--resume`` that does not fit the checkpoint.
    """
    stages: list[Stage] = [stage] if stage else list(recipe.train.stages)
    check_recipe(recipe, stages)
    ctx = init_distributed(recipe.train.device)
    folder = run_folder(recipe, run_dir)
    try:
        with contextlib.ExitStack() as stack:
            refusal = None
            if ctx.is_main:
                try:
                    make_run_folder(folder)
                    stack.enter_context(lock_run_folder(folder))
                    check_not_started(folder, stages, resume)
                except Exception as error:  # noqa: BLE001 -- every process must hear of it
                    refusal = error
            agree_to_start(ctx, refusal)
            written = False
            for current in stages:
                teacher_path = teacher_for_stage(STAGES[current](recipe, ctx), folder, teacher)
                trainer = StageTrainer(recipe, current, folder, ctx, teacher_checkpoint=teacher_path,
                                       resume=resume)
                trainer.prepare()
                if ctx.is_main and not written:
                    write_run_files(folder, recipe, resume)
                    log.info("run folder %s (%d process%s on %s)", folder, ctx.world_size,
                             "es" if ctx.world_size > 1 else "", ctx.device)
                written = True
                trainer.train()
                if ctx.is_main:
                    log.info("%s stage finished: %s", current, folder / current)
    finally:
        shutdown_distributed()
    return folder
