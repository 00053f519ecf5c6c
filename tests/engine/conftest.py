"""The engine tests' tiny synthetic RGB-T benchmark and recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmtrack_kd.checkpoints import RunCheckpoint
from mmtrack_kd.recipe import validate_recipe

SYNTHETIC = dict(name="synthetic", layout="lasher", n_train=4, n_test=2, frames=24, width=128,
                 height=96, workers=1)


def recipe_data(root: Path, out: Path, **changes) -> dict:
    data = {
        "seed": 3,
        "modality": {"name": "thermal"},
        "data": {
            "train": [{**SYNTHETIC, "root": str(root), "split": "train"}],
            "val": [{**SYNTHETIC, "root": str(root), "split": "test"}],
            "workers": 0,
            "val_samples": 8,
        },
        "model": {
            "backbone": {"depth": 2, "embed_dim": 64, "num_heads": 4, "drop_path": 0.1},
            "template_size": 32,
            "search_size": 64,
            "head_channels": 32,
        },
        "teacher": {"optim": {"epochs": 2, "batch_size": 4, "samples_per_epoch": 16,
                              "lr_backbone": 1e-3, "lr": 1e-3, "lr_drop_epoch": 1}},
        "student": {"optim": {"epochs": 1, "batch_size": 4, "samples_per_epoch": 16,
                              "lr_backbone": 1e-3, "lr": 1e-3}},
        "distill": {"feature": {"layers": "all"}},
        "train": {"device": "cpu", "output_dir": str(out), "checkpoint_every": 2, "log_every": 1},
    }
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return data


@pytest.fixture(scope="package")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "lasher"
    recipe = validate_recipe(recipe_data(root, root.parent / "runs"))
    recipe.data.train[0].plugin(recipe.data.train[0].options)  # generates on first use
    return root


def weights(path: Path) -> dict[str, torch.Tensor]:
    return RunCheckpoint.read(path).model
