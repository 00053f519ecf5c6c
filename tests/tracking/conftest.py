"""Fixtures for the tracker tests: tiny checkpoints in the trainer's format, a plugin registry
with the built-in adapters, and small synthetic scenes written as frame folders or videos."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch

import modality_adapters.depth
import modality_adapters.event
import modality_adapters.rgb
import modality_adapters.thermal
from mmtrack_kd.checkpoints import VERSION, ModalityEntry, RunPosition, save_model
from mmtrack_kd.data.crop import CropSettings
from mmtrack_kd.models import build_model
from mmtrack_kd.plugins import Registry, load_registry

#: A 2-block, width-64 model: 2x2 template and 4x4 search grids.
TINY = dict(template_size=32, search_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2, head_channels=32)
#: Frame size of the synthetic scenes (width, height) and the target's first box.
WIDTH, HEIGHT = 96, 72
FIRST_BOX = (30.0, 20.0, 16.0, 12.0)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The built-in adapters, registered directly (no entry points)."""
    return load_registry(
        only=[],
        extra_plugins=[
            ("rgb", modality_adapters.rgb),
            ("thermal", modality_adapters.thermal),
            ("depth", modality_adapters.depth),
            ("event", modality_adapters.event),
        ],
    )


MakeCheckpoint = Callable[..., Path]


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> MakeCheckpoint:
    """Write a tiny model's checkpoint with the entries the trainer writes.

    ``make_checkpoint(kind="student", aux="thermal", aux_options={}, **config)``; ``aux=None``
    (or ``num_modalities=1``) writes a single-modality student.
    """

    def make(kind: str = "student", aux: str | None = "thermal", aux_options: dict | None = None,
             name: str | None = None, **config) -> Path:
        config = {**TINY, **config}
        if aux is None and kind == "student":
            config["num_modalities"] = 1
        torch.manual_seed(0)
        model = build_model(kind, config)
        modalities = [ModalityEntry("rgb")]
        if model.num_modalities == 2:
            modalities.append(ModalityEntry(aux, aux_options or {}))
        path = tmp_path / "checkpoints" / (name or f"{kind}-{model.num_modalities}.pt")
        return save_model(model, path, version=VERSION, stage=kind, modalities=modalities,
                          crop=CropSettings.for_model(model), progress=RunPosition(epoch=1), recipe={})

    return make


def scene(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """``n`` frames of a bright textured square drifting right over clutter.

    Returns RGB frames (``H x W x 3`` uint8, RGB order), thermal frames (``H x W`` uint8: the
    target warm on a cool background) and the true boxes ``(n, 4)``.
    """
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 120, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    texture = rng.integers(150, 255, size=(int(FIRST_BOX[3]), int(FIRST_BOX[2]), 3), dtype=np.uint8)
    rgb, thermal, boxes = [], [], []
    for index in range(n):
        x, y = int(FIRST_BOX[0]) + 2 * index, int(FIRST_BOX[1]) + index
        h, w = texture.shape[:2]
        frame = background.copy()
        frame[y : y + h, x : x + w] = texture
        heat = np.full((HEIGHT, WIDTH), 40, dtype=np.uint8)
        heat[y : y + h, x : x + w] = 220
        rgb.append(frame)
        thermal.append(heat)
        boxes.append((x, y, w, h))
    return rgb, thermal, np.asarray(boxes, dtype=np.float64)


def write_folder(folder: Path, frames: list[np.ndarray], suffix: str = ".png", colour: bool = True) -> list[Path]:
    """Write frames as ``1.png, 2.png, ..., 10.png`` (names that sort wrongly as text)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        path = folder / f"{index + 1}{suffix}"
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if colour and frame.ndim == 3 else frame
        assert cv2.imwrite(str(path), image), path
        paths.append(path)
    return paths


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write frames (RGB ``H x W x 3`` or grey ``H x W`` uint8) as an mp4v video."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), f"cannot write {path}"
    for frame in frames:
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        writer.write(image)
    writer.release()
    return path


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A tiny RGB-T student (FOST: no teacher) trained for 1,920 samples on synthetic LasHeR-layout
    data (about 15 s on two CPU cores): enough that it follows the target of :func:`scene` for
    a few frames, where an untrained model's score map is flat and its peak arbitrary."""
    from mmtrack_kd.engine.run import train
    from mmtrack_kd.recipe import validate_recipe

    folder = tmp_path_factory.mktemp("trained")
    synthetic = dict(name="synthetic", layout="lasher", n_train=4, n_test=2, frames=24, width=128, height=96,
                     workers=1, root=str(folder / "synthetic"), split="train")
    recipe = validate_recipe({
        "seed": 0,
        "modality": {"name": "thermal"},
        "data": {"train": [synthetic], "workers": 0, "val_samples": 0},
        "model": {"backbone": {"depth": 2, "embed_dim": 64, "num_heads": 2, "drop_path": 0.0},
                  "template_size": 32, "search_size": 64, "head_channels": 32},
        "student": {"init": "none", "optim": {"epochs": 30, "batch_size": 8, "samples_per_epoch": 64,
                                              "lr_backbone": 1e-3, "lr": 1e-3, "lr_drop_epoch": 0}},
        "distill": {"feature": {"weight": 0}, "response": {"weight": 0}},
        "train": {"device": "cpu", "output_dir": str(folder / "runs"), "checkpoint_every": 1000,
                  "log_every": 1000},
    })
    return train(recipe, stage="student", run_dir=folder / "run") / "student" / "last.pt"


@pytest.fixture
def scene_frames() -> Callable[..., tuple[list[np.ndarray], list[np.ndarray], np.ndarray]]:
    return scene


@pytest.fixture
def folder_writer() -> Callable[..., list[Path]]:
    return write_folder


@pytest.fixture
def video_writer() -> Callable[..., Path]:
    return write_video
