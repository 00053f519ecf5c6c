"""Builders for the experiment tests: a small arms table written by the test, and records shaped
like the ones ``run_job`` stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BASE_RGBT = """\
modality:
  name: thermal
data:
  train:
    - &synthetic {name: synthetic, layout: lasher, root: data/synthetic-lasher, split: train, n_train: 4, n_test: 2, frames: 24, seed: 0}
  val:
    - {<<: *synthetic, split: test}
  workers: 0
  val_samples: 4
model:
  backbone: {depth: 2, embed_dim: 32, num_heads: 2, patch_size: 16, drop_path: 0.0}
  template_size: 32
  search_size: 64
  head_channels: 16
teacher:
  optim: {epochs: 2, batch_size: 4, samples_per_epoch: 16}
student:
  init: teacher
  optim: {epochs: 2, batch_size: 4, samples_per_epoch: 16}
distill:
  feature: {weight: 0.035, layers: even}
  response: {weight: 0.7, temperature: 2}
  teacher_checkpoint: best
train:
  device: cpu
evaluate:
  datasets:
    - {<<: *synthetic, split: test}
"""

#: rgbt (every seed) and rgbd (first seed); four main arms, two first-seed ablations and one
#: ablation that runs every seed.
ARMS = """\
modalities:
  rgbt: {base: base-rgbt.yaml, benchmark: LasHeR, switch_attributes: [TC, LI]}
  rgbd: {base: base-rgbd.yaml, benchmark: DepthTrack, switch_attributes: [dark-scene]}
arms:
  baseline:
    description: RGB-only
      baseline
    stage: student
    group: main
    set: [student.single_modality=true, student.init=none, distill.feature.weight=0, distill.response.weight=0]
    paper: {table3: baseline}
  teacher:
    stage: teacher
    modalities: [rgbt, rgbd]
    group: main
    paper: {table3: full, table1: teacher}
  fost:
    stage: student
    modalities: [rgbt, rgbd]
    group: main
    set: [student.init=none, distill.feature.weight=0, distill.response.weight=0]
    paper: {table4: none}
  student:
    stage: student
    teacher: teacher
    modalities: [rgbt, rgbd]
    group: main
    paper: {table4: both, table5: even}
  teacher-no-token:
    stage: teacher
    set: [teacher.prompter.token_attention=false]
    paper: {table3: no-token}
  student-feature:
    stage: student
    teacher: teacher
    set: [distill.response.weight=0]
    paper: {table4: feature}
  teacher-long:
    stage: teacher
    all_seeds: true
    set: [teacher.optim.epochs=4]
"""


def write_arms_table(folder: Path, arms: str = ARMS) -> Path:
    """Write ``arms.yaml`` and the rgbt / rgbd base recipes into ``folder``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arms.yaml").write_text(arms, encoding="utf-8")
    (folder / "base-rgbt.yaml").write_text(BASE_RGBT, encoding="utf-8")
    (folder / "base-rgbd.yaml").write_text(
        BASE_RGBT.replace("name: thermal", "name: depth").replace("lasher", "depthtrack"), encoding="utf-8")
    return folder


def make_record(arm: str, seed: int, pr: float, modality: str = "rgbt", stage: str | None = None,
                sequences: dict[str, float] | None = None, **extra: Any) -> dict[str, Any]:
    """A minimal record: ``pr`` (percent) as its PR and half of it as its SR, optional
    per-sequence PRs (percent); ``extra`` keys are added to the record as they are."""
    evaluation: dict[str, Any] = {"scores": {"PR": pr / 100, "SR": pr / 200}}
    if sequences is not None:
        evaluation["sequence_scores"] = {n: {"PR": v / 100, "SR": v / 200} for n, v in sequences.items()}
    return {"id": f"{modality}-{arm}-s{seed}", "arm": arm, "modality": modality, "seed": seed,
            "stage": stage or ("teacher" if arm.startswith("teacher") else "student"),
            "eval_s": 30.0, "evaluation": {"synthetic": evaluation}, **extra}
