"""The experiment runner of issue 9: the paper's claims checked at small scale on synthetic data.

``run_experiments`` reads an arms table (``recipes/experiments/arms.yaml``: base recipes per
modality plus a few overrides per arm), trains and evaluates every (arm, modality, seed) it
plans, and writes ``results.json`` (raw per-arm results) and ``results.md`` (tables shaped like
the paper's Tables 3, 4, 5 and Table 1's teacher / student rows, our figures beside the paper's;
per-attribute results for the modality-switch attributes; a per-frame check of which stream each
model relies on; sizes, samples and wall time per arm; the seeds; the command line). Each claim
(:data:`CLAIMS`, data) is read from measured noise (:func:`read_claim`): the arms' spread over
their training runs and a paired bootstrap over the test sequences. Each record carries the
machine, commit and torch version that produced it and its per-epoch losses.

Resumable by arm: an arm whose ``results/<id>.json`` exists is not run again; an arm that was
interrupted continues its stage from ``last.pt`` (``train(..., resume=True)``) and its evaluation
from the sequences already tracked. A student arm uses the teacher arm of the same modality and
seed (run first when missing), so the teacher is trained once per modality and seed.

``reduced=True`` overrides every arm to a handful of steps on a tiny model and tiny data, so CI can
run the whole path in a minute or two (its numbers mean nothing).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from mmtrack_kd.errors import MmtrackError, RecipeError
from mmtrack_kd.recipe import (Recipe, Section, apply_override, dump_recipe, parse_override, parse_yaml,
                               validate_recipe, validation_problems)

log = logging.getLogger(__name__)

#: Default arms table.
DEFAULT_ARMS = Path("recipes/experiments/arms.yaml")
#: Order in which groups are run: main arms (every seed) first, then the other modalities, then
#: the ablations.
GROUP_ORDER = ("main", "modality", "ablation")
#: Margin (points of per-frame precision) of the stream-reliance flags: a description of where a
#: model loses frames, not a verdict (claims are read from measured noise, see read_claim).
RELIANCE_MARGIN = 5.0
#: Centre-error threshold (pixels) of the per-frame stream-reliance check (LasHeR's PR).
PR_PIXELS = 20.0

#: The paper's ablation tables (percent), not in published.json. Table 3 and Table 5 are on
#: LasHeR (PR / SR), Table 4 on RGBT234 (MPR / MSR, printed as PR / SR).
PAPER_TABLES: dict[str, dict[str, Any]] = {
    "table3": {
        "title": "Table 3 - teacher components (paper: LasHeR)",
        "benchmark": "LasHeR",
        "rows": [
            ("baseline", "RGB-only baseline", {"PR": 61.0, "SR": 48.3}),
            ("no-spatial", "teacher without spatial attention", {"PR": 67.3, "SR": 53.5}),
            ("no-token", "teacher without token attention", {"PR": 67.4, "SR": 53.6}),
            ("no-history", "teacher without history", {"PR": 71.0, "SR": 56.4}),
            ("full", "full teacher", {"PR": 71.2, "SR": 56.5}),
        ],
    },
    "table4": {
        "title": "Table 4 - distillation strategies (paper: RGBT234, MPR / MSR)",
        "benchmark": "RGBT234",
        "rows": [
            ("none", "no KD (FOST)", {"PR": 75.6, "SR": 55.7}),
            ("response", "response KD only", {"PR": 82.9, "SR": 62.0}),
            ("feature", "feature KD only", {"PR": 86.9, "SR": 64.7}),
            ("both", "response + feature KD", {"PR": 87.3, "SR": 65.1}),
        ],
    },
    "table5": {
        "title": "Table 5 - distilled layers (paper: LasHeR; 'first/last 6 of 12' = our halves)",
        "benchmark": "LasHeR",
        "rows": [
            ("first-half", "first half of the layers", {"PR": 70.6, "SR": 56.1}),
            ("second-half", "second half of the layers", {"PR": 70.8, "SR": 56.2}),
            ("all", "all layers", {"PR": 69.7, "SR": 55.4}),
            ("even", "even layers", {"PR": 71.4, "SR": 56.7}),
        ],
    },
}

#: Overrides of the reduced (CI) setting: a tiny model, tiny data, a handful of steps.
REDUCED_SET = [
    "model.backbone={depth: 2, embed_dim: 32, num_heads: 2, patch_size: 16, drop_path: 0.0}",
    "model.template_size=32",
    "model.search_size=64",
    "model.head_channels=16",
    "data.val_samples=4",
    "data.workers=0",
    "train.checkpoint_every=2",
    "train.log_every=1",
]
REDUCED_OPTIM = {"epochs": 1, "batch_size": 4, "samples_per_epoch": 12, "lr_drop_epoch": 0,
                 "warmup_epochs": 0.0}
REDUCED_DATA = {"n_train": 3, "n_test": 2, "frames": 24, "width": 96, "height": 96,
                # many short spells, so the per-frame stream check sees every kind of frame
                "content": {"spells_per_100": 5.0, "spell_frames": [2, 4]}}


# --------------------------------------------------------------------------- the arms table


@dataclass(frozen=True)
class Arm:
    """One row of the arms table."""

    name: str
    description: str
    stage: str
    modalities: tuple[str, ...]
    group: str
    overrides: tuple[str, ...]
    teacher: str | None = None
    paper: dict[str, str] = field(default_factory=dict)
    #: an ablation that runs every seed (after the first seed's ablations), not only the first
    all_seeds: bool = False


@dataclass(frozen=True)
class Modality:
    """A modality's base recipe and the attributes that mark a switch of the dominant stream."""

    key: str
    base: Path
    benchmark: str
    switch_attributes: tuple[str, ...]
    all_seeds: bool


@dataclass(frozen=True)
class ArmsTable:
    path: Path
    modalities: dict[str, Modality]
    arms: dict[str, Arm]


@dataclass(frozen=True)
class Job:
    """One arm on one modality with one seed."""

    arm: Arm
    modality: Modality
    seed: int

    @property
    def id(self) -> str:
        return f"{self.modality.key}-{self.arm.name}-s{self.seed}"


class _ModalityEntry(Section):
    """A ``modalities`` entry of the arms table (the file's schema; unknown keys are errors)."""

    base: str
    benchmark: str | None = None
    switch_attributes: list[str] = Field(default_factory=list)
    all_seeds: bool | None = None


class _ArmEntry(Section):
    """An ``arms`` entry of the arms table."""

    stage: Literal["teacher", "student"]
    description: str | None = None
    modalities: list[str] = Field(default_factory=lambda: ["rgbt"])
    group: Literal[GROUP_ORDER] = "ablation"  # type: ignore[valid-type]
    set: list[str] = Field(default_factory=list)
    teacher: str | None = None
    paper: dict[str, str] = Field(default_factory=dict)
    all_seeds: bool = False


class _ArmsFile(Section):
    modalities: dict[str, _ModalityEntry] = Field(default_factory=dict)
    arms: dict[str, _ArmEntry] = Field(default_factory=dict)


