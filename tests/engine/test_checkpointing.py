"""A stage's last.pt and best.pt: never a non-finite one, a kill between them, resume refusals."""

from __future__ import annotations

import shutil

import pytest
import torch

from mmtrack_kd.checkpoints import RunCheckpoint
from mmtrack_kd.engine.run import train
from mmtrack_kd.engine.stages import unwrap
from mmtrack_kd.engine.trainer import StageTrainer, TrainingStopped
from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.recipe import validate_recipe

from .conftest import recipe_data


class _Killed(BaseException):
    """Stands for kill -9: nothing after it runs, no handler saves anything."""


@pytest.mark.slow
def test_a_kill_between_best_and_last_is_recovered_on_resume(synthetic_root, tmp_path, monkeypatch):
    """Whichever checkpoint of the epoch's pair is written first, a kill right after it must
    leave a run whose resume ends with the uninterrupted run's best.pt and last.pt."""
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1}))
    straight = train(recipe, stage="teacher", run_dir=tmp_path / "straight")
    original = StageTrainer.save

    def killed_after_the_first_of_the_pair(self, name, *args, **kwargs):
        path = original(self, name, *args, **kwargs)
        if self.progress.epoch == 1 and not self.progress.finished:
            raise _Killed
        return path

    monkeypatch.setattr(StageTrainer, "save", killed_after_the_first_of_the_pair)
    with pytest.raises(_Killed):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    monkeypatch.undo()
    train(recipe, stage="teacher", run_dir=tmp_path / "run", resume=True)
    for name in ("best.pt", "last.pt"):
        expected = RunCheckpoint.read(straight / "teacher" / name)
        got = RunCheckpoint.read(tmp_path / "run" / "teacher" / name)
        assert expected.progress == got.progress, name
        for key in expected.model:
            assert torch.equal(expected.model[key], got.model[key]), (name, key)


@pytest.mark.slow
def test_weights_that_turn_non_finite_are_never_saved_as_the_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch):
    """The loss of the update that breaks the weights is still finite; the checkpoint after it
    is refused, and the one named as last good holds finite tensors only."""
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    original = StageTrainer.update

    def poisoning_update(self):
        original(self)
        if self.progress.update == 3:
            with torch.no_grad():
                next(unwrap_model(self).parameters()).fill_(float("inf"))

    def unwrap_model(trainer):
        return unwrap(trainer.model)

    monkeypatch.setattr(StageTrainer, "update", poisoning_update)
    with pytest.raises(TrainingStopped) as error:
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    message = str(error.value)
    last = tmp_path / "run" / "teacher" / "last.pt"
    assert "non-finite" in message and f"Last good checkpoint: {last}" in message
    state = RunCheckpoint.read(last)
    assert state.progress.update == 2
    assert all(torch.isfinite(value).all() for value in state.model.values() if value.is_floating_point())

@pytest.mark.slow
def test_resume_from_a_weights_only_checkpoint_is_a_clear_error(synthetic_root, tmp_path):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1}))
    run = train(recipe, stage="teacher", run_dir=tmp_path / "run")
    shutil.copy(run / "teacher" / "best.pt", run / "teacher" / "last.pt")
    with pytest.raises(MmtrackError, match=r"last.pt cannot be resumed from: it holds no optimizer"):
        train(recipe, stage="teacher", run_dir=run, resume=True)
