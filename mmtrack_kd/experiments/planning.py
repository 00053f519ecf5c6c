"""Which jobs run, in what order, and the full recipe of each.

A job is one arm on one modality with one seed (:class:`Job`). :func:`plan_jobs` orders them
(main arms on every seed first, teachers before their students); :func:`job_recipe` resolves a
job's recipe from its modality's base recipe and the arm's overrides; :func:`write_recipes`
writes every planned recipe without running anything.

``reduced=True`` overrides every job to a handful of steps on a tiny model and tiny data, so CI can
run the whole path in a minute or two (its numbers mean nothing).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.experiments.arms import GROUP_ORDER, Arm, ArmsTable, Modality, load_arms
from mmtrack_kd.plugins import default_registry
from mmtrack_kd.recipe import Recipe, dump_recipe, validate_recipe
from mmtrack_kd.recipe_yaml import apply_override, parse_override, parse_yaml

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


#: The dataset plugin whose entries share one generated copy per layout. The experiments run only
#: on the synthetic benchmark (generated data, so every job can read one copy), so they name it,
#: as their tables name the paper's benchmarks; its options come from the plugin.
SYNTHETIC = "synthetic"


def _default_layout() -> str:
    """The layout a synthetic dataset entry without one has: its plugin's ``Options`` default."""
    return str(default_registry().dataset(SYNTHETIC).Options.model_fields["layout"].default)


def job_id(modality: str, arm: str, seed: int) -> str:
    """The id of a job, which names its run folder, result folder and record:
    ``<modality>-<arm>-s<seed>``."""
    return f"{modality}-{arm}-s{seed}"


@dataclass(frozen=True)
class Job:
    """One arm on one modality with one seed."""

    arm: Arm
    modality: Modality
    seed: int

    @property
    def id(self) -> str:
        return job_id(self.modality.key, self.arm.name, self.seed)

    @property
    def teacher_id(self) -> str | None:
        """The id of the job whose teacher this job distils from; None for an arm without one."""
        return job_id(self.modality.key, self.arm.teacher, self.seed) if self.arm.teacher else None


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
        needed = {j.id for j in keep} | {j.teacher_id for j in keep if j.teacher_id}
        jobs = [j for j in jobs if j.id in needed]
        present = {j.id for j in jobs}
        for job in list(jobs):
            tid = job.teacher_id
            if tid and tid not in present:  # the teacher of a first-seed-only modality etc.
                jobs.insert(0, Job(table.arms[job.arm.teacher], job.modality, job.seed))
                present.add(tid)
    # teachers first within the order (a student never precedes its teacher)
    ordered: list[Job] = []
    ids = {j.id: j for j in jobs}
    for job in jobs:
        tid = job.teacher_id
        if tid and tid in ids and ids[tid] not in ordered:
            ordered.append(ids[tid])
        if job not in ordered:
            ordered.append(job)
    return ordered


def _set_roots(data: dict[str, Any], root: Path, reduced: bool) -> None:
    """Point every synthetic dataset entry at one shared generated copy per layout under ``root``
    (an entry without a layout has the plugin's default one)."""
    sections = [data.get("data", {}).get("train", []), data.get("data", {}).get("val", []),
                data.get("evaluate", {}).get("datasets", [])]
    for entries in sections:
        for entry in entries:
            if entry.get("name") != SYNTHETIC:
                continue
            layout = entry.get("layout") or _default_layout()
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