def load_arms(path: str | os.PathLike[str] = DEFAULT_ARMS) -> ArmsTable:
    """Read an arms table (a file, or the folder holding ``arms.yaml``); a schema problem is a
    :class:`RecipeError` naming every bad key by its path (``arms.teacher.all_seed``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "arms.yaml"
    if not path.is_file():
        raise MmtrackError(f"{path}: no arms table")
    try:
        data = _ArmsFile.model_validate(parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {})
    except ValidationError as error:
        raise RecipeError(str(path), validation_problems(error), what="arms table") from None
    modalities = {
        key: Modality(
            key=key,
            base=(path.parent / entry.base).resolve(),
            benchmark=entry.benchmark or key,
            switch_attributes=tuple(entry.switch_attributes),
            all_seeds=entry.all_seeds if entry.all_seeds is not None else key == "rgbt",
        )
        for key, entry in data.modalities.items()
    }
    arms = {}
    for name, entry in data.arms.items():
        arm = Arm(
            name=name,
            description=" ".join((entry.description or name).split()),
            stage=entry.stage,
            modalities=tuple(entry.modalities),
            group=entry.group,
            overrides=tuple(entry.set),
            teacher=entry.teacher,
            paper=dict(entry.paper),
            all_seeds=entry.all_seeds,
        )
        missing = [m for m in arm.modalities if m not in modalities]
        if missing:
            raise MmtrackError(f"{path}: arm {name}: unknown modalities {missing}")
        arms[name] = arm
    for arm in arms.values():
        if arm.teacher is not None and (arm.teacher not in arms or arms[arm.teacher].stage != "teacher"):
            raise MmtrackError(f"{path}: arm {arm.name}: teacher {arm.teacher!r} is not a teacher arm")
    return ArmsTable(path, modalities, arms)


def plan_jobs(table: ArmsTable, seeds: Sequence[int], only: Iterable[str] | None = None) -> list[Job]:
    """Every job in run order: main arms on all-seed modalities for every seed, the main arms of
    the other modalities and the ablations for the first seed (an ablation marked ``all_seeds``
    for every seed, after the first seed's ablations); teachers before their students.
    ``only``: arm names or job ids to keep (their teachers are added)."""
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise MmtrackError("no seed given")
    jobs: list[Job] = []
    for group in GROUP_ORDER:
        for seed_index, seed in enumerate(seeds):
            for arm in table.arms.values():
                for key in arm.modalities:
                    modality = table.modalities[key]
                    effective = arm.group if (arm.group != "main" or modality.all_seeds) else "modality"
                    if effective != group:
                        continue
                    if seed_index > 0 and effective != "main" and not arm.all_seeds:
                        continue
                    jobs.append(Job(arm, modality, seed))
    if only:
        wanted = set(only)
        unknown = wanted - {j.arm.name for j in jobs} - {j.id for j in jobs}
        if unknown:
            raise MmtrackError(f"--only: no arm or job {sorted(unknown)}")
        keep = [j for j in jobs if j.arm.name in wanted or j.id in wanted]
        needed = {j.id for j in keep}
        for job in keep:
            if job.arm.teacher:
                needed.add(f"{job.modality.key}-{job.arm.teacher}-s{job.seed}")
        jobs = [j for j in jobs if j.id in needed]
        present = {j.id for j in jobs}
        for job in list(jobs):
            tid = f"{job.modality.key}-{job.arm.teacher}-s{job.seed}" if job.arm.teacher else None
            if tid and tid not in present:  # the teacher of a first-seed-only modality etc.
                jobs.insert(0, Job(table.arms[job.arm.teacher], job.modality, job.seed))
                present.add(tid)
    # teachers first within the order (a student never precedes its teacher)
    ordered: list[Job] = []
    ids = {j.id: j for j in jobs}
    for job in jobs:
        if job.arm.teacher:
            tid = f"{job.modality.key}-{job.arm.teacher}-s{job.seed}"
            if tid in ids and ids[tid] not in ordered:
                ordered.append(ids[tid])
        if job not in ordered:
            ordered.append(job)
    return ordered


# --------------------------------------------------------------------------- recipes


def _set_roots(data: dict[str, Any], root: Path, reduced: bool) -> None:
    """Point every synthetic dataset entry at one shared generated copy under ``root``."""
    sections = [data.get("data", {}).get("train", []), data.get("data", {}).get("val", []),
                data.get("evaluate", {}).get("datasets", [])]
    for entries in sections:
        for entry in entries:
            if entry.get("name") != "synthetic":
                continue
            layout = entry.get("layout", "lasher")
            entry["root"] = str(root / f"synthetic-{layout}{'-reduced' if reduced else ''}")
            if reduced:
                entry.update(REDUCED_DATA)


def job_recipe(job: Job, out_dir: Path, reduced: bool = False, extra: Sequence[str] = ()) -> Recipe:
    """The full recipe of one job: base, ``extra`` overrides (every arm), arm overrides, seed,
    shared data roots, (reduced)."""
    base = job.modality.base
    data = parse_yaml(base.read_text(encoding="utf-8"), str(base)) or {}
    overrides = list(extra) + list(job.arm.overrides) + [f"seed={job.seed}"]
    if reduced:
        overrides += REDUCED_SET
    for text in overrides:
        key_path, value = parse_override(text)
        apply_override(data, key_path, value)
    if reduced:
        for stage in ("teacher", "student"):
            optim = data.setdefault(stage, {}).setdefault("optim", {})
            optim.update(REDUCED_OPTIM)
    data["name"] = job.id
    data.setdefault("train", {})["output_dir"] = str(out_dir / "runs")
    data["train"]["device"] = "cpu" if reduced else data["train"].get("device", "auto")
    _set_roots(data, out_dir / "data", reduced)
    return validate_recipe(data, f"{base} + arm {job.arm.name}")


def write_recipes(arms: str | os.PathLike[str], dest: str | os.PathLike[str], seeds: Sequence[int] = (0, 1),
                  out_dir: str | os.PathLike[str] = "runs/experiments",
                  overrides: Sequence[str] = ()) -> list[Path]:
    """Write the resolved recipe of every planned job to ``dest/<id>.yaml`` (nothing is run)."""
    table = load_arms(arms)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for job in plan_jobs(table, seeds):
        path = dest / f"{job.id}.yaml"
        path.write_text(dump_recipe(job_recipe(job, Path(out_dir), extra=overrides)), encoding="utf-8")
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- one job


def _atomic_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=False, default=_plain) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _stage_checkpoint(run_dir: Path, stage: str) -> Path:
    for name in ("best.pt", "last.pt"):
        path = run_dir / stage / name
        if path.is_file():
            return path
    raise MmtrackError(f"{run_dir / stage}: no checkpoint after training")


def _stage_finished(run_dir: Path, stage: str) -> bool:
    path = run_dir / stage / "last.pt"
    if not path.is_file():
        return False
    from mmtrack_kd.checkpoints import RunCheckpoint

    progress = RunCheckpoint.read(path).progress
    return progress is not None and progress.finished


def _samples(run_dir: Path, stage: str) -> int | None:
    from mmtrack_kd.checkpoints import RunCheckpoint

    path = run_dir / stage / "last.pt"
    if not path.is_file():
        return None
    progress = RunCheckpoint.read(path).progress
    return progress.samples if progress is not None else 0


def _parameters(checkpoint: Path) -> int | None:
    try:
        from mmtrack_kd.checkpoints import load_model
        from mmtrack_kd.models.profile import count_parameters

        model, _ = load_model(checkpoint)
        return int(count_parameters(model)[0])
    except Exception as error:  # noqa: BLE001 - a size is a nicety; the arm's scores still count
        log.warning("could not count the parameters of %s: %s", checkpoint, error)
        return None


def _result_boxes(folder: Path, protocol: str, sequence: str) -> np.ndarray:
    from mmtrack_kd.evaluation.results_io import otb_result_path, read_otb_result, read_vot_longterm_result
    from mmtrack_kd.evaluation.scoring import layout_for

    if layout_for(protocol) == "otb":
        return read_otb_result(otb_result_path(folder, sequence))
    return read_vot_longterm_result(folder, sequence).boxes


def stream_reliance(dataset: Any, folder: Path) -> dict[str, dict[str, float]] | None:
    """Per-frame check of which stream a tracker relies on (synthetic data only): precision
    (centre error <= 20 px) and success (IoU > 0.5) over the frames where only RGB shows the
    target (``rgb``: the auxiliary stream's spell), only the auxiliary stream does (``aux``: an
    RGB spell), or both. A two-stream model that learnt the easier stream and under-uses RGB
    scores low on ``rgb`` frames. Frame 0 (initialisation) is left out."""
    if not hasattr(dataset, "truth"):
        return None
    from mmtrack_kd.evaluation.runner import load_ground_truths

    protocol = str(dataset.protocol)
    hits: dict[str, list[tuple[bool, bool]]] = {"both": [], "rgb": [], "aux": []}
    for gt in load_ground_truths(dataset):
        dominant = dataset.truth(gt.name).get("dominant")
        if dominant is None:
            return None
        boxes = _result_boxes(folder, protocol, gt.name)
        n = min(len(boxes), len(gt.boxes), len(dominant))
        for k in range(1, n):
            kind = dominant[k]
            if kind not in hits:
                continue
            g, b = gt.boxes[k], boxes[k]
            if not np.all(np.isfinite(g)) or g[2] <= 0 or g[3] <= 0:
                continue
            if not np.all(np.isfinite(b)) or b[2] <= 0 or b[3] <= 0:
                hits[kind].append((False, False))
                continue
            centre = np.hypot(*(g[:2] + g[2:] / 2 - b[:2] - b[2:] / 2))
            x0, y0 = max(g[0], b[0]), max(g[1], b[1])
            x1, y1 = min(g[0] + g[2], b[0] + b[2]), min(g[1] + g[3], b[1] + b[3])
            inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
            iou = inter / (g[2] * g[3] + b[2] * b[3] - inter)
            hits[kind].append((centre <= PR_PIXELS, iou > 0.5))
    return {
        kind: {"frames": len(v), "PR": float(np.mean([h[0] for h in v])) if v else float("nan"),
               "SR": float(np.mean([h[1] for h in v])) if v else float("nan")}
        for kind, v in hits.items()
    }


def reliance_flag(rgb: float | None, aux: float | None, baseline_rgb: float | None) -> str:
    """The stream-reliance flag of a two-stream arm from its precision (points) on RGB-only and
    auxiliary-only frames and the RGB-only baseline's on RGB-only frames: ``under-uses RGB``
    more than :data:`RELIANCE_MARGIN` below the baseline there, else ``leans on the auxiliary
    stream`` more than twice that below its own auxiliary-only precision, else no flag."""
    if rgb is None:
        return ""
    if baseline_rgb is not None and rgb < baseline_rgb - RELIANCE_MARGIN:
        return "under-uses RGB (below the RGB-only baseline on RGB-only frames)"
    if aux is not None and rgb < aux - 2 * RELIANCE_MARGIN:
        return "leans on the auxiliary stream"
    return ""


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
    from mmtrack_kd.engine.run import train
    from mmtrack_kd.evaluation.runner import evaluate_checkpoint

    recipe = job_recipe(job, out_dir, reduced, extra)
    run_dir = out_dir / "runs" / job.id
    stage = job.arm.stage
    teacher: Path | None = None
    kept: Path | None = None
    retrained = False
    if job.arm.teacher:
        teacher_dir = out_dir / "runs" / f"{job.modality.key}-{job.arm.teacher}-s{job.seed}"
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
        retrained = retrained or _marked_retrained(teacher)
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
            "frames": int(sum(len(gt.boxes) for gt in _ground_truths(dataset))),
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
    import subprocess

    where = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def provenance() -> dict[str, Any]:
    """What a record needs to be checked later: the machine that trained and scored it (CPU
    model, CPU count, torch threads, platform), the commit and the torch version."""
    import torch

    return {
        "machine": {"cpu": _cpu_model(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                    "platform": platform.platform(), "python": platform.python_version()},
        "commit": _commit(),
        "torch": torch.__version__,
    }


def epoch_losses(metrics: Path) -> list[dict[str, Any]]:
    """Per-epoch losses from a stage's ``metrics.jsonl``: ``{"epoch", "train_loss", "val_loss"}``
    with ``train_loss`` the mean of the logged training totals of that epoch (an update logged
    twice, by a run and its resumption, counts once) and ``val_loss`` the epoch's validation loss
    (None where not finite). Empty when the file is missing."""
    from mmtrack_kd.engine.metrics_log import read_metrics

    if not metrics.is_file():
        return []
    train: dict[int, dict[int, float]] = {}
    val: dict[int, float | None] = {}
    for entry in read_metrics(metrics):
        if entry.get("event") == "train" and _finite(entry.get("total")) is not None:
            # a train line carries the epoch in progress (0-based); an epoch line the epochs done
            train.setdefault(int(entry["epoch"]) + 1, {})[int(entry["update"])] = float(entry["total"])
        elif entry.get("event") == "epoch":
            val[int(entry["epoch"])] = _finite(entry.get("val_loss"))
    return [{"epoch": epoch,
             "train_loss": statistics.fmean(train[epoch].values()) if train.get(epoch) else None,
             "val_loss": val.get(epoch)}
            for epoch in sorted(set(train) | set(val))]


def _evaluation_datasets(recipe: Recipe) -> list[tuple[str, Any]]:
    """``(name, plugin instance)`` of the recipe's ``evaluate.datasets``."""
    return [(choice.name, choice.plugin(choice.options)) for choice in recipe.evaluate.datasets]


RETRAINED_MARK = "retrained.json"


def keep_teacher(teacher: Path, kept: Path) -> None:
    """Copy a retrained teacher file and its mark (scores, hash) to ``kept`` (atomically)."""
    kept.parent.mkdir(parents=True, exist_ok=True)
    mark = teacher.parent / RETRAINED_MARK
    if mark.is_file():
        shutil.copyfile(mark, kept.parent / RETRAINED_MARK)
    temporary = kept.with_suffix(".tmp")
    shutil.copyfile(teacher, temporary)
    os.replace(temporary, kept)
    log.info("kept the retrained teacher file %s as %s", teacher, kept)


def _marked_retrained(teacher: Path) -> bool:
    return (teacher.parent / RETRAINED_MARK).is_file()


def teacher_provenance(teacher: Path, retrained: bool, recipe: Recipe, out_dir: Path, workers: int = 1,
                       device: str = "cpu") -> dict[str, Any]:
    """Which teacher file a student arm distilled from: ``teacher_sha256`` (its first 16 hex
    digits) and ``teacher_retrained``. A retrained teacher (its first checkpoint was lost with
    an earlier machine, see :func:`run_job`) is not the file whose record the report shows, so
    it is scored once on the student's test sets (``teacher_scores``) and marked, so that later
    students of the same teacher carry the same provenance."""
    from mmtrack_kd.evaluation.provenance import file_sha256

    out: dict[str, Any] = {"teacher_sha256": file_sha256(teacher)[:16], "teacher_retrained": retrained}
    if retrained:
        mark = teacher.parent / RETRAINED_MARK
        known = json.loads(mark.read_text(encoding="utf-8")) if mark.is_file() else {}
        if known.get("sha256") != out["teacher_sha256"]:
            from mmtrack_kd.evaluation.runner import evaluate_checkpoint

            datasets = _evaluation_datasets(recipe)
            name = f"{teacher.parent.parent.name}-retrained-{out['teacher_sha256'][:8]}"
            results = evaluate_checkpoint(teacher, datasets, out_dir / "eval", workers=workers,
                                          device=device, tracker_name=name, progress=False)
            known = {"sha256": out["teacher_sha256"],
                     "scores": {n: dict(r.scores) for n, r in results.items()}}
            _atomic_json(mark, known)
        out["teacher_scores"] = known["scores"]
    return out


def _ground_truths(dataset: Any) -> list[Any]:
    from mmtrack_kd.evaluation.runner import load_ground_truths

    return load_ground_truths(dataset)


# --------------------------------------------------------------------------- the report


def _headline(record: dict[str, Any]) -> dict[str, float]:
    """The record's scores in percent, keyed PR / SR (or Pr / Re / F for DepthTrack's protocol)."""
    evaluation = next(iter(record["evaluation"].values()))
    scores = evaluation["scores"]
    out = {}
    for ours, key in (("PR", "PR"), ("PR", "MPR"), ("SR", "SR"), ("SR", "MSR"), ("NPR", "NPR"),
                      ("Pr", "Pr"), ("Re", "Re"), ("F", "F")):
        if key in scores and _finite(scores[key]) is not None and ours not in out:
            out[ours] = 100.0 * float(scores[key])
    return out


def _stats(values: list[float]) -> str:
    """``mean`` for one value; ``mean (min-max, n=k)`` for several."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ({min(values):.1f}-{max(values):.1f}, n={len(values)})"


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(values) if values else None


def _by(records: list[dict[str, Any]], modality: str, arm: str) -> list[dict[str, Any]]:
    return [r for r in records if r["modality"] == modality and r["arm"] == arm]


def _paper_table(key: str, table: ArmsTable, records: list[dict[str, Any]]) -> list[str]:
    spec = PAPER_TABLES[key]
    lines = [f"### {spec['title']}", "",
             "| row | our arm | ours PR | ours SR | paper PR | paper SR | seeds |",
             "|---|---|---:|---:|---:|---:|---|"]
    for row, label, paper in spec["rows"]:
        arms = [a for a in table.arms.values() if a.paper.get(key) == row]
        arm = arms[0].name if arms else None
        rs = _by(records, "rgbt", arm) if arm else []
        pr = [_headline(r).get("PR") for r in rs]
        sr = [_headline(r).get("SR") for r in rs]
        lines.append(f"| {label} | {arm or '(none)'} | {_stats(pr)} | {_stats(sr)} | "
                     f"{paper['PR']:.1f} | {paper['SR']:.1f} | "
                     f"{', '.join(str(r['seed']) for r in rs) or 'not run'} |")
    lines.append("")
    return lines


def _score(record: dict[str, Any]) -> float | None:
    """The headline figure of a record: F for DepthTrack's protocol, PR otherwise."""
    head = _headline(record)
    return head.get("F", head.get("PR"))


def _retrained_teacher_score(record: dict[str, Any]) -> float | None:
    """The score of the retrained teacher file a student distilled from (F for DepthTrack's
    protocol, PR otherwise), from the record's ``teacher_scores``; None when its teacher is the
    one whose own record the report shows."""
    if not record.get("teacher_retrained"):
        return None
    scores = next(iter((record.get("teacher_scores") or {}).values()), {})
    value = _finite(scores.get("F", scores.get("PR")))
    return 100.0 * value if value is not None else None


# --------------------------------------------------------------------------- claims

#: What a paper's claim says of arm A against arm B: "beats" (A > B) or "matches" (A is about B).
VerdictKind = Literal["beats", "matches"]
#: Two-sided normal quantile of the claims' intervals (about 95%).
Z_95 = 1.96
#: Bootstrap resamples of the test sequences per seed, and the generator's seed (fixed, so the
#: report regenerates to the same bytes).
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Claim:
    """One claim read from the records: ``arm`` against ``other`` on ``modality``.

    ``metric``: a headline key (``PR``, ``SR``, ``F``...); None reads F for DepthTrack's
    protocol and PR otherwise. ``kind``: see :data:`VerdictKind`."""

    text: str
    arm: str
    other: str
    kind: VerdictKind = "beats"
    modality: str = "rgbt"
    metric: str | None = None


#: The claims the report reads, in its order.
CLAIMS: tuple[Claim, ...] = (
    Claim("(1) teacher beats the RGB-only baseline", "teacher", "baseline"),
    Claim("(1) spatial attention helps the teacher", "teacher", "teacher-no-spatial"),
    Claim("(1) token attention helps the teacher", "teacher", "teacher-no-token"),
    Claim("(1) history helps the teacher", "teacher", "teacher-no-history"),
    Claim("(2) student nearly matches the teacher", "student", "teacher", "matches"),
    Claim("(2) distilled student beats FOST", "student", "fost"),
    Claim("(2) feature KD gives more than response KD", "student-feature", "student-response"),
    # Our student starts from the teacher's weights and FOST from scratch, so "student beats
    # FOST" mixes distillation with initialisation; FOST from the teacher's weights splits them.
    Claim("(control) the teacher's weights alone help FOST (FOST from the teacher's weights vs "
          "from scratch)", "fost-teacher-init", "fost"),
    Claim("(control) distillation adds to the teacher's weights (student vs FOST from the "
          "teacher's weights)", "student", "fost-teacher-init"),
    # The student continues from a teacher that has not levelled off, so it trains twice as
    # long; a teacher trained for both stages' samples is the same-budget comparison.
    Claim("(control) student nearly matches a teacher trained as long as both stages together",
          "student", "teacher-long", "matches"),
    Claim("(3) even layers beat first-half", "student", "student-first-half"),
    Claim("(3) even layers beat second-half", "student", "student-second-half"),
    Claim("(3) even layers beat all-layers", "student", "student-all-layers"),
    Claim("(beyond the paper) candidate elimination keeps the student's accuracy",
          "student-ce", "student", "matches"),
    Claim("(beyond the paper) candidate elimination at the last block keeps the student's accuracy",
          "student-ce-late", "student", "matches"),
    Claim("(shapes) distillation helps the half-depth student (against its FOST control)",
          "student-half", "fost-half"),
    Claim("(shapes) distillation helps the half-depth fused student (against its FOST control)",
          "student-half-fused", "fost-half-fused"),
    Claim("(shapes) the half-depth student nearly matches the full-depth student", "student-half",
          "student", "matches"),
    Claim("(shapes) the half-depth fused student nearly matches the full-depth student",
          "student-half-fused", "student", "matches"),
    Claim("(4) rgbd: distilled student beats FOST", "student", "fost", modality="rgbd"),
    Claim("(4) rgbd: student nearly matches the teacher", "student", "teacher", "matches", "rgbd"),
    Claim("(4) rgbe: distilled student beats FOST", "student", "fost", modality="rgbe"),
    Claim("(4) rgbe: student nearly matches the teacher", "student", "teacher", "matches", "rgbe"),
)


def _metric_score(record: dict[str, Any], metric: str | None) -> float | None:
    return _score(record) if metric is None else _headline(record).get(metric)


def _metric_key(record: dict[str, Any], metric: str | None) -> str:
    """The protocol key behind ``metric`` in the record's scores (``PR`` may be ``MPR``)."""
    scores = next(iter(record["evaluation"].values()))["scores"]
    wanted = metric or ("F" if "F" in scores else "PR")
    aliases = {"PR": ("PR", "MPR"), "SR": ("SR", "MSR")}.get(wanted, (wanted,))
    return next((k for k in aliases if k in scores), wanted)


def _sequence_scores(record: dict[str, Any], metric: str | None) -> dict[str, float]:
    """Per-sequence scores in percent (records written before they were kept have none)."""
    evaluation = next(iter(record["evaluation"].values()))
    key = _metric_key(record, metric)
    out = {}
    for name, scores in (evaluation.get("sequence_scores") or {}).items():
        value = _finite(scores.get(key))
        if value is not None:
            out[name] = 100.0 * value
    return out


def _teacher_job(record: dict[str, Any]) -> str | None:
    """The id of the teacher job whose file a student distilled from: the run folder of
    ``runs/<id>/teacher/<file>.pt``, or the kept file's folder ``teachers/<id>/best.pt``."""
    if not record.get("teacher"):
        return None
    path = Path(str(record["teacher"]))
    return path.parent.parent.name if path.parent.name == "teacher" else path.parent.name


def _runs(records: list[dict[str, Any]], modality: str, arm: str, metric: str | None) -> list[float]:
    """Every score of ``arm`` from a separate training run: one per record, plus, for a teacher
    arm, each retrained teacher file the students of that modality scored (a second training of
    the same recipe and seed), each file counted once."""
    values = [v for v in (_metric_score(r, metric) for r in _by(records, modality, arm)) if v is not None]
    if any(r["arm"] == arm and r["stage"] == "teacher" for r in _by(records, modality, arm)):
        files = {}
        for r in records:
            if r["modality"] == modality and r.get("teacher_retrained") and r.get("teacher_sha256"):
                if _teacher_job(r) == f"{modality}-{arm}-s{r['seed']}":
                    files[r["teacher_sha256"]] = _retrained_teacher_score(r)
        values += [v for v in files.values() if v is not None]
    return values


def paired_bootstrap_var(mine: dict[str, float], theirs: dict[str, float],
                         samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> float | None:
    """Variance of the mean per-sequence difference ``mine - theirs`` over resamples (with
    replacement) of the sequences both arms were scored on; None for fewer than two. Paired: a
    resample draws a sequence for both arms at once, so what the two share cancels."""
    names = sorted(set(mine) & set(theirs))
    if len(names) < 2:
        return None
    diffs = np.array([mine[n] - theirs[n] for n in names])
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(samples, len(diffs)))].mean(axis=1)
    return float(means.var(ddof=1))


