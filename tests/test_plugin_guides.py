"""The plugin guides' worked examples, installed as real distributions and run end to end.

``docs/writing-a-modality-plugin.md`` and ``docs/writing-a-dataset-plugin.md`` show the code of
the two packages under ``tests/fixtures/``. This module checks that every file the guides show is
the fixture file byte for byte (so the guides cannot rot), then pip-installs both packages into a
temporary folder and, in a subprocess with only that folder added to ``PYTHONPATH``, lists the
plugins, checks a recipe and trains a few teacher steps on a tiny NIR dataset in the custom
layout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmtrack_kd.checkpoints import RunCheckpoint

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
GUIDES = {
    "mmtrack-kd-nir": REPO / "docs" / "writing-a-modality-plugin.md",
    "mmtrack-kd-mydata": REPO / "docs" / "writing-a-dataset-plugin.md",
}

# A fenced block preceded by a line "<!-- file: PATH -->" shows the fixture file PATH
# (relative to tests/fixtures/).
_SHOWN_FILE = re.compile(r"<!-- file: (?P<path>\S+) -->\n```[a-z]*\n(?P<code>.*?)```\n", re.S)


def shown_files(guide: Path) -> dict[str, str]:
    return {m["path"]: m["code"] for m in _SHOWN_FILE.finditer(guide.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("package", sorted(GUIDES))
def test_guide_shows_the_fixture_package_verbatim(package):
    shown = shown_files(GUIDES[package])
    files = sorted(
        path.relative_to(FIXTURES).as_posix()
        for path in (FIXTURES / package).rglob("*")
        if path.is_file()
        # what building in place (`pip install -e tests/fixtures/...`) leaves behind
        and not {"__pycache__", "build"} & set(path.parts)
        and ".egg-info" not in path.as_posix()
    )
    assert files, f"no fixture package {package}"
    assert sorted(shown) == files, "the guide must show every file of the package, and only them"
    for name in files:
        assert shown[name] == (FIXTURES / name).read_text(encoding="utf-8"), (
            f"{GUIDES[package].name}: the block for {name} differs from tests/fixtures/{name}"
        )


# --------------------------------------------------------------------------- end to end


def install(package: str, tmp_path: Path, site: Path) -> None:
    """``pip install`` the fixture package into ``site``, offline, from a copy (building in
    place would leave build/ and *.egg-info in tests/fixtures)."""
    source = tmp_path / "src" / package
    shutil.copytree(FIXTURES / package, source, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--target", str(site), str(source)],
        check=True, capture_output=True, text=True, timeout=120,
    )


def write_mydata(root: Path, sequences: dict[str, str], frames: int = 12, size=(96, 72)) -> None:
    """A moving bright square in the ``mydata`` layout: RGB JPEGs, 1-channel NIR PNGs."""
    width, height = size
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    (root / "splits.csv").write_text(
        "sequence,split\n" + "".join(f"{name},{split}\n" for name, split in sequences.items())
    )
    for number, name in enumerate(sequences):
        (root / name / "frames").mkdir(parents=True)
        rows = ["frame,x,y,w,h,visible"]
        side = 16 + 2 * number
        for i in range(frames):
            x, y = 8 + 4 * i, 10 + 2 * i + number
            rgb = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
            rgb[y:y + side, x:x + side] = (40, 200, 240)
            nir = rng.integers(0, 40, (height, width), dtype=np.uint8)
            nir[y:y + side, x:x + side] = 230
            assert cv2.imwrite(str(root / name / "frames" / f"{i:06d}_rgb.jpg"), rgb)
            assert cv2.imwrite(str(root / name / "frames" / f"{i:06d}_nir.png"), nir)
            rows.append(f"{i},{x},{y},{side},{side},1")
        (root / name / "track.csv").write_text("\n".join(rows) + "\n")


RECIPE = """\
modality: {{name: nir, white_level: 255, mean: 0.3, std: 0.3}}
data:
  train: [{{name: mydata, root: {root}, split: train}}]
  val: [{{name: mydata, root: {root}, split: val}}]
model:
  template_size: 32
  search_size: 64
"""


@pytest.mark.slow
def test_installed_plugins_train_through_discovery_and_a_recipe(tmp_path):
    site = tmp_path / "site"
    for package in GUIDES:
        install(package, tmp_path, site)
    assert (site / "mmtrack_kd_nir-0.1.0.dist-info").is_dir()
    assert (site / "mmtrack_kd_mydata-0.2.0.dist-info").is_dir()

    root = tmp_path / "mydata"
    write_mydata(root, {"walk": "train", "run": "train", "jog": "train", "hop": "val"})
    recipe = tmp_path / "nir-mydata.yaml"
    recipe.write_text(RECIPE.format(root=root.as_posix()))

    env = {key: value for key, value in os.environ.items() if key != "MMTRACK_KD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"  # rich's table must not wrap the names we look for

    def cli(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "mmtrack_kd", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )
        assert result.returncode == 0, f"mmtrack-kd {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    listing = cli("plugins").stdout
    assert re.search(r"\bnir\b.*mmtrack-kd-nir 0\.1\.0.*modality nir", listing), listing
    assert re.search(r"\bmydata\b.*mmtrack-kd-mydata 0\.2\.0.*dataset mydata", listing), listing
    assert "protocol mydata-visible" in listing, listing

    checked = cli("recipe", "check", str(recipe)).stdout
    assert "modality nir" in checked and "1 training dataset" in checked, checked

    run_dir = tmp_path / "run"
    cli(
        "train", str(recipe), "--stage", "teacher", "--run-dir", str(run_dir),
        "--set", "model.backbone={depth: 2, embed_dim: 64, num_heads: 4}",
        "--set", "model.head_channels=32",
        "--set", "teacher.optim={epochs: 1, batch_size: 4, samples_per_epoch: 8}",
        "--set", "data.workers=0", "--set", "data.val_samples=4",
        "--set", "train.device=cpu", "--set", f"train.output_dir={tmp_path.as_posix()}",
    )
    checkpoint = run_dir / "teacher" / "last.pt"
    assert checkpoint.is_file(), sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*"))

    # The auxiliary stream went through its own 1-channel patch embedding.
    saved = RunCheckpoint.read(checkpoint)
    assert saved.progress.finished and saved.progress.update == 2  # 8 samples / 4
    weights = saved.model
    aux_embedding = [value for key, value in weights.items()
                     if "patch_embed_aux" in key and key.endswith("proj.weight")]
    assert aux_embedding and all(value.shape[1] == 1 for value in aux_embedding), (
        "the teacher has no 1-channel patch embedding for the nir stream"
    )
