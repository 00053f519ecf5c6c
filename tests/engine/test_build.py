"""From a recipe to the run's objects: the checks ``recipe check`` and ``train`` share."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mmtrack_kd.cli import main
from mmtrack_kd.engine.build import build_datasets, check_recipe
from mmtrack_kd.engine.run import train
from mmtrack_kd.errors import RecipeError
from mmtrack_kd.recipe import load_recipe

TINY = """
modality: {name: depth}
data:
  train: [{name: folder, root: ROOT, aux: AUX}]
  workers: 0
  val_samples: 4
model:
  backbone: {depth: 2, embed_dim: 64, num_heads: 4}
  template_size: 32
  search_size: 64
  head_channels: 32
teacher:
  optim: {epochs: 1, batch_size: 2, samples_per_epoch: 4}
train: {stages: [teacher], device: cpu, output_dir: OUT}
"""


def depth_folder(root: Path, sequences: int = 2, frames: int = 6) -> Path:
    """The plain folder layout with a 16-bit ``depth/`` stream: 64 x 48 frames, the target
    inside them."""
    rng = np.random.default_rng(0)
    for s in range(sequences):
        folder = root / f"seq{s}"
        (folder / "rgb").mkdir(parents=True)
        (folder / "depth").mkdir()
        for i in range(frames):
            cv2.imwrite(str(folder / "rgb" / f"{i:04d}.jpg"), rng.integers(0, 255, (48, 64, 3), np.uint8))
            cv2.imwrite(str(folder / "depth" / f"{i:04d}.png"), rng.integers(500, 4000, (48, 64), np.uint16))
        (folder / "groundtruth.txt").write_text("".join(f"{20 + i},{14 + i},16,12\n" for i in range(frames)))
    return root


def write_recipe(tmp_path: Path, aux: str, root: Path) -> Path:
    path = tmp_path / f"folder-{aux}.yaml"
    path.write_text(TINY.replace("ROOT", str(root)).replace("AUX", aux).replace("OUT", str(tmp_path / "runs")))
    return path


@pytest.mark.slow
def test_folder_dataset_carries_its_configured_aux_stream(tmp_path):
    """``{name: folder, aux: depth}`` carries depth: ``recipe check`` passes and ``train`` runs
    (once: "dataset folder carries rgb, thermal", from the class's default)."""
    recipe_file = write_recipe(tmp_path, "depth", depth_folder(tmp_path / "data"))
    assert main(["recipe", "check", str(recipe_file)]) == 0
    recipe = load_recipe(recipe_file)
    check_recipe(recipe)
    [(dataset, weight)] = build_datasets(recipe.data.train)
    assert dataset.modalities == ("rgb", "depth") and weight == 1.0
    folder = train(recipe)
    assert (folder / "teacher" / "last.pt").is_file()


def test_recipe_check_runs_the_checks_train_runs(tmp_path, capsys):
    """A folder whose aux stream is not the recipe's modality fails ``recipe check`` (not only
    ``train``), with the recipe file named once (not "recipe recipe")."""
    recipe_file = write_recipe(tmp_path, "thermal", tmp_path / "anywhere")
    assert main(["recipe", "check", str(recipe_file)]) == 2
    err = capsys.readouterr().err
    assert f"recipe {recipe_file}: 1 problem" in err
    assert "recipe recipe" not in err
    assert "data.train.0.name" in err and "carries rgb, thermal" in err
    with pytest.raises(RecipeError, match="modality is depth"):
        train(load_recipe(recipe_file))
    # the missing pretrained checkpoint `train` refuses, `recipe check` refuses too
    ok = write_recipe(tmp_path, "depth", tmp_path / "anywhere")
    assert main(["recipe", "check", str(ok), "--set", f"model.pretrained={tmp_path / 'no.pth'}"]) == 2
    assert "model.pretrained" in capsys.readouterr().err


SMOKE = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("smoke-*.yaml"))


@pytest.mark.parametrize("path", SMOKE, ids=[p.stem for p in SMOKE])
def test_smoke_recipes_are_small_everywhere(path):
    """A demo shrunk in one file: every entry (train, val, evaluate) asks for the same small
    data, and the training is a few hundred samples a stage."""
    recipe = load_recipe(path)
    check_recipe(recipe)
    entries = recipe.data.train + recipe.data.val + recipe.evaluate.datasets
    assert {e.options.root for e in entries} == {Path(f"runs/{path.stem}/data/synthetic-{entries[0].options.layout}")}
    for entry in entries:
        assert entry.options.n_train <= 8 and entry.options.n_test <= 4 and entry.options.frames <= 24
    for stage in (recipe.teacher, recipe.student):
        assert stage.optim.epochs * stage.optim.samples_per_epoch <= 256
    assert recipe.model.backbone.depth <= 2
    assert len(SMOKE) == 3


DEMOS = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("demo-*.yaml"))


def test_the_three_demos_differ_only_in_modality_and_data():
    """So that `mmtrack-kd report` over the three demo runs compares modalities, not settings;
    and each trains in two single-thread processes that load their own samples (the fastest
    use of 2 cores, docs/performance.md)."""
    recipes = [load_recipe(path) for path in DEMOS]
    assert [path.stem for path in DEMOS] == ["demo-rgbd", "demo-rgbe", "demo-rgbt"]
    for recipe in recipes:
        check_recipe(recipe)
        assert recipe.train.processes == 2 and recipe.data.workers == 0
    shared = [recipe.model_dump(exclude={"name": True, "modality": True, "data": {"train", "val"},
                                                "evaluate": True})
              for recipe in recipes]
    assert shared[0] == shared[1] == shared[2]
    layouts = {recipe.modality.name: recipe.data.train[0].options.layout for recipe in recipes}
    assert layouts == {"depth": "depthtrack", "event": "visevent", "thermal": "lasher"}


def test_an_override_that_the_anchored_entries_do_not_carry_is_named(tmp_path, capsys):
    """``--set data.train.0.n_train=8`` on a demo leaves the anchored val and evaluate entries
    at the old size: the recipe check says so and why (once: the generator refused the root
    at training time without saying which entry asked for what)."""
    demo = Path(__file__).resolve().parents[2] / "recipes" / "demo-rgbt.yaml"
    size = load_recipe(demo).data.val[0].options.n_train
    assert main(["recipe", "check", str(demo), "--set", f"data.train.0.n_train={size + 1}"]) == 2
    err = capsys.readouterr().err
    assert "data.val.0" in err and "evaluate.datasets.0" in err
    assert f"n_train {size} here, {size + 1} there" in err and "anchor" in err


def test_synthetic_layout_must_carry_the_modality(tmp_path, capsys):
    demo = Path(__file__).resolve().parents[2] / "recipes" / "smoke-rgbt.yaml"
    assert main(["recipe", "check", str(demo), "--set", "modality=depth"]) == 2
    assert "carries rgb, thermal" in capsys.readouterr().err