@dataclass(frozen=True)
class Reading:
    """A claim read from the records: ``diff`` (mean paired difference, points) on ``seeds``,
    its interval ``low``-``high`` and where the noise came from (``noise``), and ``verdict``
    (one of :data:`VERDICTS`)."""

    claim: Claim
    seeds: tuple[int, ...] = ()
    diff: float | None = None
    low: float | None = None
    high: float | None = None
    noise: str = ""
    verdict: str = "not run"
    notes: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        """The report's line for this claim."""
        if self.diff is None:
            return f"- {self.claim.text}: **not run**"
        seeds = f"{len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''} ({', '.join(map(str, self.seeds))})"
        interval = "no interval" if self.low is None else f"interval {self.low:+.1f} to {self.high:+.1f}"
        text = (f"- {self.claim.text}: {self.diff:+.1f} points, {interval}, {seeds} -> "
                f"{VERDICTS[self.verdict]} ({self.noise})")
        return text + "".join(f" - *{note}*" for note in self.notes)


#: Verdict key -> the words the report prints. "holds"/"reversed"/"below"/"above" need at
#: least two seeds and an interval that excludes zero; with one seed the same finding is only
#: "suggestive"; an interval across zero resolves nothing ("beats") or no gap ("matches").
VERDICTS: dict[str, str] = {
    "not run": "**not run**",
    "holds": "**holds**",
    "reversed": "**does not hold (reversed)**",
    "suggestive": "suggestive (one seed; the interval excludes zero)",
    "suggestive reversed": "suggestive, reversed (one seed; the interval excludes zero)",
    "not resolved": "not resolved (the interval includes zero)",
    "match": "**holds** (no gap resolved)",
    "match suggestive": "suggestive (one seed; no gap resolved)",
    "below": "**does not hold** (below it)",
    "below suggestive": "suggestive, below it (one seed)",
    "above": "above it, not a match (the gap is resolved)",
    "above suggestive": "suggestive, above it (one seed)",
    "unmeasured": "suggestive at most (no noise measured for these arms)",
}


