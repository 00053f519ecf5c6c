"""Cooperative stops: a signal at any point saves the last update and resumes bit-identically."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import mmtrack_kd.engine.trainer as trainer_module
from mmtrack_kd.checkpoints import RunCheckpoint
from mmtrack_kd.engine.run import train
from mmtrack_kd.engine.trainer import StageTrainer
from mmtrack_kd.recipe import validate_recipe

from .conftest import recipe_data, weights


@pytest.mark.slow
def test_sigterm_stops_at_the_next_micro_batch_and_saves_the_last_update(synthetic_root, tmp_path, monkeypatch):
    """In-process and deterministic: a SIGTERM arriving right after update 3 stops the run before
    the next micro-batch's backward; last.pt holds update 3, and the handlers are restored."""

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 50}))
    original = StageTrainer.update

    def signal_after_update_3(self):
        original(self)
        if self.progress.update == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(StageTrainer, "update", signal_after_update_3)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    saved = RunCheckpoint.read(tmp_path / "run" / "teacher" / "last.pt").progress
    assert saved.update == 3 and not saved.finished
    assert saved.samples == 3 * 4 and saved.batch_in_epoch == 3


@pytest.mark.slow
def test_a_signal_during_the_final_save_stops_before_the_next_stage(synthetic_root, tmp_path, monkeypatch):
    """Too late to stop the teacher (it finishes and is saved), but the run stops there: the
    student stage does not start."""

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    original = StageTrainer.save

    def signal_during_the_final_save(self, name, *args, **kwargs):
        path = original(self, name, *args, **kwargs)
        if self.stage == "teacher" and self.progress.finished:
            os.kill(os.getpid(), signal.SIGTERM)
        return path

    monkeypatch.setattr(StageTrainer, "save", signal_during_the_final_save)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, run_dir=tmp_path / "run")
    assert RunCheckpoint.read(tmp_path / "run" / "teacher" / "last.pt").progress.finished
    assert not (tmp_path / "run" / "student").exists()


@pytest.mark.slow
def test_a_signal_during_validation_stops_there_with_the_last_update(synthetic_root, tmp_path, monkeypatch):
    """Validation is not waited out: the stop comes at its next batch, and last.pt holds the
    epoch's last update (not finished; a resume validates and goes on)."""

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))  # teacher: 2 epochs x 4 updates
    original = StageTrainer.validate

    def signal_while_validating(self):
        if self.progress.update == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self)

    monkeypatch.setattr(StageTrainer, "validate", signal_while_validating)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    saved = RunCheckpoint.read(tmp_path / "run" / "teacher" / "last.pt").progress
    assert saved.update == 4 and saved.epoch == 0 and not saved.finished
    monkeypatch.setattr(StageTrainer, "validate", original)
    train(recipe, stage="teacher", run_dir=tmp_path / "run", resume=True)
    assert RunCheckpoint.read(tmp_path / "run" / "teacher" / "last.pt").progress.update == 8


def test_a_second_signal_stops_at_once_and_keeps_the_saved_checkpoint(synthetic_root, tmp_path, monkeypatch):
    """The second signal may land inside an update, so nothing is saved then: last.pt stays the
    one written at the last checkpoint (checkpoint_every: 2 updates)."""

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 50}))
    original = StageTrainer.update

    def two_signals_in_update_3(self):
        if self.progress.update == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # asks to stop at the next micro-batch ...
            os.kill(os.getpid(), signal.SIGTERM)  # ... and this one stops here, mid-update
        original(self)

    monkeypatch.setattr(StageTrainer, "update", two_signals_in_update_3)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    saved = RunCheckpoint.read(tmp_path / "run" / "teacher" / "last.pt").progress
    assert saved.update == 2 and not saved.finished


@pytest.mark.slow
@pytest.mark.parametrize("signal_name, to_group", [("SIGTERM", False), ("SIGTERM", True), ("SIGINT", True)],
                         ids=["sigterm-main-process", "sigterm-process-group", "ctrl-c-process-group"])
def test_sigterm_with_loader_workers_saves_and_exits_cleanly(synthetic_root, tmp_path, signal_name, to_group):
    """SIGTERM to the main process, or to the whole process group as a cluster's pre-emption
    sends it, or Ctrl-C in a terminal (SIGINT to the group; the DataLoader workers get these
    too): the run saves last.pt at the last completed update and exits with status 130 and one
    message, no traceback. Epochs are short here, so
    workers are forked often and the signal often arrives while one starts (a signal raised
    there used to be swallowed by logging's at-fork hook)."""

    data = recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 100000,
                                                     "data.workers": 2})
    recipe_file = tmp_path / "long.yaml"
    recipe_file.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "mmtrack_kd", "train", str(recipe_file), "--stage", "teacher",
         "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=to_group,
    )
    try:
        last = run_dir / "teacher" / "last.pt"
        deadline = time.monotonic() + 120
        while not last.is_file() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert last.is_file(), process.stderr.read() if process.poll() is not None else "no last.pt"
        time.sleep(1.0)
        number = getattr(signal, signal_name)
        if to_group:
            os.killpg(process.pid, number)
        else:
            process.send_signal(number)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert "interrupted" in stderr
    saved = RunCheckpoint.read(last).progress
    assert saved.update >= 2 and not saved.finished
    assert saved.samples == saved.update * 4

