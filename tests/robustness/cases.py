"""The bad-input corpus as data: one :class:`Case` per input, grouped by family.

Each case builds its input in a private folder from the shared :class:`~conftest.World`, names
the command line to run, the exit status it must end with (2 for a user's error, 0 where the
right answer is a result with a warning), and a regular expression the output (stdout, stderr
and warnings, whitespace collapsed) must match: it names the file, key or line at fault. A
``check`` adds what a status and a message cannot show: nothing written, nothing lost, the
numbers right.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from tests.robustness.world import World, write_checkpoint

Argv = Callable[[World, Path], list[str]]
Check = Callable[[World, Path, str], None]


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, what to run, and what must come out."""

    id: str
    family: str
    argv: Argv
    message: str
    status: int = 2
    check: Check | None = None
    context: Callable[[World, Path], contextlib.AbstractContextManager[Any]] | None = None
    slow: bool = False


CASES: list[Case] = []


def case(id: str, family: str, argv: Argv, message: str, status: int = 2, **kwargs: Any) -> None:
    CASES.append(Case(id, family, argv, message, status, **kwargs))


def write(path: Path, content: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- recipes

BASE = "modality: {name: thermal}\ndata: {train: [{name: synthetic, layout: lasher, root: x}]}\n"


def recipe_file(content: str | bytes, *extra: str) -> Argv:
    return lambda world, tmp: ["recipe", "check", write(tmp / "recipe.yaml", content), *extra]


def recipe_set(*overrides: str) -> Argv:
    def argv(world: World, tmp: Path) -> list[str]:
        sets = [item for override in overrides for item in ("--set", override)]
        return ["recipe", "check", write(tmp / "recipe.yaml", BASE), *sets]
    return argv


# typos: the key's full path is named
for path, text in {
    "seeed": "seeed: 1\n",
    "model.backbone.dept": "model: {backbone: {dept: 2}}\n",
    "model.serach_size": "model: {serach_size: 256}\n",
    "train.epochs": "train: {epochs: 2}\n",
    "teacher.optim.learning_rate": "teacher: {optim: {learning_rate: 0.1}}\n",
    "student.optim.batchsize": "student: {optim: {batchsize: 4}}\n",
    "distill.feature.layer": "distill: {feature: {layer: [2]}}\n",
    "distill.respone": "distill: {respone: {weight: 1}}\n",
    "teacher.prompter.enable": "teacher: {prompter: {enable: false}}\n",
    "student.candidate_elimination.keep": "student: {candidate_elimination: {keep: 0.5}}\n",
    "evaluate.hann": "evaluate: {hann: false}\n",
    "train.loss.focall": "train: {loss: {focall: 1}}\n",
    "data.sampler.max_gapp": "data: {train: [{name: synthetic, layout: lasher, root: x}], sampler: {max_gapp: 1}}\n",
    "modality.sixteenbit": "modality: {name: thermal, sixteenbit: minmax}\n",
    "data.train.0.roots": "data: {train: [{name: synthetic, layout: lasher, roots: x}]}\n",
}.items():
    content = text if path.startswith(("data.", "modality.")) else BASE + text
    if path.startswith("modality."):
        content = "data: {train: [{name: synthetic, layout: lasher, root: x}]}\n" + text
    case(f"recipe-typo-{path}", "recipes", recipe_file(content), re.escape(path) + r".*(Extra inputs|not permitted)")

# wrong types: the key is named
for path, value in {
    "seed": "one", "teacher.optim.lr": "fast", "teacher.optim.epochs": "2.5",
    "model.backbone.depth": "[1, 2]", "model.template_size": "big", "train.stages": "5",
    "train.device": "3", "distill.feature.layers": "sometimes", "evaluate.workers": "-1",
    "train.precision": "fp8", "student.init": "random", "model.fusion": "sum",
    "teacher.optim.batch_size": "0", "data.workers": "many",
}.items():
    case(f"recipe-type-{path}", "recipes", recipe_set(f"{path}={value}"), re.escape(path))

# non-finite numbers: refused where they are given, by path
for path in (
    "teacher.optim.lr", "teacher.optim.lr_backbone", "teacher.optim.weight_decay",
    "teacher.optim.grad_clip", "teacher.optim.lr_drop_factor", "teacher.optim.warmup_epochs",
    "student.optim.lr", "model.template_factor", "model.search_factor", "model.backbone.mlp_ratio",
    "model.backbone.drop_path", "train.loss.focal", "train.loss.giou", "train.loss.l1",
    "distill.feature.weight", "distill.response.weight", "distill.response.temperature",
    "data.sampler.scale_jitter", "data.sampler.centre_jitter", "data.sampler.flip_probability",
    "data.train.0.weight", "data.train.0.content.clutter", "student.candidate_elimination.keep_ratio",
):
    for value in (".inf", ".nan"):
        case(f"recipe-nonfinite-{path}={value}", "recipes", recipe_set(f"{path}={value}"),
             re.escape(path) + r".*(finite|greater than)")
for path, value in {"modality.mean": "[.nan, 0.4, 0.4]", "modality.std": "[0.2, .inf, 0.2]",
                    "modality.sixteen_bit_range": "[0, .inf]", "data.train.0.content.target_size": "[0.1, .nan]"}.items():
    case(f"recipe-nonfinite-{path}", "recipes", recipe_set(f"{path}={value}"), re.escape(path) + r"\.\d.*finite")
for path in ("teacher.optim.lr", "train.loss.l1", "model.search_factor"):
    case(f"recipe-nonfinite-file-{path}=-.inf", "recipes",
         lambda world, tmp, path=path: ["recipe", "check", write(tmp / "r.yaml", BASE + _nested(path, "-.inf"))],
         re.escape(path) + r".*finite")


def _nested(path: str, value: str) -> str:
    parts = path.split(".")
    text = value
    for part in reversed(parts):
        text = "{" + f"{part}: {text}" + "}"
    return text[1:-1] + "\n"


# whole files
case("recipe-empty-file", "recipes", recipe_file(""), r"modality.*Field required")
case("recipe-only-comments", "recipes", recipe_file("# nothing here\n"), r"modality.*Field required")
case("recipe-a-list", "recipes", recipe_file("- a\n- b\n"), r"recipe.yaml.*must be a mapping")
case("recipe-a-scalar", "recipes", recipe_file("42\n"), r"recipe.yaml.*must be a mapping")
case("recipe-non-utf8", "recipes", recipe_file(b"modality: th\xe9rmal\n\xff\xfe"), r"recipe.yaml.*not UTF-8")
case("recipe-binary-garbage", "recipes", recipe_file(bytes(range(256)) * 4), r"recipe.yaml.*(not UTF-8|YAML)")
case("recipe-utf16", "recipes", recipe_file("modality: thermal\n".encode("utf-16")), r"recipe.yaml.*not UTF-8")
case("recipe-yaml-syntax", "recipes", recipe_file(BASE + "model: {backbone: [\n"), r"recipe.yaml.*line \d+.*YAML syntax")
case("recipe-tab-indent", "recipes", recipe_file(BASE + "model:\n\tdepth: 2\n"), r"recipe.yaml.*line 4.*YAML syntax")
case("recipe-duplicate-key", "recipes", recipe_file(BASE + "seed: 1\nseed: 2\n"), r"line 4.*'seed' appears twice")
case("recipe-duplicate-nested-key", "recipes",
     recipe_file(BASE + "teacher:\n  optim:\n    lr: 0.1\n    lr: 0.2\n"), r"line 6.*'lr' appears twice")
BOMB = "".join(f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB
case("recipe-billion-laughs", "recipes", recipe_file(LAUGHS), r"recipe.yaml.*expands to more than")
case("recipe-billion-laughs-in-a-list-key", "recipes",
     recipe_file(BASE + LAUGHS + "distill: {feature: {layers: *i}}\n"), r"recipe.yaml.*expands to more than")
case("recipe-recursive-alias", "recipes", recipe_file(BASE + "x: &x [*x]\n"), r"recipe.yaml.*(expands|YAML)")
case("recipe-python-tag", "recipes", recipe_file(BASE + "seed: !!python/object/apply:os.system ['true']\n"),
     r"recipe.yaml.*line 3.*YAML syntax")
case("recipe-deep-nesting", "recipes", recipe_file(BASE + "x: " + "[" * 5000 + "]" * 5000 + "\n"),
     r"recipe.yaml.*(nested too deeply|Extra inputs)")
case("recipe-missing-file", "recipes", lambda world, tmp: ["recipe", "check", str(tmp / "nope.yaml")],
     r"nope.yaml.*cannot read")
case("recipe-a-folder", "recipes", lambda world, tmp: ["recipe", "check", str(tmp)], r"cannot read")
case("recipe-unknown-modality", "recipes", recipe_file("modality: sonar\ndata: {train: [{name: synthetic, root: x}]}\n"),
     r"modality.name.*sonar")
case("recipe-unknown-dataset", "recipes", recipe_file("modality: thermal\ndata: {train: [{name: lashr, root: x}]}\n"),
     r"data.train.0.name.*lashr.*lasher")
case("recipe-unknown-eval-dataset", "recipes", recipe_file(BASE + "evaluate: {datasets: [{name: gtott}]}\n"),
     r"evaluate.datasets.0.name.*gtott")
case("recipe-set-no-equals", "recipes", recipe_set("train.epochs"), r"--set.*KEY=VALUE")
case("recipe-set-empty-key", "recipes", recipe_set("=3"), r"--set.*KEY=VALUE")
case("recipe-set-bad-yaml", "recipes", recipe_set("seed=[1,"), r"--set seed.*YAML syntax")
case("recipe-set-list-index", "recipes", recipe_set("data.train.5.root=x"), r"data.train.5.*no list item")
case("recipe-set-inside-scalar", "recipes", recipe_set("seed.x=1"), r"seed.*valid integer")
case("recipe-layers-past-depth", "recipes", recipe_set("model.backbone.depth=2", "distill.feature.layers=[4]"),
     r"distill.feature.layers")
case("recipe-heads-do-not-divide", "recipes", recipe_set("model.backbone.num_heads=5"), r"model.backbone")
case("recipe-show-too", "recipes", lambda world, tmp: ["recipe", "show", write(tmp / "r.yaml", BASE + "seed: .nan\n")],
     r"seed")


# --------------------------------------------------------------------------- checkpoints


class _Runs:
    """Pickled with a global that runs a command: must never be called."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def _with_model(change: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[dict], None]:
    def apply(payload: dict) -> None:
        change(payload["model"])
    return apply


def _first_float(state: dict[str, torch.Tensor]) -> str:
    return next(key for key, value in state.items() if value.is_floating_point())


def _poison(value: float, key: str | None = None) -> Callable[[dict], None]:
    def apply(state: dict[str, torch.Tensor]) -> None:
        name = key or _first_float(state)
        state[name] = state[name].clone()
        state[name].view(-1)[0] = value
    return _with_model(apply)


def _reshape(state: dict[str, torch.Tensor]) -> None:
    name = "backbone.patch_embed.proj.weight"
    state[name] = torch.zeros(8, 3, 16, 16)


def _zip_of_text(path: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"not a pickle")
    return path


CHECKPOINTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "random-bytes": (lambda p: Path(write(p, np.random.default_rng(0).bytes(4096))), r"not a readable PyTorch checkpoint"),
    "empty-file": (lambda p: Path(write(p, b"")), r"not a readable PyTorch checkpoint"),
    "text-file": (lambda p: Path(write(p, "model weights go here\n")), r"not a readable PyTorch checkpoint"),
    "truncated": (lambda p: Path(write(p, write_checkpoint(p).read_bytes()[:5000])), r"not a readable PyTorch checkpoint"),
    "truncated-tail": (lambda p: Path(write(p, write_checkpoint(p).read_bytes()[:-200])), r"not a readable PyTorch checkpoint"),
    "zip-not-torch": (_zip_of_text, r"not a readable PyTorch checkpoint"),
    "wrong-shape": (lambda p: write_checkpoint(p, _with_model(_reshape)), r"patch_embed.proj.weight.*shape"),
    "nan-weights": (lambda p: write_checkpoint(p, _poison(float("nan"))), r"NaN or inf.*backbone"),
    "inf-weights": (lambda p: write_checkpoint(p, _poison(float("inf"))), r"NaN or inf"),
    "nan-in-the-head": (lambda p: write_checkpoint(p, _poison(float("nan"), "fusion.reduce.weight")), r"NaN or inf.*fusion.reduce.weight"),
    "wrong-kind": (lambda p: write_checkpoint(p, lambda c: c.update(kind="banana")), r"kind 'banana'"),
    "no-model": (lambda p: write_checkpoint(p, lambda c: c.update(model=None)), r"without a 'model' state dict"),
    "model-not-a-dict": (lambda p: write_checkpoint(p, lambda c: c.update(model=[1, 2])), r"without a 'model' state dict"),
    "a-list": (lambda p: write_checkpoint(p, lambda c: [1, 2, 3]), r"holds a list, not a dict"),
    "bad-model-config": (lambda p: write_checkpoint(p, lambda c: c.update(model_config={"depth": "deep"})),
                         r"model_config"),
    "missing-keys": (lambda p: write_checkpoint(p, _with_model(lambda s: s.pop("fusion.reduce.weight"))),
                     r"does not match the model exactly.*fusion"),
    "ostrack-format": (lambda p: write_checkpoint(p, lambda c: {"net": c["model"]}), r"without a model description"),
    "unknown-format": (lambda p: write_checkpoint(p, lambda c: {"weights": {"a": torch.zeros(1)}}), r"not a checkpoint format we know"),
    "pickled-global": (lambda p: Path(write(p, pickle.dumps({"model": _Runs(p.with_name("RAN"))}))),
                       r"not a readable PyTorch checkpoint \(pickled data weights-only loading refuses"),
    "pickled-global-protocol-2": (lambda p: Path(write(p, pickle.dumps({"model": _Runs(p.with_name("RAN"))}, protocol=2))),
                                  r"refused: it needs Python objects that are never loaded \(.*system"),
    "torch-pickled-global": (lambda p: (torch.save({"format": "mmtrack-kd", "model": _Runs(p.with_name("RAN"))}, p), p)[1],
                             r"refused: it needs Python objects that are never loaded \(.*system"),
}
TRACKING_ONLY = {
    "no-modalities": (lambda p: write_checkpoint(p, lambda c: c.update(modalities=None)), r"no 'modalities' entry"),
    "unknown-modality": (lambda p: write_checkpoint(p, lambda c: c["modalities"][1].update(name="sonar")),
                         r"modality 'sonar' needs a plugin"),
    "bad-modality-options": (lambda p: write_checkpoint(p, lambda c: c["modalities"][1].update(options={"gamma": 2})),
                             r"modalities.1 \(thermal\) options"),
    "crop-not-a-mapping": (lambda p: write_checkpoint(p, lambda c: c.update(crop=[1, 2])), r"'crop' is a list"),
}


def _nothing_ran(world: World, tmp: Path, output: str) -> None:
    assert not (tmp / "RAN").exists(), "a pickled global was called"


def _no_export_folder(world: World, tmp: Path, output: str) -> None:
    assert not (tmp / "out").exists(), "a failed export left its folder"
    _nothing_ran(world, tmp, output)


def _checkpoint_argv(command: str, make: Callable[[Path], Path]) -> Argv:
    def argv(world: World, tmp: Path) -> list[str]:
        path = make(tmp / "bad.pt")
        if command == "track":
            return ["track", "--checkpoint", str(path), "--rgb", str(world.rgb), "--aux", str(world.aux),
                    "--init", world.first_box, "--out", str(tmp / "out"), "--device", "cpu"]
        if command == "export":
            return ["export", str(path), "--out", str(tmp / "out")]
        return ["evaluate", str(path), "--datasets", "lasher", "--root", str(world.data),
                "--out", str(tmp / "out"), "--device", "cpu", "--no-plots", "--workers", "1"]
    return argv


for command in ("track", "export", "evaluate"):
    table = {**CHECKPOINTS, **(TRACKING_ONLY if command != "export" else {})}
    for name, (make, message) in table.items():
        case(f"checkpoint-{command}-{name}", "checkpoints", _checkpoint_argv(command, make),
             r"bad.pt.*" + message if "bad.pt" not in message else message,
             check=_no_export_folder if command == "export" else _nothing_ran)
for name in ("nan-weights", "random-bytes", "unknown-modality"):
    make, message = {**CHECKPOINTS, **TRACKING_ONLY}[name]
    case(f"checkpoint-evaluate-2-workers-{name}", "checkpoints",
         lambda world, tmp, make=make: _checkpoint_argv("evaluate", make)(world, tmp) + ["--workers", "2"],
         r"bad.pt.*" + message, check=_nothing_ran)
case("checkpoint-export-a-teacher", "checkpoints",
     lambda world, tmp: ["export", str(world.teacher), "--out", str(tmp / "out")], r"teacher.pt.*export takes a student",
     check=_no_export_folder)
case("checkpoint-track-missing", "checkpoints",
     lambda world, tmp: ["track", "--checkpoint", str(tmp / "nope.pt"), "--rgb", str(world.rgb), "--init", "1,1,5,5"],
     r"nope.pt.*no such file")
case("checkpoint-export-missing", "checkpoints", lambda world, tmp: ["export", str(tmp / "nope.pt")], r"nope.pt.*no such file")
case("checkpoint-evaluate-missing", "checkpoints",
     lambda world, tmp: ["evaluate", str(tmp / "nope.pt"), "--datasets", "lasher", "--root", str(world.data)],
     r"nope.pt.*no such run folder or checkpoint")
case("checkpoint-evaluate-empty-run-folder", "checkpoints",
     lambda world, tmp: ["evaluate", str(tmp), "--datasets", "lasher", "--root", str(world.data)],
     r"no checkpoint found")
case("checkpoint-track-a-folder", "checkpoints",
     lambda world, tmp: ["track", "--checkpoint", str(tmp), "--rgb", str(world.rgb), "--init", "1,1,5,5"],
     r"no such file")


@contextlib.contextmanager
def _without_onnx(world: World, tmp: Path) -> Iterator[None]:
    saved = {name: sys.modules.get(name) for name in ("onnx", "onnxruntime")}
    sys.modules["onnx"] = sys.modules["onnxruntime"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


case("export-without-the-onnx-extra", "checkpoints",
     lambda world, tmp: ["export", str(world.checkpoint), "--out", str(tmp / "out")], r"pip install 'mmtrack-kd\[onnx\]'",
     check=_no_export_folder, context=_without_onnx)
case("export-check-without-onnxruntime", "checkpoints",
     lambda world, tmp: ["export", str(world.checkpoint), "--out", str(tmp / "out"), "--check"],
     r"onnx.*not installed", check=_no_export_folder, context=_without_onnx)


# --------------------------------------------------------------------------- ground truth


def _gt_argv(change: Callable[[Path], None], track: bool = False) -> Argv:
    def argv(world: World, tmp: Path) -> list[str]:
        data = world.copy_data(tmp)
        change(data / "testingset" / "test_0000")
        if track:
            return ["evaluate", str(world.checkpoint), "--datasets", "lasher", "--root", str(data),
                    "--out", str(tmp / "out"), "--device", "cpu", "--no-plots", "--workers", "1"]
        return ["evaluate", "--results", str(world.results), "--dataset", "lasher", "--root", str(data),
                "--out", str(tmp / "out"), "--no-plots"]
    return argv


def _edit_line(number: int, text: str, file: str = "visible.txt") -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        lines = (folder / file).read_text().splitlines()
        lines[number - 1] = text
        (folder / file).write_text("\n".join(lines) + "\n")
    return change


def _replace(content: str | bytes, file: str = "visible.txt") -> Callable[[Path], None]:
    return lambda folder: write(folder / file, content)


GT = r"test_0000.*visible.txt"
case("gt-nan-row", "ground truth", _gt_argv(_edit_line(3, "nan,nan,nan,nan")), GT + r".*line 3: a NaN row", status=0)
case("gt-negative-width", "ground truth", _gt_argv(_edit_line(4, "30,20,-8,9")), GT + r".*line 4: a negative size", status=0)
case("gt-negative-height", "ground truth", _gt_argv(_edit_line(2, "30,20,8,-9")), GT + r".*line 2: a negative size", status=0)
case("gt-inf", "ground truth", _gt_argv(_edit_line(5, "30,20,inf,9")), GT + r".*line 5: an infinite value", status=0)
case("gt-partly-nan", "ground truth", _gt_argv(_edit_line(6, "30,nan,8,9")), GT + r".*line 6: a row only partly NaN", status=0)
case("gt-three-values", "ground truth", _gt_argv(_edit_line(3, "30,20,8")), GT + r" line 3: expected 4 values")
case("gt-five-values", "ground truth", _gt_argv(_edit_line(3, "30,20,8,9,1")), GT + r" line 3: expected 4 values")
case("gt-text", "ground truth", _gt_argv(_edit_line(2, "x,y,w,h")), GT + r" line 2: not a number")
case("gt-pipe-delimiter", "ground truth", _gt_argv(_replace("35|28|8|9\n" * 8)), GT + r" line 1")
case("gt-empty", "ground truth", _gt_argv(_replace("")), GT + r" is empty")
case("gt-blank-lines-only", "ground truth", _gt_argv(_replace("\n\n\n")), GT + r" is empty")
case("gt-non-utf8", "ground truth", _gt_argv(_replace(b"35,28,8,9\n\xff\xfe,1,2,3\n" * 4)), GT + r" line 2")
case("gt-missing", "ground truth", _gt_argv(lambda f: ((f / "visible.txt").unlink(), (f / "init.txt").unlink())),
     r"test_0000.*ground-truth")
case("gt-a-folder", "ground truth",
     _gt_argv(lambda f: ((f / "visible.txt").unlink(), (f / "init.txt").unlink(), (f / "visible.txt").mkdir())),
     r"test_0000.*visible.txt")
case("gt-fewer-rows-than-frames-tracked", "ground truth",
     _gt_argv(lambda f: write(f / "visible.txt", "\n".join((f / "visible.txt").read_text().splitlines()[:5]) + "\n"), track=True),
     r"test_0000.*(5|rows|frames)")
case("gt-more-rows-than-frames-tracked", "ground truth",
     _gt_argv(lambda f: write(f / "visible.txt", (f / "visible.txt").read_text() * 2), track=True),
     r"test_0000.*(16|rows|frames)")
case("gt-bom", "ground truth", _gt_argv(lambda f: write(f / "visible.txt", b"\xef\xbb\xbf" + (f / "visible.txt").read_bytes())),
     r"PR", status=0)
case("gt-first-box-outside-the-frame", "ground truth", _gt_argv(_edit_line(1, "500,400,8,9"), track=True),
     r"test_0000.*first ground-truth box.*outside the first frame \(96x64\)")
case("gt-first-box-left-of-the-frame", "ground truth", _gt_argv(_edit_line(1, "-40,10,8,9"), track=True),
     r"test_0000.*outside the first frame")
case("gt-first-box-nan", "ground truth", _gt_argv(_edit_line(1, "nan,nan,nan,nan"), track=True),
     r"test_0000.*first frame has no usable ground-truth box")
case("gt-first-box-empty", "ground truth", _gt_argv(_edit_line(1, "30,20,0,0"), track=True),
     r"test_0000.*first frame has no usable ground-truth box")


# --------------------------------------------------------------------------- frames


def _frames(change: Callable[[Path], None]) -> Argv:
    return _gt_argv(change, track=True)


def _image(path: Path, width: int, height: int) -> None:
    import cv2

    cv2.imwrite(str(path), np.full((height, width, 3), 128, np.uint8))


FRAME = r"test_0000"
case("frame-missing", "frames", _frames(lambda f: (f / "visible" / "v000003.jpg").unlink()), FRAME + r".*do not pair up")
case("frame-unreadable", "frames", _frames(lambda f: write(f / "visible" / "v000003.jpg", b"\x00garbage" * 20)),
     r"v000003.jpg cannot be decoded")
case("frame-empty-file", "frames", _frames(lambda f: write(f / "infrared" / "i000002.jpg", b"")), r"i000002.jpg cannot be decoded")
case("frame-aux-other-size", "frames", _frames(lambda f: _image(f / "infrared" / "i000004.jpg", 48, 32)),
     FRAME + r", frame 4: thermal frame is 48x32, the rgb frame 96x64")
case("frame-aux-other-size-first", "frames", _frames(lambda f: _image(f / "infrared" / "i000001.jpg", 40, 30)),
     FRAME + r", frame 1: thermal frame is 40x30")
case("frame-rgb-other-size", "frames", _frames(lambda f: _image(f / "visible" / "v000005.jpg", 100, 70)),
     FRAME + r", frame 5: thermal frame is 96x64, the rgb frame 100x70")
case("frame-folder-empty", "frames", _frames(lambda f: [p.unlink() for p in (f / "infrared").iterdir()]),
     FRAME + r".*holds no images")
case("frame-folder-missing", "frames", _frames(lambda f: shutil.rmtree(f / "infrared")), FRAME + r".*no thermal frame folder")
case("frame-a-folder-named-like-a-frame", "frames",
     _frames(lambda f: ((f / "visible" / "v000002.jpg").unlink(), (f / "visible" / "v000002.jpg").mkdir())),
     r"v000002.jpg")


# --------------------------------------------------------------------------- track arguments


def _track(init: str | None = None, rgb: Callable[[World, Path], Path] | None = None,
           aux: Callable[[World, Path], Path] | None = None, out: Callable[[World, Path], Path] | None = None) -> Argv:
    def argv(world: World, tmp: Path) -> list[str]:
        return ["track", "--checkpoint", str(world.checkpoint),
                "--rgb", str(rgb(world, tmp) if rgb else world.rgb),
                "--aux", str(aux(world, tmp) if aux else world.aux),
                "--init", init if init is not None else world.first_box,
                "--out", str(out(world, tmp) if out else tmp / "out"), "--device", "cpu"]
    return argv


for label, init in {"three-numbers": "1,2,3", "words": "a,b,c,d", "nan": "nan,1,2,3", "inf": "1,inf,2,3",
                    "zero-width": "10,10,0,5", "negative-height": "10,10,5,-4", "empty": "",
                    "semicolons": "1;2;3;4", "five-numbers": "1,2,3,4,5"}.items():
    case(f"track-init-{label}", "track", _track(init), r"--init")
case("track-init-outside-the-frame", "track", _track("500,500,10,10"), r"--init 500,500,10,10: the box lies outside the first frame \(96x64\)")
case("track-init-above-the-frame", "track", _track("10,-50,10,10"), r"outside the first frame")
case("track-rgb-missing", "track", _track(rgb=lambda w, t: t / "nowhere"), r"nowhere")
case("track-aux-missing", "track", _track(aux=lambda w, t: t / "nowhere"), r"nowhere")
case("track-rgb-empty-folder", "track", _track(rgb=lambda w, t: (t / "empty").mkdir() or t / "empty"), r"empty")


def _copy_frames(world: World, tmp: Path, change: Callable[[Path], None]) -> Path:
    folder = Path(shutil.copytree(world.aux, tmp / "aux"))
    change(folder)
    return folder


case("track-aux-other-size", "track",
     _track(aux=lambda w, t: _copy_frames(w, t, lambda f: [_image(p, 48, 32) for p in f.iterdir()])),
     r"--aux .*aux frames are 48x32 but --rgb .* frames are 96x64")
case("track-aux-one-frame-other-size", "track",
     _track(aux=lambda w, t: _copy_frames(w, t, lambda f: _image(f / "i000005.jpg", 48, 32))),
     r"frames are 48x32")
case("track-aux-fewer-frames", "track", _track(aux=lambda w, t: _copy_frames(w, t, lambda f: (f / "i000008.jpg").unlink())),
     r"frame counts differ")
case("track-aux-unreadable-frame", "track",
     _track(aux=lambda w, t: _copy_frames(w, t, lambda f: write(f / "i000003.jpg", b"not an image"))),
     r"i000003.jpg")
case("track-out-under-a-file", "track", _track(out=lambda w, t: Path(write(t / "file", "x")) / "out"), r"file.*(Not a directory|not a folder)")
case("track-out-is-a-file", "track", _track(out=lambda w, t: Path(write(t / "file", "x"))), r"file")


# --------------------------------------------------------------------------- result folders


def _results(change: Callable[[Path], None] | None = None, *extra: str, dataset: str = "lasher") -> Argv:
    def argv(world: World, tmp: Path) -> list[str]:
        folder = Path(shutil.copytree(world.results, tmp / "GT"))
        if change is not None:
            change(folder)
        return ["evaluate", "--results", str(folder), "--dataset", dataset, "--root", str(world.data),
                "--out", str(tmp / "out"), "--no-plots", *extra]
    return argv


def _result_line(number: int, text: str) -> Callable[[Path], None]:
    return lambda folder: _edit_line(number, text, "test_0001.txt")(folder)


case("results-missing-file", "result folders", _results(lambda f: (f / "test_0001.txt").unlink()),
     r"test_0001.txt: no result for sequence 'test_0001'")
case("results-text", "result folders", _results(_result_line(3, "a,b,c,d")), r"test_0001.txt, line 3")
case("results-three-values", "result folders", _results(_result_line(2, "1,2,3")), r"test_0001.txt, line 2: expected 4 values")
case("results-non-utf8", "result folders", _results(lambda f: write(f / "test_0001.txt", b"\xff\xfe1,2,3,4\n")),
     r"test_0001.txt")
case("results-too-short", "result folders",
     _results(lambda f: write(f / "test_0001.txt", "1,2,3,4\n")), r"test_0001.txt.*(1|shorter|rows|frames)")
case("results-wrong-box-format", "result folders", _results(None, "--box-format", "ltrb"),
     r"GT: \d+% of the boxes have a negative width or height when read as --box-format ltrb.*try --box-format xywh")
case("results-wrong-box-format-inclusive", "result folders", _results(None, "--box-format", "ltrb-inclusive"),
     r"negative width or height.*try --box-format xywh")
case("results-folder-missing", "result folders",
     lambda world, tmp: ["evaluate", "--results", str(tmp / "none"), "--dataset", "lasher", "--root", str(world.data)],
     r"none: result folder not found")
case("results-without-dataset", "result folders",
     lambda world, tmp: ["evaluate", "--results", str(world.results)], r"--results needs --dataset")
case("results-prefix-without-results", "result folders",
     lambda world, tmp: ["evaluate", str(world.checkpoint), "--prefix", "x_"], r"--prefix and --box-format describe --results")
case("results-unknown-dataset", "result folders", _results(None, dataset="lashr"), r"lashr")
case("results-longterm-with-box-format", "result folders",
     lambda world, tmp: ["evaluate", "--results", str(world.results), "--dataset", "depthtrack", "--root", str(world.data),
                         "--box-format", "ltrb"], r"depthtrack|DepthTrack")


def _perturbed(payload: dict) -> None:
    generator = torch.Generator().manual_seed(1)
    for key, value in payload["model"].items():
        if value.is_floating_point():
            payload["model"][key] = value + 0.05 * torch.randn(value.shape, generator=generator)


def _stale_provenance(world: World, tmp: Path) -> list[str]:
    """Results of another checkpoint already in the folder, under the same tracker name."""
    from mmtrack_kd.evaluation.runner import evaluate_checkpoint, resolve_datasets

    other = write_checkpoint(tmp / "run" / "student" / "best.pt", _perturbed)
    entries = resolve_datasets(["lasher"], None, world.data)
    evaluate_checkpoint(other, entries, tmp / "out" / "results", tracker_name="run-student", progress=False)
    shutil.copy(world.checkpoint, other)  # retrained in place
    return ["evaluate", str(other), "--datasets", "lasher", "--root", str(world.data), "--out", str(tmp / "out"),
            "--device", "cpu", "--no-plots", "--workers", "1"]


def _stale_moved_aside(world: World, tmp: Path, output: str) -> None:
    from mmtrack_kd.evaluation.runner import evaluate_checkpoint, resolve_datasets

    folder = tmp / "out" / "results" / "run-student"
    assert len(list(folder.glob("lasher.stale-*"))) == 1, "the old results are kept, aside"
    entries = resolve_datasets(["lasher"], None, world.data)
    evaluate_checkpoint(world.checkpoint, entries, tmp / "fresh", tracker_name="fresh", progress=False)
    for sequence in ("test_0000", "test_0001"):
        assert (folder / "lasher" / f"{sequence}.txt").read_text() == \
            (tmp / "fresh" / "fresh" / "lasher" / f"{sequence}.txt").read_text()


case("results-stale-provenance", "result folders", _stale_provenance,
     r"results were written by another run \(checkpoint_sha256 .*\); moved them to", status=0, check=_stale_moved_aside)


def _default_out(world: World, tmp: Path) -> list[str]:
    shutil.copy(world.checkpoint, tmp / "best.pt")
    return ["evaluate", str(tmp / "best.pt"), "--datasets", "lasher", "--root", str(world.data), "--device", "cpu",
            "--no-plots", "--workers", "1"]


@contextlib.contextmanager
def _in_folder(world: World, tmp: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(tmp)
    try:
        yield
    finally:
        os.chdir(previous)


def _out_named_by_hash(world: World, tmp: Path, output: str) -> None:
    from mmtrack_kd.evaluation.provenance import file_sha256

    (folder,) = (tmp / "eval").iterdir()
    assert folder.name.endswith(file_sha256(tmp / "best.pt")[:8]), folder.name


case("results-default-out-is-per-checkpoint", "result folders", _default_out, r"wrote every number to eval/",
     status=0, check=_out_named_by_hash, context=_in_folder)


# --------------------------------------------------------------------------- training and run folders


def _train(*extra: str, run_dir: Callable[[World, Path], Path] | None = None) -> Argv:
    def argv(world: World, tmp: Path) -> list[str]:
        folder = run_dir(world, tmp) if run_dir else tmp / "run"
        return ["train", str(world.recipe), "--stage", "teacher", "--run-dir", str(folder), *extra]
    return argv


def _copied_run(world: World, tmp: Path) -> Path:
    return Path(shutil.copytree(world.trained, tmp / "run"))


def _unchanged(world: World, tmp: Path, output: str) -> None:
    for name in ("recipe.yaml", "env.json", "teacher/last.pt", "teacher/best.pt"):
        assert (tmp / "run" / name).read_bytes() == (world.trained / name).read_bytes(), name


case("train-output-dir-is-a-file", "training",
     lambda world, tmp: ["train", str(world.recipe), "--stage", "teacher", "--set", f"train.output_dir={write(tmp / 'f', 'x')}"],
     r"f is a file, not a folder")
case("train-run-dir-under-a-file", "training", _train(run_dir=lambda w, t: Path(write(t / "f", "x")) / "run"),
     r"f is a file, not a folder")
case("train-run-dir-is-a-file", "training", _train(run_dir=lambda w, t: Path(write(t / "f", "x"))), r"is a file, not a folder")
case("train-lr-inf", "training", _train("--set", "teacher.optim.lr=.inf"), r"teacher.optim.lr.*finite",
     check=lambda w, t, o: None if not (t / "run").exists() else (_ for _ in ()).throw(AssertionError("run folder made")))
case("train-student-without-teacher", "training",
     lambda world, tmp: ["train", str(world.recipe), "--stage", "student", "--run-dir", str(tmp / "run")],
     r"needs a teacher checkpoint.*teacher/best.pt does not exist",
     check=lambda w, t, o: None if not (t / "run" / "recipe.yaml").exists() else (_ for _ in ()).throw(AssertionError("recipe.yaml written")))
case("train-teacher-missing", "training",
     lambda world, tmp: ["train", str(world.recipe), "--stage", "student", "--teacher", str(tmp / "nope.pt"),
                         "--run-dir", str(tmp / "run")], r"--teacher .*nope.pt does not exist")
case("train-teacher-is-a-student", "training",
     lambda world, tmp: ["train", str(world.recipe), "--stage", "student", "--teacher", str(world.checkpoint),
                         "--run-dir", str(tmp / "run"), "--set", "model.backbone.depth=1"],
     r"(holds a student, not a teacher|does not match)")
case("train-teacher-nan", "training",
     lambda world, tmp: ["train", str(world.recipe), "--stage", "student", "--run-dir", str(tmp / "run"),
                         "--teacher", str(write_checkpoint(tmp / "t.pt", _poison(float("nan")), kind="teacher"))],
     r"t.pt: \d+ of \d+ tensors hold NaN or inf")
case("train-pretrained-missing", "training", _train("--set", "model.pretrained=/nowhere/ostrack.pth"),
     r"model.pretrained: /nowhere/ostrack.pth does not exist")
case("train-pretrained-random-bytes", "training",
     lambda world, tmp: _train("--set", f"model.pretrained={write(tmp / 'p.pth', np.random.default_rng(1).bytes(999))}")(world, tmp),
     r"p.pth.*not a readable PyTorch checkpoint")
case("train-pretrained-nan", "training",
     lambda world, tmp: _train("--set", f"model.pretrained={write_checkpoint(tmp / 'p.pth', _poison(float('nan')))}")(world, tmp),
     r"p.pth: \d+ of \d+ tensors hold NaN or inf")
case("train-data-root-missing", "training",
     _train("--set", "data.train=[{name: lasher, root: /nowhere/LasHeR}]"),
     r"/nowhere/LasHeR does not exist")
case("train-fresh-over-a-run", "training", _train(run_dir=_copied_run), r"already holds a run; pass --resume",
     check=_unchanged)
case("train-resume-from-best", "training",
     _train("--resume", run_dir=lambda w, t: (_copied_run(w, t), shutil.copy(t / "run/teacher/best.pt", t / "run/teacher/last.pt"))[0]),
     r"last.pt cannot be resumed from: it holds no optimizer")
case("train-resume-random-bytes", "training",
     _train("--resume", run_dir=lambda w, t: (_copied_run(w, t), write(t / "run/teacher/last.pt", b"\x00" * 64))[0]),
     r"last.pt: not a readable PyTorch checkpoint")
case("train-resume-other-model", "training",
     _train("--resume", "--set", "model.head_channels=8", run_dir=_copied_run), r"different model configuration",
     check=_unchanged)


def _locked_run(world: World, tmp: Path) -> Path:
    folder = tmp / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, sys, time
        handle = open({str(folder / '.lock')!r}, 'a+')
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        handle.write('31337'); handle.flush()
        print('locked', flush=True)
        time.sleep(120)  # ends by itself should the case fail before killing it
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    _HOLDERS.append(holder)
    return folder


_HOLDERS: list[subprocess.Popen] = []


def _nothing_but_the_lock(world: World, tmp: Path, output: str) -> None:
    """Nothing was written by the refused run; and once the holder dies (a crash: kill -9),
    its lock goes with it and the same command trains."""
    from mmtrack_kd.cli import main

    assert sorted(p.name for p in (tmp / "run").iterdir()) == [".lock"]
    for holder in _HOLDERS:
        holder.kill()
        holder.wait()
    _HOLDERS.clear()
    assert main(["train", str(world.recipe), "--stage", "teacher", "--run-dir", str(tmp / "run")]) == 0
    assert (tmp / "run" / "teacher" / "last.pt").is_file()


case("train-run-folder-locked", "concurrency", _train(run_dir=_locked_run),
     r"run folder .*run is in use by another `mmtrack-kd train` \(process 31337\)", check=_nothing_but_the_lock)


# --------------------------------------------------------------------------- the command line itself

case("cli-no-command", "command line", lambda world, tmp: [], r"required: COMMAND|the following arguments are required")
case("cli-unknown-command", "command line", lambda world, tmp: ["trian"], r"invalid choice: 'trian'")
case("cli-unknown-option", "command line", lambda world, tmp: ["evaluate", "--frobnicate"], r"unrecognized arguments: --frobnicate")
case("cli-evaluate-without-target", "command line", lambda world, tmp: ["evaluate"], r"evaluate needs a run folder or checkpoint")
case("cli-evaluate-unknown-dataset", "command line",
     lambda world, tmp: ["evaluate", str(world.checkpoint), "--datasets", "lashr", "--device", "cpu"], r"lashr")
case("cli-evaluate-dataset-root-missing", "command line",
     lambda world, tmp: ["evaluate", str(world.checkpoint), "--datasets", "lasher", "--root", str(tmp / "none"), "--device", "cpu"],
     r"none does not exist")
case("cli-evaluate-keep-ratio-out-of-range", "command line",
     lambda world, tmp: ["evaluate", str(world.checkpoint), "--keep-ratio", "2", "--datasets", "lasher"], r"keep ratio 2")
case("cli-evaluate-out-under-a-file", "command line",
     lambda world, tmp: ["evaluate", str(world.checkpoint), "--datasets", "lasher", "--root", str(world.data), "--device",
                         "cpu", "--out", str(Path(write(tmp / "file", "x")) / "eval"), "--no-plots"],
     r"file.*(Not a directory|in the way)")
case("cli-benchmark-without-recipe", "command line", lambda world, tmp: ["benchmark", "--what", "speed"],
     r"--what speed` needs --recipe")
case("cli-benchmark-bad-models", "command line",
     lambda world, tmp: ["benchmark", "--what", "speed", "--recipe", str(world.recipe), "--models", "teachr"],
     r"--models 'teachr'")
case("cli-benchmark-json-under-a-file", "command line",
     lambda world, tmp: ["benchmark", "--what", "params", "--recipe", str(world.recipe), "--json",
                         str(Path(write(tmp / "file", "x")) / "out.json")], r"file")
case("cli-train-recipe-missing", "command line", lambda world, tmp: ["train", str(tmp / "none.yaml")], r"none.yaml.*cannot read")