def verdict_of(kind: VerdictKind, low: float | None, high: float | None, seeds: int) -> str:
    """The verdict key of an interval ``low``-``high`` of a difference over ``seeds`` seeds."""
    if low is None or high is None:
        return "unmeasured"
    one = seeds < 2
    if kind == "beats":
        if low > 0:
            return "suggestive" if one else "holds"
        if high < 0:
            return "suggestive reversed" if one else "reversed"
        return "not resolved"
    if high < 0:
        return "below suggestive" if one else "below"
    if low > 0:
        return "above suggestive" if one else "above"
    return "match suggestive" if one else "match"


def _seed_variance(records: list[dict[str, Any]], claim: Claim,
                   diffs: Sequence[float]) -> tuple[float | None, list[str]]:
    """Training-noise variance of one seed's difference ``arm - other``, and how it was got.

    Each arm's variance over its separate runs (:func:`_runs`); an arm with one run takes the
    larger of the other arm's and the variance pooled over every arm (any modality) with two or
    more runs. Where the paired differences ``diffs`` of two or more seeds vary more than that,
    their own variance is used: the noise of the difference is measured directly there. None
    when no arm anywhere has two runs."""
    groups = dict.fromkeys((r["modality"], r["arm"]) for r in records)
    pooled_runs = [runs for m, a in groups if len(runs := _runs(records, m, a, None)) > 1]
    pooled = None
    if pooled_runs:
        dof = sum(len(runs) - 1 for runs in pooled_runs)
        pooled = sum(statistics.variance(runs) * (len(runs) - 1) for runs in pooled_runs) / dof
    variances, parts = [], []
    for arm in (claim.arm, claim.other):
        runs = _runs(records, claim.modality, arm, claim.metric)
        if len(runs) > 1:
            variances.append(statistics.variance(runs))
            parts.append(f"{arm} sd {math.sqrt(variances[-1]):.1f} over {len(runs)} runs")
    if len(variances) == 1:
        variances.append(max(variances[0], pooled or 0.0))
        parts.append(f"the one-run arm sd {math.sqrt(variances[-1]):.1f} (the other's, or pooled if larger)")
    elif not variances:
        if pooled is None:
            return None, ["no arm has two runs: training noise not measured"]
        variances = [pooled, pooled]
        parts.append(f"both arms one run: sd {math.sqrt(pooled):.1f} pooled over {len(pooled_runs)} arms")
    var = sum(variances)
    if len(diffs) > 1 and statistics.variance(diffs) > var:
        var = statistics.variance(diffs)
        parts.append(f"the seeds' differences vary more: sd {math.sqrt(var):.1f}")
    return var, ["training noise: " + ", ".join(parts)]