# -- signals at any point resume bit-identically; the run folder is never lost --------------

_STRAIGHT: dict[int, Path] = {}


def _straight_run(recipe, root: Path, accumulate: int) -> Path:
    """The uninterrupted teacher run of ``recipe`` (made once per accumulation setting)."""
    if accumulate not in _STRAIGHT:
        _STRAIGHT[accumulate] = train(recipe, stage="teacher", run_dir=root / f"straight-{accumulate}")
    return _STRAIGHT[accumulate]


def _full_state(path: Path) -> dict[str, torch.Tensor]:
    """Weights, buffers (BatchNorm statistics and counters) and optimiser state of a checkpoint."""
    state = RunCheckpoint.read(path)
    out = {f"model.{key}": value for key, value in state.model.items()}
    for index, values in state.optimizer["state"].items():
        out.update({f"optimizer.{index}.{key}": value for key, value in values.items()
                    if isinstance(value, torch.Tensor)})
    return out


def assert_same_state(expected: Path, got: Path) -> None:
    a, b = _full_state(expected), _full_state(got)
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, different[:5]


@pytest.mark.slow
@pytest.mark.parametrize("point, accumulate", [
    ("before_forward", 1), ("after_forward", 1), ("after_forward", 2), ("during_validation", 1),
    ("during_update", 2),
])
def test_a_signal_at_any_point_resumes_bit_identically(synthetic_root, tmp_path_factory, monkeypatch,
                                                       point, accumulate):
    """SIGTERM before a micro-batch's forward, right after it (the BatchNorm statistics have
    moved), in the middle of a gradient accumulation, or during validation: the resumed run ends
    with exactly the weights, BatchNorm buffers and optimiser state of the uninterrupted one."""


    root = tmp_path_factory.getbasetemp() / "signal-points"
    recipe = validate_recipe(recipe_data(synthetic_root, root, **{"teacher.optim.accumulate": accumulate}))
    straight = _straight_run(recipe, root, accumulate)
    run = root / f"{point}-{accumulate}"
    fired = {"done": False}

    def fire(trainer) -> None:
        # mid second epoch, on the first micro-batch of an update when accumulating
        if not fired["done"] and trainer.progress.update == 5 and trainer.progress.batch_in_epoch % accumulate == 0:
            fired["done"] = True
            os.kill(os.getpid(), signal.SIGTERM)

    if point == "before_forward":
        original_move = trainer_module.to_device
        current: dict[str, StageTrainer] = {}
        original_check = StageTrainer._check_stop

        def remember(self):
            current["trainer"] = self
            return original_check(self)

        def moved(batch, device):
            if "trainer" in current:
                fire(current["trainer"])
            return original_move(batch, device)

        monkeypatch.setattr(StageTrainer, "_check_stop", remember)
        monkeypatch.setattr(trainer_module, "to_device", moved)
    elif point in ("after_forward", "during_update"):
        original_forward = StageTrainer.forward_loss

        def forward(self, batch, keep_ratio):
            result = original_forward(self, batch, keep_ratio)
            if point == "after_forward" or self.progress.batch_in_epoch % accumulate == accumulate - 1:
                if point == "during_update":
                    if not fired["done"] and self.progress.update == 5:
                        fired["done"] = True
                        os.kill(os.getpid(), signal.SIGTERM)
                else:
                    fire(self)
            return result

        monkeypatch.setattr(StageTrainer, "forward_loss", forward)
    else:
        original_validate = StageTrainer.validate

        def validate(self):
            if not fired["done"] and self.progress.update == 4:
                fired["done"] = True
                os.kill(os.getpid(), signal.SIGTERM)
            return original_validate(self)

        monkeypatch.setattr(StageTrainer, "validate", validate)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, stage="teacher", run_dir=run)
    assert fired["done"]
    monkeypatch.undo()
    train(recipe, stage="teacher", run_dir=run, resume=True)
    assert_same_state(straight / "teacher" / "last.pt", run / "teacher" / "last.pt")
    best, got = weights(straight / "teacher" / "best.pt"), weights(run / "teacher" / "best.pt")
    assert all(torch.equal(best[key], got[key]) for key in best)


@pytest.mark.slow
def test_a_signal_between_stages_resumes_the_student_bit_identically(synthetic_root, tmp_path, monkeypatch):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1}))
    straight = train(recipe, run_dir=tmp_path / "straight")
    original = StageTrainer.save

    def signal_when_the_teacher_is_done(self, name, *args, **kwargs):
        path = original(self, name, *args, **kwargs)
        if self.stage == "teacher" and self.progress.finished:
            os.kill(os.getpid(), signal.SIGTERM)
        return path

    monkeypatch.setattr(StageTrainer, "save", signal_when_the_teacher_is_done)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, run_dir=tmp_path / "run")
    monkeypatch.undo()
    train(recipe, run_dir=tmp_path / "run", resume=True)
    for stage in ("teacher", "student"):
        assert_same_state(straight / stage / "last.pt", tmp_path / "run" / stage / "last.pt")
