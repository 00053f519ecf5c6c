"""Running the planned jobs: train (resuming), evaluate, and store one record per job.

:func:`run_experiments` runs every planned job and writes ``results.json`` and the report.
Resumable by job: a job whose ``results/<id>.json`` exists is not run again; a job that was
interrupted continues its stage from ``last.pt`` (``train(..., resume=True)``) and its evaluation
from the sequences already tracked. A student arm uses the teacher arm of the same modality and
seed (planned first), so the teacher is trained once per modality and seed.

Records travel between machines in the committed ``results.json``: :func:`restore_records` brings
them back into a fresh output folder, :func:`supersede` sets a finished job aside for a rerun
(nothing is deleted), and a teacher trained again on a later machine is kept beside
``results.json`` (:func:`keep_teacher`) so every student of a seed distils from one file.
Each record carries the machine, commit and torch version that produced it (:func:`provenance`)
and its per-epoch losses (:func:`epoch_losses`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmtrack_kd.checkpoints import RunCheckpoint, load_model
from mmtrack_kd.data.results_io import atomic_file, atomic_write_text
from mmtrack_kd.engine.metrics_log import read_metrics
from mmtrack_kd.engine.run import train
from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.evaluation.provenance import file_sha256
from mmtrack_kd.evaluation.runner import evaluate_checkpoint, load_ground_truths
from mmtrack_kd.experiments.analysis import finite, stream_reliance
from mmtrack_kd.experiments.arms import DEFAULT_ARMS, load_arms
from mmtrack_kd.experiments.planning import Job, job_recipe, plan_jobs
from mmtrack_kd.experiments.report import write_report
from mmtrack_kd.models.profile import count_parameters
from mmtrack_kd.recipe import Recipe

log = logging.getLogger(__name__)

#: Folder under the output folder where :func:`supersede` sets finished jobs aside.
SUPERSEDED_DIR = "superseded"
#: Kept retrained teacher files, beside ``results.json`` (see :func:`run_job`).
TEACHER_STORE = "teachers"
#: The mark beside a retrained teacher file: its hash and its own scores.
RETRAINED_MARK = "retrained.json"


# --------------------------------------------------------------------------- the command


def run_experiments(
    arms: str | os.PathLike[str] = DEFAULT_ARMS,
    out_dir: str | os.PathLike[str] = "runs/experiments",
    seeds: Sequence[int] = (0, 1),
    only: Iterable[str] | None = None,
    reduced: bool = False,
    workers: int = 1,
    report: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    dry_run: bool = False,
    command: str | None = None,
    overrides: Sequence[str] = (),
    rerun: Sequence[str] = (),
    reason: str | None = None,
) -> Path:
    """Run the planned arms (resumable) and write ``results.json`` and the markdown report.

    Args:
        arms: the arms table (file, or the folder holding ``arms.yaml``).
        out_dir: run folders (``runs/``), evaluation results (``eval/``), per-job records
            (``results/``) and the shared generated data (``data/``).
        seeds: training seeds; main arms run all of them, the rest the first.
        only: arm names or job ids to run (their teachers are run too); the report still covers
            every finished job.
        reduced: CI setting - tiny model and data, a handful of steps.
        workers: tracker processes during evaluation.
        report: the markdown file (default ``<out_dir>/results.md``); ``results.json`` is
            written beside it.
        device: evaluation device.
        dry_run: plan and write the report of what has finished, run nothing.
        command: the command line printed in the report (default: this process's argv).
        overrides: ``KEY=VALUE`` overrides applied to every arm (before the arm's own), e.g.
            ``teacher.optim.samples_per_epoch=12800``; recorded in each arm's result.
        rerun: job ids to run again although they finished (see :func:`supersede`); they
            are run whether or not ``only`` names them.
        reason: why they are run again (required with ``rerun``); the report shows it.

    Returns:
        The markdown report's path.
    """
    table = load_arms(arms)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    rerun = list(dict.fromkeys(rerun))
    if rerun:
        unknown = set(rerun) - {j.id for j in plan_jobs(table, seeds)}
        if unknown:
            raise MmtrackError(f"--rerun: no job {sorted(unknown)} (give job ids, e.g. rgbt-student-s0)")
        if not (reason or "").strip():
            raise MmtrackError("--rerun needs --reason: the report says why a finished arm was run again")
    jobs = plan_jobs(table, seeds, list(only) + rerun if only else None)
    if command is None:
        program = Path(sys.argv[0]).name
        program = "python -m mmtrack_kd.experiments" if program == "__main__.py" else program
        command = " ".join([program, shlex.join(sys.argv[1:])]).strip()
    report = Path(report) if report is not None else out_dir / "results.md"
    restore_records(report.with_name("results.json"), out_dir, reduced)
    if not dry_run:
        for job_id in rerun:
            supersede(job_id, out_dir, str(reason))
        for index, job in enumerate(jobs, 1):
            log.info("[%d/%d] %s", index, len(jobs), job.id)
            teacher_job = (Job(table.arms[job.arm.teacher], job.modality, job.seed)
                           if job.arm.teacher else None)
            run_job(job, out_dir, reduced=reduced, workers=workers, device=device, extra=overrides,
                    teacher_job=teacher_job, teacher_store=report.with_name(TEACHER_STORE))
    # every finished job of the full plan goes into the report (several sessions add up)
    records, missing = [], []
    for job in plan_jobs(table, seeds):
        path = out_dir / "results" / f"{job.id}.json"
        if path.is_file():
            records.append(json.loads(path.read_text(encoding="utf-8")))
        else:
            missing.append(job.id)
    superseded = [e for e in load_superseded(out_dir) if bool(e["record"].get("reduced")) == reduced]
    _atomic_json(report.with_name("results.json"),
                 {"command": command, "seeds": seeds, "reduced": reduced,
                  "arms_table": str(table.path), "records": records, "missing": missing,
                  "superseded": superseded})
    return write_report(table, records, report, command, seeds, reduced, missing, superseded)


# --------------------------------------------------------------------------- one job


def run_job(job: Job, out_dir: Path, reduced: bool = False, workers: int = 1,
            device: str = "cpu", extra: Sequence[str] = (),
            teacher_job: Job | None = None, teacher_store: Path | None = None) -> dict[str, Any]:
    """Train (resuming) and evaluate one job; returns and stores its result record. A job whose
    record exists is returned as stored without running anything.

    ``teacher_job``: the job of the teacher a student arm needs. When that teacher's record was
    restored from a committed ``results.json`` but its checkpoint is not on this machine (a later
    session on a fresh machine), the teacher stage is trained again from its recipe (same seed,
    same data) without re-scoring it, so the student has something to distil from.

    ``teacher_store``: a folder of kept teacher files (``<store>/<teacher job id>/best.pt`` with
    its ``retrained.json``, committed beside ``results.json``). A retrained teacher is copied
    there once; a later machine without the run folder distils from the kept file instead of
    training a third teacher, so every student of a seed shares one teacher file across sessions."""
    record_path = out_dir / "results" / f"{job.id}.json"
    if record_path.is_file():
        log.info("%s: finished before, not run again", job.id)
        return json.loads(record_path.read_text(encoding="utf-8"))
    recipe = job_recipe(job, out_dir, reduced, extra)
    run_dir = out_dir / "runs" / job.id
    stage = job.arm.stage
    teacher: Path | None = None
    kept: Path | None = None
    retrained = False
    if job.teacher_id:
        teacher_dir = out_dir / "runs" / job.teacher_id
        kept = teacher_store / teacher_dir.name / "best.pt" if teacher_store is not None else None
        if not _stage_finished(teacher_dir, "teacher"):
            if kept is not None and kept.is_file():
                log.info("%s: its teacher's run folder is not here; distilling from the kept "
                         "teacher file %s", job.id, kept)
                teacher = kept
            elif teacher_job is not None:
                log.info("%s: the checkpoint of its teacher %s is not here; training it again",
                         job.id, teacher_job.id)
                train(job_recipe(teacher_job, out_dir, reduced, extra), stage="teacher", resume=True,
                      run_dir=teacher_dir)
                retrained = True
        if teacher is None:
            if not _stage_finished(teacher_dir, "teacher"):
                raise MmtrackError(f"{job.id}: its teacher {teacher_dir} has not finished training")
            teacher = teacher_dir / "teacher" / f"{recipe.distill.teacher_checkpoint}.pt"
            if not teacher.is_file():
                teacher = teacher_dir / "teacher" / "last.pt"
        retrained = retrained or (teacher.parent / RETRAINED_MARK).is_file()
    timing_path = run_dir / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {"train_s": 0.0, "eval_s": 0.0}
    if not _stage_finished(run_dir, stage):
        log.info("%s: training the %s stage (%s)", job.id, stage, job.arm.description)
        started = time.perf_counter()
        train(recipe, stage=stage, teacher=teacher, resume=True, run_dir=run_dir)
        timing["train_s"] += time.perf_counter() - started
        _atomic_json(timing_path, timing)
    checkpoint = _stage_checkpoint(run_dir, stage)
    datasets = _evaluation_datasets(recipe)
    started = time.perf_counter()
    results = evaluate_checkpoint(checkpoint, datasets, out_dir / "eval", workers=workers,
                                  device=device, tracker_name=job.id, progress=False)
    timing["eval_s"] += time.perf_counter() - started
    _atomic_json(timing_path, timing)
    evaluations = {}
    for name, dataset in datasets:
        result = results[name]
        folder = out_dir / "eval" / job.id / name
        evaluations[name] = {
            "protocol": result.protocol,
            "scores": dict(result.scores),
            "sequences": len(result.sequences),
            "frames": int(sum(len(gt.boxes) for gt in load_ground_truths(dataset))),
            "per_attribute": {a: {"scores": dict(r.scores), "sequences": len(r.sequences)}
                              for a, r in result.per_attribute.items()},
            "stream_reliance": stream_reliance(dataset, folder),
            "sequence_scores": {n: dict(v) for n, v in result.sequence_scores.items()},
        }
    record = {
        "id": job.id,
        "arm": job.arm.name,
        "description": job.arm.description,
        "modality": job.modality.key,
        "seed": job.seed,
        "group": job.arm.group,
        "stage": stage,
        "overrides": list(job.arm.overrides),
        "extra_overrides": list(extra),
        "teacher": str(teacher) if teacher else None,
        **(teacher_provenance(teacher, retrained, recipe, out_dir, workers, device) if teacher else {}),
        "checkpoint": str(checkpoint),
        "parameters": _parameters(checkpoint),
        "samples": _samples(run_dir, stage),
        "train_s": timing["train_s"],
        "eval_s": timing["eval_s"],
        "reduced": reduced,
        **provenance(),
        "epochs": epoch_losses(run_dir / stage / "metrics.jsonl"),
        "evaluation": evaluations,
    }
    if teacher is not None and retrained and kept is not None and not kept.is_file():
        keep_teacher(teacher, kept)  # after teacher_provenance, which writes its mark
    _atomic_json(record_path, record)
    return record


def _evaluation_datasets(recipe: Recipe) -> list[tuple[str, Any]]:
    """``(name, plugin instance)`` of the recipe's ``evaluate.datasets``."""
    return [(choice.name, choice.plugin(choice.options)) for choice in recipe.evaluate.datasets]


def _stage_checkpoint(run_dir: Path, stage: str) -> Path:
    """The checkpoint a finished stage is scored with: ``best.pt``, else ``last.pt``."""
    for name in ("best.pt", "last.pt"):
        path = run_dir / stage / name
        if path.is_file():
            return path
    raise MmtrackError(f"{run_dir / stage}: no checkpoint after training")


def _stage_finished(run_dir: Path, stage: str) -> bool:
    """Whether the stage's ``last.pt`` says its training finished."""
    path = run_dir / stage / "last.pt"
    if not path.is_file():
        return False
    progress = RunCheckpoint.read(path).progress
    return progress is not None and progress.finished


def _samples(run_dir: Path, stage: str) -> int | None:
    """Training samples the stage saw, from its ``last.pt``; None without one."""
    path = run_dir / stage / "last.pt"
    if not path.is_file():
        return None
    progress = RunCheckpoint.read(path).progress
    return progress.samples if progress is not None else 0


def _parameters(checkpoint: Path) -> int | None:
    """The parameter count of the model in ``checkpoint``; None (with a warning) when the model
    cannot be built."""
    try:
        model, _ = load_model(checkpoint)
        return int(count_parameters(model)[0])
    except Exception as error:  # noqa: BLE001 - a size is a nicety; the arm's scores still count
        log.warning("could not count the parameters of %s: %s", checkpoint, error)
        return None


# --------------------------------------------------------------------------- record provenance


def provenance() -> dict[str, Any]:
    """What a record needs to be checked later: the machine that trained and scored it (CPU
    model, CPU count, torch threads, platform), the commit and the torch version."""
    return {
        "machine": {"cpu": _cpu_model(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                    "platform": platform.platform(), "python": platform.python_version()},
        "commit": _commit(),
        "torch": torch.__version__,
    }


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what :mod:`platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout this package runs from (``+dirty`` with
    uncommitted changes to tracked files); None outside a git checkout."""
    where = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def epoch_losses(metrics: Path) -> list[dict[str, Any]]:
    """Per-epoch losses from a stage's ``metrics.jsonl``: ``{"epoch", "train_loss", "val_loss"}``
    with ``train_loss`` the mean of the logged training totals of that epoch (an update logged
    twice, by a run and its resumption, counts once) and ``val_loss`` the epoch's validation loss
    (None where not finite). Empty when the file is missing."""
    if not metrics.is_file():
        return []
    train_totals: dict[int, dict[int, float]] = {}
    val: dict[int, float | None] = {}
    for entry in read_metrics(metrics):
        if entry.get("event") == "train" and finite(entry.get("total")) is not None:
            # a train line carries the epoch in progress (0-based); an epoch line the epochs done
            train_totals.setdefault(int(entry["epoch"]) + 1, {})[int(entry["update"])] = float(entry["total"])
        elif entry.get("event") == "epoch":
            val[int(entry["epoch"])] = finite(entry.get("val_loss"))
    return [{"epoch": epoch,
             "train_loss": statistics.fmean(train_totals[epoch].values()) if train_totals.get(epoch) else None,
             "val_loss": val.get(epoch)}
            for epoch in sorted(set(train_totals) | set(val))]


# --------------------------------------------------------------------------- teacher files


def keep_teacher(teacher: Path, kept: Path) -> None:
    """Copy a retrained teacher file and its mark (scores, hash) to ``kept``, each atomically,
    the mark first (a kept file is never without its mark)."""
    mark = teacher.parent / RETRAINED_MARK
    if mark.is_file():
        _copy_atomic(mark, kept.parent / RETRAINED_MARK)
    _copy_atomic(teacher, kept)
    log.info("kept the retrained teacher file %s as %s", teacher, kept)


def _copy_atomic(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` through :func:`~mmtrack_kd.data.results_io.atomic_file`."""
    with source.open("rb") as reader, atomic_file(dest, "wb") as writer:
        shutil.copyfileobj(reader, writer)


def teacher_provenance(teacher: Path, retrained: bool, recipe: Recipe, out_dir: Path, workers: int = 1,
                       device: str = "cpu") -> dict[str, Any]:
    """Which teacher file a student arm distilled from: ``teacher_sha256`` (its first 16 hex
    digits) and ``teacher_retrained``. A retrained teacher (trained again because its first
    checkpoint is not on this machine, see :func:`run_job`) is not the file whose record the
    report shows, so it is scored once on the student's test sets (``teacher_scores``) and
    marked, so that later students of the same teacher carry the same provenance."""
    out: dict[str, Any] = {"teacher_sha256": file_sha256(teacher)[:16], "teacher_retrained": retrained}
    if retrained:
        mark = teacher.parent / RETRAINED_MARK
        known = json.loads(mark.read_text(encoding="utf-8")) if mark.is_file() else {}
        if known.get("sha256") != out["teacher_sha256"]:
            datasets = _evaluation_datasets(recipe)
            name = f"{teacher.parent.parent.name}-retrained-{out['teacher_sha256'][:8]}"
            results = evaluate_checkpoint(teacher, datasets, out_dir / "eval", workers=workers,
                                          device=device, tracker_name=name, progress=False)
            known = {"sha256": out["teacher_sha256"],
                     "scores": {n: dict(r.scores) for n, r in results.items()}}
            _atomic_json(mark, known)
        out["teacher_scores"] = known["scores"]
    return out


# --------------------------------------------------------------------------- records on disk


def supersede(job_id: str, out_dir: Path, reason: str) -> Path | None:
    """Set a finished job aside so that the next run trains and scores it afresh: its record,
    run folder and tracked boxes move to ``superseded/<id>-<UTC time>/`` (nothing is deleted),
    with ``reason`` beside them. Returns that folder, or None when the job has no record (never
    finished, or set aside already and its rerun was interrupted: the partial rerun is kept and
    resumes)."""
    record_path = out_dir / "results" / f"{job_id}.json"
    if not record_path.is_file():
        log.info("%s: no finished record to set aside; running it (resuming a partial rerun)", job_id)
        return None
    at = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    dest = out_dir / SUPERSEDED_DIR / f"{job_id}-{at}"
    dest.mkdir(parents=True, exist_ok=False)
    for source, name in ((out_dir / "runs" / job_id, "run"), (out_dir / "eval" / job_id, "eval")):
        if source.exists():
            source.rename(dest / name)
    record = json.loads(record_path.read_text(encoding="utf-8"))
    # the entry is written before the record leaves, so an interruption loses nothing
    _atomic_json(dest / "superseded.json", {"at": at, "reason": reason, "record": record})
    record_path.unlink()
    log.info("%s: set aside in %s (%s); running it again", job_id, dest, reason)
    return dest


def load_superseded(out_dir: Path) -> list[dict[str, Any]]:
    """The entries :func:`supersede` wrote (``at``, ``reason``, ``record``), oldest first."""
    entries = [json.loads(p.read_text(encoding="utf-8"))
               for p in (out_dir / SUPERSEDED_DIR).glob("*/superseded.json")]
    return sorted(entries, key=lambda e: (e["at"], e["record"]["id"]))


def restore_records(results_json: Path, out_dir: Path, reduced: bool = False) -> list[str]:
    """Copy the per-job records of a committed ``results.json`` (the report's raw results) into
    ``out_dir/results`` where no record of that job is, so arms finished in an earlier session
    on another machine count as finished here; returns the ids restored. Its superseded entries
    are restored too, and a record that was superseded is never restored (a rerun interrupted on
    one machine must not bring the old record back). Records of the other setting (reduced vs
    full) are never restored."""
    if not results_json.is_file():
        return []
    try:
        stored = json.loads(results_json.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise MmtrackError(f"{results_json}: cannot read the stored results ({error})") from None
    for entry in stored.get("superseded", []):
        path = out_dir / SUPERSEDED_DIR / f"{entry['record']['id']}-{entry['at']}" / "superseded.json"
        if not path.is_file():
            _atomic_json(path, entry)
    set_aside = [e["record"] for e in load_superseded(out_dir)]
    records_dir = out_dir / "results"
    restored = []
    for record in stored.get("records", []):
        path = records_dir / f"{record['id']}.json"
        if path.is_file() or bool(record.get("reduced")) != reduced or record in set_aside:
            continue
        _atomic_json(path, record)
        restored.append(record["id"])
    if restored:
        log.info("restored %d finished arms from %s: %s", len(restored), results_json, ", ".join(restored))
    return restored


def _atomic_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON (indent 1, numpy values and paths as plain values) atomically
    (:func:`~mmtrack_kd.data.results_io.atomic_write_text`), so a reader never sees half a record."""
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=False, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    """The JSON value of a numpy scalar or array, or a path."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)