def read_claim(records: list[dict[str, Any]], claim: Claim) -> Reading:
    """Read ``claim`` from the records, from measured noise.

    The difference is the mean over the seeds both arms ran of ``arm - other``. Its variance
    has two parts: training noise (:func:`_seed_variance`: the arms' spread over their separate
    training runs, or the seeds' own differences where those vary more) and test-set noise (a
    paired bootstrap over the test sequences of each seed, :func:`paired_bootstrap_var`; records
    without per-sequence scores have none, and the line says so). The interval is the
    difference +- :data:`Z_95` standard errors, and :func:`verdict_of` reads it. A student read
    against ``teacher`` is read against the teacher file it distilled from (see
    :func:`teacher_provenance`)."""
    modality, metric = claim.modality, claim.metric
    mine = {r["seed"]: r for r in _by(records, modality, claim.arm)}
    theirs = {r["seed"]: r for r in _by(records, modality, claim.other)}
    values_a = {s: _metric_score(r, metric) for s, r in mine.items()}
    values_b = {s: _metric_score(r, metric) for s, r in theirs.items()}
    retrained = []
    if claim.other == "teacher" and metric is None:
        for seed, r in mine.items():
            score = _retrained_teacher_score(r)
            if score is not None:
                values_b[seed] = score
                retrained.append(seed)
    seeds = tuple(sorted(s for s in set(values_a) & set(values_b)
                         if values_a[s] is not None and values_b[s] is not None))
    if not seeds:
        return Reading(claim)
    diff = statistics.fmean(values_a[s] - values_b[s] for s in seeds)

    seed_var, parts = _seed_variance(records, claim, [values_a[s] - values_b[s] for s in seeds])
    boot = []
    for seed in seeds:
        if seed in retrained:
            continue  # the retrained teacher file was scored overall only
        var = paired_bootstrap_var(_sequence_scores(mine[seed], metric), _sequence_scores(theirs[seed], metric))
        if var is not None:
            boot.append(var)
    if boot:
        parts.append(f"sequence bootstrap on {len(boot)} of {len(seeds)} seeds")
    else:
        parts.append("no sequence bootstrap (per-sequence scores not recorded)")
    low = high = None
    if seed_var is not None:
        n = len(seeds)
        half = Z_95 * math.sqrt(seed_var / n + (statistics.fmean(boot) / n if boot else 0.0))
        low, high = diff - half, diff + half
    notes = []
    if retrained := [s for s in seeds if s in retrained]:
        notes.append(f"seed{'s' if len(retrained) > 1 else ''} {', '.join(map(str, retrained))} read "
                     "against the retrained teacher file the student distilled from")
    files = {s: _teacher_file(r) for s, r in mine.items()}
    other_files = {s: _teacher_file(r) for s, r in theirs.items()}
    if any(files.get(s) and other_files.get(s) and files[s] != other_files[s] for s in seeds):
        notes.append("the two arms distilled from different teacher checkpoints (see the arms table)")
    fast = set(fast_evaluations(records))
    if suspect := [r["id"] for s in seeds for r in (mine[s], theirs[s]) if r["id"] in fast]:
        notes.append(f"{', '.join(suspect)}: evaluation far faster than its stage's, boxes possibly reused")
    if claim.arm == "teacher" and metric is None:
        # the teacher record's file may be lost; a retrained file of the same seed is another run
        for seed in seeds:
            other = [_retrained_teacher_score(r) for r in records
                     if r["modality"] == modality and r["seed"] == seed and r.get("teacher_retrained")
                     and _teacher_job(r) == f"{modality}-teacher-s{seed}"]
            if other and other[0] is not None and values_b.get(seed) is not None:
                notes.append(f"against the retrained teacher file of seed {seed} ({other[0]:.1f}) the "
                             f"difference is {other[0] - values_b[seed]:+.1f}")
    return Reading(claim, seeds, diff, low, high, "; ".join(parts),
                   verdict_of(claim.kind, low, high, len(seeds)), tuple(notes))


