"""The shared world of the bad-input corpus: tiny data, checkpoints and result folders made once
per session (a depth-1, width-32 model; two 8-frame LasHeR-layout sequences of 96 x 64)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mmtrack_kd.models import build_model
from mmtrack_kd.plugins import default_registry

#: The smallest model the trackers run: 2x2 template and 4x4 search grids, one block.
TINY_MODEL = dict(template_size=32, search_size=64, patch_size=16, embed_dim=32, depth=1,
                  num_heads=2, head_channels=16)
TINY_DATA = dict(n_train=1, n_test=2, frames=8, width=96, height=64, workers=1)
#: A recipe that trains in seconds on the world's data (``{root}`` and ``{out}`` filled in).
TINY_RECIPE = """\
seed: 1
modality: thermal
data:
  train: [{{name: synthetic, layout: lasher, root: {root}, split: train, n_train: 1, n_test: 2,
           frames: 8, width: 96, height: 64, workers: 1}}]
  workers: 0
  val_samples: 0
model:
  backbone: {{depth: 1, embed_dim: 32, num_heads: 2}}
  template_size: 32
  search_size: 64
  head_channels: 16
teacher: {{optim: {{epochs: 1, batch_size: 2, samples_per_epoch: 4}}}}
student: {{optim: {{epochs: 1, batch_size: 2, samples_per_epoch: 4}}}}
distill: {{feature: {{layers: all}}}}
train: {{device: cpu, output_dir: {out}, checkpoint_every: 1, log_every: 1}}
"""


def checkpoint_payload(kind: str = "student", aux: str = "thermal") -> dict[str, Any]:
    """A tiny model's checkpoint as the trainer writes it."""
    torch.manual_seed(0)
    model = build_model(kind, dict(TINY_MODEL))
    return {
        "format": "mmtrack-kd", "version": 1, "kind": kind, "stage": kind,
        "model_config": dict(model.config), "model": model.state_dict(),
        "modalities": [{"name": "rgb", "options": {}}, {"name": aux, "options": {}}],
        "crop": {"template_size": 32, "search_size": 64, "template_factor": 2.0, "search_factor": 4.0},
        "progress": {"epoch": 1}, "recipe": {},
    }


def write_checkpoint(path: Path, change: Callable[[dict[str, Any]], Any] | None = None,
                     kind: str = "student") -> Path:
    """Write the tiny checkpoint, after ``change(payload)`` (which may return a replacement)."""
    payload = checkpoint_payload(kind)
    if change is not None:
        payload = change(payload) or payload
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


@dataclass(frozen=True)
class World:
    """Paths every case may read (never write: a case copies what it changes)."""

    root: Path
    data: Path  # a LasHeR-layout root with test_0000, test_0001
    checkpoint: Path  # the tiny student (thermal)
    teacher: Path
    results: Path  # the ground truth written as an x,y,w,h result folder (scores perfectly)
    recipe: Path  # TINY_RECIPE
    trained: Path  # a finished run folder of TINY_RECIPE's teacher stage

    @property
    def rgb(self) -> Path:
        return self.data / "testingset" / "test_0000" / "visible"

    @property
    def aux(self) -> Path:
        return self.data / "testingset" / "test_0000" / "infrared"

    @property
    def first_box(self) -> str:
        return (self.data / "testingset" / "test_0000" / "visible.txt").read_text().splitlines()[0]

    def copy_data(self, into: Path) -> Path:
        """A private copy of the data root to change."""
        return Path(shutil.copytree(self.data, into / "data"))


def make_world(root: Path) -> World:
    """Write the world under ``root`` (the data, two checkpoints, a result folder, a trained run)."""
    from mmtrack_kd.engine.run import train
    from mmtrack_kd.recipe import load_recipe

    data = root / "lasher"
    synthetic = default_registry().dataset("synthetic")
    synthetic(synthetic.Options(root=data, layout="lasher", split="test", **TINY_DATA))
    results = root / "results" / "GT"
    results.mkdir(parents=True)
    for sequence in sorted((data / "testingset").iterdir()):
        boxes = np.loadtxt(sequence / "visible.txt", delimiter=",", ndmin=2)
        np.savetxt(results / f"{sequence.name}.txt", boxes, delimiter=",", fmt="%.4f")
    recipe = root / "tiny.yaml"
    recipe.write_text(TINY_RECIPE.format(root=data, out=root / "runs"), encoding="utf-8")
    trained = train(load_recipe(recipe), stage="teacher", run_dir=root / "trained")
    return World(root, data, write_checkpoint(root / "ckpt" / "tiny.pt"),
                 write_checkpoint(root / "ckpt" / "teacher.pt", kind="teacher"), results, recipe,
                 trained)
