"""The command line: exit codes, readable errors, recipe commands, plugin listing."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest
import torch

from mmtrack_kd import hookimpl
from mmtrack_kd.cli import build_parser, cmd_train, main
from mmtrack_kd.errors import PluginError
from mmtrack_kd.plugins import default_registry, load_registry

REPO = Path(__file__).resolve().parents[1]

TOY_RECIPE = """
modality: {name: toy-thermal, bits: 16}
data:
  train: [{name: toy-data, root: /data/toy}]
model:
  backbone: {depth: 2, embed_dim: 64, num_heads: 4}
"""


@pytest.fixture
def toy_plugins(make_distribution, monkeypatch):
    """Only the toy plugins (tests/recipe_plugins.py), discovered through an entry point."""
    make_distribution("toy-plugins", "0.1", {"toy": "tests.recipe_plugins"}, {})
    monkeypatch.setenv("MMTRACK_KD_PLUGINS", "toy")
    default_registry.cache_clear()
    yield
    default_registry.cache_clear()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmtrack_kd", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_version_and_module_entry():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mmtrack-kd {metadata.version('mmtrack-kd')}"


def test_recipe_error_is_one_block_without_traceback(tmp_path, make_distribution):
    site = make_distribution("toy-plugins", "0.1", {"toy": "tests.recipe_plugins"}, {})
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(TOY_RECIPE.replace("bits: 16", "bits: 12") + "trian: {}\n")
    env = {"MMTRACK_KD_PLUGINS": "toy", "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    result = run_cli("recipe", "check", str(recipe), "--set", "model.backbone.depth=two", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "3 problems" in result.stderr
    for path in ("modality.bits", "model.backbone.depth", "trian"):
        assert path in result.stderr


def test_recipe_check_and_show(tmp_path, toy_plugins, capsys):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY_RECIPE)
    assert main(["recipe", "check", str(recipe)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["recipe", "show", str(recipe), "--set", "teacher.optim.lr=1e-4"]) == 0
    shown = capsys.readouterr().out
    assert "lr: 0.0001" in shown
    assert "name: toy\n" in shown  # the run name defaults to the file's stem
    assert "gain: 1.0" in shown  # the plugin's option defaults are filled in


def test_unknown_plugin_in_recipe_exits_2(tmp_path, toy_plugins, capsys):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY_RECIPE.replace("toy-data", "lashr"))
    assert main(["recipe", "check", str(recipe)]) == 2
    assert "data.train.0.name" in capsys.readouterr().err


BUILTIN_PLUGINS = {"rgb", "thermal", "depth", "event", "lasher", "rgbt234", "rgbt210", "gtot", "vtuav",
                   "depthtrack", "visevent", "folder", "synthetic", "protocols"}


def test_plugins_lists_every_installed_builtin(capsys, monkeypatch):
    monkeypatch.delenv("MMTRACK_KD_PLUGINS", raising=False)
    builtin = [ep.name for ep in metadata.entry_points(group="mmtrack_kd") if ep.dist and ep.dist.name == "mmtrack-kd"]
    # every built-in arrives through the entry-point group (none is imported by name)
    assert set(builtin) == BUILTIN_PLUGINS
    status = main(["plugins"])
    out = capsys.readouterr().out
    assert status == 0, out
    for name in builtin:
        assert name in out
    registry = default_registry()
    for name in builtin:
        info = next(info for info in registry.plugins if info.name == name)
        assert info.distribution == "mmtrack-kd" and not info.error and info.registers


@pytest.mark.slow
def test_unusable_device_is_one_message(tmp_path):
    """--device names a device this machine lacks, or none at all: one message, exit 2."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_cli("benchmark", "--what", "speed", "--recipe", "recipes/demo-rgbt.yaml", "--device", "cuda")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "--device is cuda but no CUDA device is available" in result.stderr


def test_synth_option_errors_name_the_flag(tmp_path):
    result = run_cli("synth", "--root", str(tmp_path / "data"), "--frames", "1", "--workers", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "--frames" in result.stderr and "--workers" in result.stderr
    assert not (tmp_path / "data").exists()


def test_unknown_benchmark_model_is_one_message(capsys):
    assert main(["benchmark", "--what", "speed", "--recipe", "recipes/demo-rgbt.yaml",
                 "--models", "student,studnet"]) == 2
    err = capsys.readouterr().err
    assert "--models 'student,studnet': studnet is not one of teacher, student, student_ce, baseline" in err


# --------------------------------------------------------------------------- plugin commands

HELLO_PLUGIN = """
from mmtrack_kd import hookimpl
from mmtrack_kd.data import DataError


def add_arguments(parser):
    parser.add_argument("--name", required=True)


def run(args):
    if args.name == "nobody":
        raise DataError("there is nobody to greet")
    print(f"hello {args.name}")


@hookimpl
def mmtrack_kd_register_commands(register):
    register("hello", add_arguments, run, help="greet someone")
"""


@pytest.fixture
def hello_plugin(make_distribution, monkeypatch):
    """A third-party package whose plugin brings the command ``mmtrack-kd hello``."""
    make_distribution("mmtrack-kd-hello", "1.0", {"hello": "hello_plugin"}, {"hello_plugin": HELLO_PLUGIN})
    monkeypatch.setenv("MMTRACK_KD_PLUGINS", "hello")
    default_registry.cache_clear()
    yield
    default_registry.cache_clear()


def test_a_third_party_plugin_brings_a_command_that_runs(hello_plugin, capsys):
    assert main(["hello", "--name", "world"]) == 0
    assert capsys.readouterr().out == "hello world\n"
    # its user errors get the command line's one-message handling
    assert main(["hello", "--name", "nobody"]) == 2
    err = capsys.readouterr().err
    assert "error: there is nobody to greet" in err and "Traceback" not in err
    # and `plugins` says which plugin provides it
    assert main(["plugins"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "mmtrack-kd-hello" in line)
    assert "hello" in row and "command hello" in row


def test_a_plugin_command_cannot_replace_a_builtin_one(caplog):
    @hookimpl
    def mmtrack_kd_register_commands(register):
        register("train", lambda parser: None, lambda args: 0)

    plugin = types.SimpleNamespace(mmtrack_kd_register_commands=mmtrack_kd_register_commands)
    parser = build_parser(load_registry(only=[], extra_plugins=[("rogue", plugin)]))
    assert parser.parse_args(["train", "recipe.yaml"]).handler is cmd_train
    assert "plugin rogue" in caplog.text and "command 'train' left out" in caplog.text


def test_a_command_whose_flags_fail_to_build_says_so_when_run(caplog, capsys):
    def add_arguments(parser):
        raise RuntimeError("flags broken")

    @hookimpl
    def mmtrack_kd_register_commands(register):
        register("broken", add_arguments, lambda args: 0)

    plugin = types.SimpleNamespace(mmtrack_kd_register_commands=mmtrack_kd_register_commands)
    args = build_parser(load_registry(only=[], extra_plugins=[("shaky", plugin)])).parse_args(["broken"])
    assert "flags broken" in caplog.text
    with pytest.raises(PluginError, match="command 'broken' of plugin shaky .* could not be set up: "
                                          "RuntimeError: flags broken"):
        args.handler(args)