def _teacher_file(record: dict[str, Any]) -> str | None:
    """The teacher file a student distilled from: its hash, ``unrecorded`` for records written
    before hashes were kept, None for arms without a teacher."""
    if not record.get("teacher"):
        return None
    return record.get("teacher_sha256") or "unrecorded"


def _teacher_cell(record: dict[str, Any]) -> str:
    file = _teacher_file(record)
    if file is None:
        return "-"
    if file == "unrecorded":
        return "first teacher run (file not hashed)"
    cell = f"`{file[:8]}`"
    if record.get("teacher_retrained"):
        scores = next(iter((record.get("teacher_scores") or {}).values()), {})
        score = _retrained_teacher_score(record)
        cell += " retrained" + (f" (its {'F' if 'F' in scores else 'PR'} {score:.1f})" if score is not None else "")
    return cell


def fast_evaluations(records: list[dict[str, Any]], fraction: float = 0.2) -> list[str]:
    """Ids of records whose evaluation took under ``fraction`` of the median of their stage's
    (tracking the same test sequences costs about the same for every arm of a stage, so a far
    shorter one points at boxes read from an earlier result folder rather than tracked)."""
    out = []
    for stage in dict.fromkeys(r["stage"] for r in records):
        times = [r["eval_s"] for r in records if r["stage"] == stage and _finite(r.get("eval_s"))]
        if len(times) < 3:
            continue
        median = statistics.median(times)
        out += [r["id"] for r in records if r["stage"] == stage and _finite(r.get("eval_s")) is not None
                and r["eval_s"] < fraction * median]
    return out


def _provenance_row(record: dict[str, Any]) -> str:
    """One row of the report's provenance table (see :func:`provenance`, :func:`epoch_losses`)."""
    missing = "not recorded"
    machine = record.get("machine")
    machine_text = (f"{machine.get('cpu')}, {machine.get('threads')} threads of {machine.get('cpus')} CPUs"
                    if machine else missing)
    commit = record.get("commit")
    commit_text = f"`{commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}`" if commit else (
        "no git checkout" if "commit" in record else missing)
    epochs = record.get("epochs") or []

    def span(key: str) -> str:
        values = [(e["epoch"], e[key]) for e in epochs if e.get(key) is not None]
        if not values:
            return missing
        text = f"{values[0][1]:.3f} -> {values[-1][1]:.3f}"
        if key == "val_loss":
            best = min(values, key=lambda item: item[1])
            text += f" (epoch {best[0]}: {best[1]:.3f})"
        return text

    train = f"{len(epochs)}: {span('train_loss')}" if epochs else missing
    return (f"| {record['id']} | {machine_text} | {commit_text} | {record.get('torch') or missing} | "
            f"{train} | {span('val_loss') if epochs else missing} |")


#: The hand-written reading of a report, beside it; the report links it when it is there.
READING_NAME = "results-reading.md"


def write_report(table: ArmsTable, records: list[dict[str, Any]], path: Path, command: str,
                 seeds: Sequence[int], reduced: bool, missing: list[str],
                 superseded: Sequence[dict[str, Any]] = ()) -> Path:
    """Write the markdown report of ``records`` to ``path``; ``superseded``: the entries of
    :func:`load_superseded`, listed with their scores and why they were run again."""
    from mmtrack_kd.evaluation.published import published_scores

    lines = ["# Small-scale check of the paper's claims (synthetic benchmark)", ""]
    if reduced:
        lines += ["> **REDUCED setting** (CI smoke run: a handful of steps on tiny data). "
                  "These numbers mean nothing.", ""]
    lines += [
        "Produced by:", "", "```", command, "```", "",
        "Each arm's record in `results.json` was written by the run that trained and scored it "
        "(possibly in an earlier invocation or session); the command, run again, trains only the "
        "arms that have not finished.", "",
        f"Seeds: {', '.join(str(s) for s in seeds)} (main RGB-T arms run every seed; the other "
        "modalities and the ablations the first, unless an arm is marked to run every seed). "
        "Spread: mean (min-max, n) over seeds. "
        "Claims are read against measured noise (see the reading of the claims). "
        "Our numbers come from synthetic data in the real benchmarks' layouts and protocols: "
        "they are NOT comparable in level with the paper's, only the direction and size of the "
        "differences between arms are. Table 4's paper numbers are on RGBT234 (MPR / MSR); ours "
        "on the synthetic RGB-T (LasHeR protocol) test set. Every arm is scored with its "
        "`best.pt`, picked among its epochs by the validation loss on pairs drawn from the "
        "test sequences (the synthetic benchmark has no separate validation split): a mild "
        "selection on test data, the same for every arm.", "",
    ]
    reading = path.with_name(READING_NAME)
    if reading.is_file():
        lines += [f"What these numbers say, and what limits them: `{reading.name}` beside this file "
                  "(written by hand, against the records it names; this file is regenerated).", ""]
    extras = sorted({o for r in records for o in r.get("extra_overrides", [])})
    if extras:
        lines += [f"Overrides applied to every arm: {', '.join(f'`{o}`' for o in extras)}.", ""]
    if missing:
        lines += [f"Not run yet: {', '.join(missing)}.", ""]

    retrained = sorted({r["id"] for r in records if r.get("teacher_retrained")})
    if retrained:
        lines += [f"Retrained teachers: {', '.join(retrained)} started from or distilled from a teacher trained again "
                  "(same recipe and seed) because the first teacher's checkpoint was lost with an "
                  "earlier machine. Training is not bit-reproducible across machines, so that is a "
                  "different teacher: the arms table gives its file and its own score, and a claim "
                  "whose two arms used different teacher files says so.", ""]
    if superseded:
        lines += ["Run again (`--rerun`); the earlier records are kept in `results.json` under "
                  "`superseded` and not used in any table:", ""]
        for entry in superseded:
            old = entry["record"]
            head = _headline(old)
            scores = " / ".join(f"{k} {v:.1f}" for k, v in head.items()) or "no score"
            lines.append(f"- {old['id']} (set aside {entry['at']}): {scores}; teacher file "
                         f"{_teacher_file(old) or '-'}. Why: {entry['reason']}")
        lines.append("")

    # ---- claims
    t3, t4, t5 = (_paper_table(key, table, records) for key in ("table3", "table4", "table5"))
    lines += ["## Reading of the claims", "",
              "Each claim compares two arms on the seeds both have run (paired), so a one-seed "
              "ablation is read against the same seed of the full arm. Its interval (about 95%, "
              f"the difference +- {Z_95} standard errors) comes from measured noise: the spread of "
              "each arm over its separate training runs (seeds, and a teacher's retrained files), "
              "and a paired bootstrap over the test sequences where the records keep per-sequence "
              "scores. A claim holds (or is reversed) only when the interval excludes zero on two "
              "or more seeds; on one seed the same finding is suggestive at most. A 'nearly "
              "matches' claim holds when no gap is resolved; a gap above it is not a match either.", ""]
    lines += [read_claim(records, claim).line for claim in CLAIMS]
    spreads = []
    for arm in ("baseline", "teacher", "fost", "student"):
        values = _runs(records, "rgbt", arm, None)
        if len(values) > 1:
            spreads.append(f"{arm} {max(values) - min(values):.1f} (sd {statistics.stdev(values):.1f}, "
                           f"{len(values)} runs)")
    if spreads:
        lines += ["", "Spread of the main RGB-T arms over their training runs (max - min PR, same data "
                  f"and recipe; a teacher's retrained files count as runs): {', '.join(spreads)} points."]
    lines += ["", "(DepthTrack-protocol arms are read on F; the others on PR.)", ""]
    lines += ["## Tables shaped like the paper's", ""] + t3 + t4 + t5

    # ---- Table 1 rows
    lines += ["### Table 1 - teacher and student rows (plus FOST), per modality", "",
              "| modality | arm | ours | paper (teacher / student) | seeds |", "|---|---|---|---|---|"]
    for key, modality in table.modalities.items():
        try:
            paper = published_scores(modality.benchmark)
        except KeyError:
            paper = {}
        for arm, row in (("teacher", "Ours-Teacher"), ("student", "Ours-Student"), ("fost", None)):
            rs = _by(records, key, arm)
            heads = [_headline(r) for r in rs]
            names = [k for k in ("PR", "SR", "Pr", "Re", "F") if heads and k in heads[0]]
            ours = ", ".join(f"{k} {_stats([h.get(k) for h in heads])}" for k in names) or "not run"
            pub = paper.get(row, {}) if row else {}
            pub_text = ", ".join(f"{k} {100 * v:.1f}" for k, v in pub.items()) if pub else (
                "-" if row is None else "no numbers printed")
            lines.append(f"| {key} ({modality.benchmark}) | {arm} | {ours} | {pub_text} | "
                         f"{', '.join(str(r['seed']) for r in rs) or '-'} |")
    lines.append("")

    # ---- modality-switch attributes
    lines += ["## Modality-switch attributes (PR / SR, or F, on the sequences with the attribute)", ""]
    for key, modality in table.modalities.items():
        rs_mod = [r for r in records if r["modality"] == key]
        if not rs_mod:
            continue
        attrs = list(modality.switch_attributes)
        lines += [f"### {key}", "", "| arm | " + " | ".join(attrs) + " |", "|---|" + "---:|" * len(attrs)]
        for arm in dict.fromkeys(r["arm"] for r in rs_mod):
            rs = _by(records, key, arm)
            cells = []
            for attr in attrs:
                vals = {}
                for r in rs:
                    per = next(iter(r["evaluation"].values()))["per_attribute"].get(attr)
                    if per:
                        for k, v in per["scores"].items():
                            if _finite(v) is not None:
                                vals.setdefault(k, []).append(100 * float(v))
                main = [k for k in ("PR", "SR", "F") if k in vals] or [k for k in ("MPR", "MSR") if k in vals]
                cells.append(" / ".join(f"{statistics.fmean(vals[k]):.1f}" for k in main) if main else "-")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines.append("")

    # ---- stream reliance
    lines += ["## Which stream does each arm rely on? (per-frame, synthetic truth)", "",
              f"Precision (centre error <= {PR_PIXELS:.0f} px) over the frames where only RGB shows the "
              "target (the auxiliary stream's spell), only the auxiliary stream shows it (an RGB "
              "spell), or both. A two-stream model that learnt the easier stream first and "
              "under-uses RGB is low on *RGB-only* frames; the RGB-only baseline shows what RGB "
              "alone achieves there. Flags (descriptions, not verdicts): *under-uses RGB* more than "
              f"{RELIANCE_MARGIN:.0f} points below the baseline on RGB-only frames, *leans on the auxiliary "
              f"stream* more than {2 * RELIANCE_MARGIN:.0f} points below its own aux-only precision.", "",
              "| modality | arm | RGB-only frames | aux-only frames | both | flag |", "|---|---|---:|---:|---:|---|"]
    baseline_rgb = {}
    for r in records:
        if r["arm"] == "baseline":
            sr = next(iter(r["evaluation"].values())).get("stream_reliance") or {}
            baseline_rgb.setdefault(r["modality"], []).append(100 * sr.get("rgb", {}).get("PR", float("nan")))
    for key in table.modalities:
        for arm in dict.fromkeys(r["arm"] for r in records if r["modality"] == key):
            rs = _by(records, key, arm)
            cols = {}
            frames = {}
            for kind in ("rgb", "aux", "both"):
                vals = []
                for r in rs:
                    sr = next(iter(r["evaluation"].values())).get("stream_reliance") or {}
                    if kind in sr and _finite(sr[kind]["PR"]) is not None:
                        vals.append(100 * sr[kind]["PR"])
                        frames[kind] = sr[kind]["frames"]
                cols[kind] = vals
            flag = "" if arm == "baseline" else reliance_flag(
                _mean(cols["rgb"]), _mean(cols["aux"]), _mean(baseline_rgb.get(key, [])))
            lines.append(f"| {key} | {arm} | {_stats(cols['rgb'])} [{frames.get('rgb', 0)} fr] | "
                         f"{_stats(cols['aux'])} [{frames.get('aux', 0)} fr] | "
                         f"{_stats(cols['both'])} | {flag} |")
    lines.append("")

    # ---- per arm
    lines += ["## Arms: size, training samples, wall time", "",
              "| id | description | stage | parameters | training samples | train min | eval min | test seqs / frames | teacher file |",
              "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in records:
        ev = next(iter(r["evaluation"].values()))
        params = f"{r['parameters'] / 1e6:.2f} M" if r.get("parameters") else "-"
        lines.append(f"| {r['id']} | {r['description']} | {r['stage']} | {params} | "
                     f"{r.get('samples') or '-'} | {r['train_s'] / 60:.1f} | {r['eval_s'] / 60:.1f} | "
                     f"{ev['sequences']} / {ev['frames']} | {_teacher_cell(r)} |")
    if fast := fast_evaluations(records):
        lines += ["", f"Evaluations far faster than the other arms of their stage (under a fifth of the "
                  f"median), whose boxes may have been reused from another model's result folder: "
                  f"{', '.join(fast)}. Their scores are not to be trusted until they are run again."]
    lines += ["", "Arm overrides (on `recipes/experiments/base-<modality>.yaml`):", ""]
    for arm in table.arms.values():
        lines.append(f"- `{arm.name}` ({arm.stage}; {', '.join(arm.modalities)}; {arm.group}"
                     f"{'; teacher: ' + arm.teacher if arm.teacher else ''}): "
                     f"{', '.join(f'`{o}`' for o in arm.overrides) or 'base recipe'}")
    lines += ["", "## Provenance of each record", "",
              "The machine that trained and scored each arm, the commit it ran and the losses per "
              "epoch, as its record holds them (records written before these were kept: *not "
              "recorded*). This file can be regenerated anywhere; the machine that regenerates it "
              "is not named.", "",
              "| id | machine (CPU, threads) | commit | torch | epochs: train loss first -> last | val loss first -> last (best) |",
              "|---|---|---|---|---|---|"]
    lines += [_provenance_row(r) for r in records]
    lines += ["", f"Raw per-arm results: `{path.with_name('results.json').name}` beside this file.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


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
        program = "python -m mmtrack_kd.experiments" if program in ("experiments.py", "__main__.py") else program
        command = " ".join([program, shlex.join(sys.argv[1:])]).strip()
    report = Path(report) if report is not None else out_dir / "results.md"
    restore_records(report.with_name("results.json"), out_dir, reduced)
    if not dry_run:
        for job_id in rerun:
            supersede(job_id, out_dir, str(reason))
    for index, job in enumerate(jobs, 1):
        if dry_run:
            break
        log.info("[%d/%d] %s", index, len(jobs), job.id)
        teacher_job = (Job(table.arms[job.arm.teacher], job.modality, job.seed)
                       if job.arm.teacher else None)
        run_job(job, out_dir, reduced=reduced, workers=workers, device=device, extra=overrides,
                teacher_job=teacher_job, teacher_store=report.with_name(TEACHER_STORE))
    # every finished job of the full plan goes into the report (several sessions add up)
    full_plan = plan_jobs(table, seeds)
    records, missing = [], []
    for job in full_plan:
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


SUPERSEDED_DIR = "superseded"
#: Kept retrained teacher files, beside ``results.json`` (see :func:`run_job`).
TEACHER_STORE = "teachers"


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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmtrack_kd.experiments`` (until the CLI sub-command is wired)."""
    import argparse

    parser = argparse.ArgumentParser(prog="mmtrack-kd experiments", description=__doc__.split("\n")[0])
    parser.add_argument("arms", nargs="?", default=str(DEFAULT_ARMS),
                        help="the arms table, or the folder holding arms.yaml (default: %(default)s)")
    parser.add_argument("--out", default="runs/experiments",
                        help="run folders, records, tracked boxes and generated data (default: %(default)s)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated")
    parser.add_argument("--only", action="append", help="arm name or job id (repeatable)")
    parser.add_argument("--reduced", action="store_true",
                        help="CI smoke setting: tiny model and data, a handful of steps per arm")
    parser.add_argument("--workers", type=int, default=1, help="tracker processes during evaluation")
    parser.add_argument("--report", default=None,
                        help="the markdown report (default: <out>/results.md); results.json goes beside it")
    parser.add_argument("--dry-run", action="store_true",
                        help="train nothing: write the report of the arms that have finished")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override every arm's recipe (repeatable)")
    parser.add_argument("--rerun", action="append", default=[], metavar="JOB_ID",
                        help="run a finished job again; its old record, run folder and boxes are "
                             "set aside under <out>/superseded/ (repeatable; needs --reason)")
    parser.add_argument("--reason", default=None, help="why the --rerun jobs are run again")
    parser.add_argument("--write-recipes", default=None, metavar="DIR",
                        help="write each job's full recipe into DIR and stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.write_recipes:
        for path in write_recipes(args.arms, args.write_recipes, seeds, args.out, args.set):
            print(path)
        return 0
    path = run_experiments(args.arms, args.out, seeds, args.only, args.reduced, args.workers,
                           args.report, dry_run=args.dry_run, overrides=args.set,
                           rerun=args.rerun, reason=args.reason)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
