"""The training loop on a tiny synthetic RGB-T benchmark: learning, resume, NaN, errors, DDP."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from mmtrack_kd.checkpoints import RunCheckpoint
from mmtrack_kd.engine.losses import TrackingLoss
from mmtrack_kd.engine.run import train
from mmtrack_kd.engine.trainer import StageTrainer, TrainingStopped, to_device
from mmtrack_kd.errors import DataError, MmtrackError, RecipeError
from mmtrack_kd.recipe import validate_recipe
from mmtrack_kd.runtime.distributed import DistributedContext

from .conftest import recipe_data, weights


@pytest.mark.slow
def test_a_few_updates_lower_the_loss_for_teacher_and_student(synthetic_root, tmp_path):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    folder = train(recipe, stage="teacher", run_dir=tmp_path / "run")
    teacher_path = folder / "teacher" / "best.pt"
    for stage in ("teacher", "student"):
        trainer = StageTrainer(recipe, stage, tmp_path / f"overfit-{stage}", DistributedContext(),
                               teacher_checkpoint=teacher_path if stage == "student" else None)
        trainer.build()
        samples = [trainer.train_set[index] for index in range(4)]
        batch = to_device(torch.utils.data.default_collate(samples), trainer.ctx.device)
        trainer.model.train()
        first = trainer.forward_loss(batch, None)[0].detach()
        for _ in range(12):
            loss, terms = trainer.forward_loss(batch, None)
            loss.backward()
            trainer.update()
        last, terms = trainer.forward_loss(batch, None)
        last = last.detach()
        assert float(last) < 0.7 * float(first), (stage, float(first), float(last), terms)
        if stage == "student":
            assert terms["feature"] > 0 and terms["response"] > 0


@pytest.mark.slow
def test_resume_after_interruption_gives_bit_identical_weights(synthetic_root, tmp_path, monkeypatch):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    straight = train(recipe, stage="teacher", run_dir=tmp_path / "straight")

    original = StageTrainer.update

    def interrupt_after_update_5(self):
        original(self)
        if self.progress.update == 5:  # mid-way through the second epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(StageTrainer, "update", interrupt_after_update_5)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, stage="teacher", run_dir=tmp_path / "resumed")
    saved = RunCheckpoint.read(tmp_path / "resumed" / "teacher" / "last.pt").progress
    assert saved.update == 5 and saved.epoch == 1
    assert not saved.finished
    monkeypatch.setattr(StageTrainer, "update", original)
    train(recipe, stage="teacher", run_dir=tmp_path / "resumed", resume=True)

    expected = weights(straight / "teacher" / "last.pt")
    got = weights(tmp_path / "resumed" / "teacher" / "last.pt")
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert RunCheckpoint.read(tmp_path / "resumed" / "teacher" / "last.pt").progress.finished


def test_a_second_run_in_the_same_folder_needs_resume(synthetic_root, tmp_path):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1}))
    train(recipe, stage="teacher", run_dir=tmp_path / "run")
    with pytest.raises(MmtrackError, match="pass --resume"):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")


def test_non_finite_loss_stops_the_run_and_names_the_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    original = TrackingLoss.forward
    calls = {"count": 0}

    def poisoned(self, outputs, targets):
        total, terms = original(self, outputs, targets)
        calls["count"] += 1
        if calls["count"] == 4:  # after two checkpoints of good updates
            return total * float("nan"), {**terms, "giou": float("nan")}
        return total, terms

    monkeypatch.setattr(TrackingLoss, "forward", poisoned)
    with pytest.raises(TrainingStopped) as error:
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    message = str(error.value)
    assert "non-finite loss at epoch 1, update 4" in message
    assert "giou=nan" in message
    last = tmp_path / "run" / "teacher" / "last.pt"
    assert str(last) in message
    assert RunCheckpoint.read(last).progress.update == 2  # the good state, not the diverged one


def test_missing_dataset_root_says_where_the_data_goes(tmp_path):
    data = recipe_data(tmp_path / "nowhere", tmp_path)
    data["data"]["train"] = [{"name": "lasher", "root": str(tmp_path / "LasHeR")}]
    data["data"]["val"] = []
    with pytest.raises(DataError, match=r"LasHeR does not exist.*MMTRACK_KD_LASHER_ROOT"):
        train(validate_recipe(data), stage="teacher", run_dir=tmp_path / "run")


def test_missing_pretrained_checkpoint_is_named_before_training(synthetic_root, tmp_path):
    data = recipe_data(synthetic_root, tmp_path, **{"model.pretrained": str(tmp_path / "OSTrack.pth.tar")})
    with pytest.raises(MmtrackError, match=r"model.pretrained: .*OSTrack.pth.tar does not exist"):
        train(validate_recipe(data), stage="teacher", run_dir=tmp_path / "run")


def test_student_stage_without_teacher_checkpoint_is_an_error(synthetic_root, tmp_path):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    with pytest.raises(MmtrackError, match="run the teacher stage first"):
        train(recipe, stage="student", run_dir=tmp_path / "run")


def test_batch_must_divide_by_world_and_accumulation(synthetic_root, tmp_path):
    # the recipe refuses it at its key (train.processes x accumulate)...
    with pytest.raises(RecipeError, match=r"teacher.optim.batch_size.*train.processes 1 x teacher.optim.accumulate 3"):
        validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.accumulate": 3}))
    # ...and the trainer, for an outer torchrun whose process count is not the recipe's
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    batch = recipe.teacher.optim.batch_size
    with pytest.raises(MmtrackError, match=f"not divisible by world size {batch + 1} x accumulate 1"):
        StageTrainer(recipe, "teacher", tmp_path / "run", DistributedContext(world_size=batch + 1))


@pytest.mark.slow
def test_fost_and_single_modality_students_run_without_a_teacher(synthetic_root, tmp_path):
    fost = recipe_data(synthetic_root, tmp_path, **{"distill.feature.weight": 0,
                                                     "distill.response.weight": 0,
                                                     "student.init": "none"})
    folder = train(validate_recipe(fost), stage="student", run_dir=tmp_path / "fost")
    assert (folder / "student" / "best.pt").is_file()
    baseline = recipe_data(synthetic_root, tmp_path, **{"student.single_modality": True,
                                                         "student.init": "none"})
    folder = train(validate_recipe(baseline), stage="student", run_dir=tmp_path / "rgb")
    saved = RunCheckpoint.read(folder / "student" / "last.pt")
    assert saved.model_config["num_modalities"] == 1
    assert [entry.name for entry in saved.modalities] == ["rgb"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_run_equals_one_process_with_the_same_global_batch(synthetic_root, tmp_path):
    """torchrun with 2 CPU processes against one process accumulating the same 2 micro-batches.

    Each process's micro-batch is exactly one of the single process's accumulation steps, so the
    head's batch-norm sees the same batch statistics in both runs; only its running statistics
    differ (DDP keeps rank 0's), so parameters are compared, not batch-norm buffers."""
    data = recipe_data(synthetic_root, tmp_path, **{"model.backbone.drop_path": 0.0})
    single = copy.deepcopy(data)
    single["teacher"]["optim"]["accumulate"] = 2
    recipe_single = validate_recipe(single)
    train(recipe_single, stage="teacher", run_dir=tmp_path / "one")

    recipe_file = tmp_path / "two.yaml"
    recipe_file.write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", str(_free_port()), "-m", "mmtrack_kd", "train", str(recipe_file),
               "--stage", "teacher", "--run-dir", str(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]

    one = weights(tmp_path / "one" / "teacher" / "last.pt")
    two = weights(tmp_path / "two" / "teacher" / "last.pt")
    for key in one:
        if "running_" in key or "num_batches_tracked" in key:
            continue
        # A conv bias right before batch-norm has a true gradient of zero (the norm subtracts
        # it again); Adam turns the rounding noise of that zero into steps of up to lr, so those
        # few biases agree only to about lr * updates.
        before_norm = key.startswith("box_head.conv") and key.endswith(".0.bias")
        tolerance = 1e-4 if before_norm else 1e-5
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=tolerance, msg=key)

    # The same command again without --resume: every rank refuses (none is left waiting for
    # rank 0 in a collective until the process-group timeout).
    command[command.index("--master-port") + 1] = str(_free_port())
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode != 0 and "pass --resume" in again.stderr, again.stderr[-3000:]
    # rank 0 says why once; rank 1 learns of it before DistributedDataParallel's set-up and
    # stops quietly instead of crashing there when rank 0 exits (torchrun's own summary of the
    # failed processes follows, as torchrun prints it)
    assert again.stderr.count("pass --resume") == 1, again.stderr[-3000:]
    assert "[rank1]: Traceback" not in again.stderr, again.stderr[-3000:]

    # `train.processes: 2` in the recipe: `mmtrack-kd train` starts the two processes itself and
    # trains exactly what the torchrun command line trained.
    launched = [sys.executable, "-m", "mmtrack_kd", "train", str(recipe_file), "--stage", "teacher",
                "--run-dir", str(tmp_path / "self"), "--set", "train.processes=2"]
    result = subprocess.run(launched, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "training in 2 processes" in said and said.count("checkpoints and metrics in") == 1
    self_launched = weights(tmp_path / "self" / "teacher" / "last.pt")
    assert self_launched.keys() == two.keys()
    for key in two:
        assert torch.equal(self_launched[key], two[key]), key
    # A process that refuses says why in one line, and the launcher names it: no traceback.
    again = subprocess.run(launched, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode != 0, again.stderr[-3000:]
    assert again.stderr.count("pass --resume") == 1 and "training stopped: process" in again.stderr, again.stderr[-3000:]
    assert "Traceback" not in again.stderr, again.stderr[-3000:]

@pytest.mark.slow
def test_a_refused_run_leaves_the_run_folder_as_it_was(synthetic_root, tmp_path):
    """A fresh start over an existing run, or a --resume that does not fit, is refused before
    recipe.yaml and env.json are touched."""
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1}))
    run = train(recipe, stage="teacher", run_dir=tmp_path / "run")
    before = {name: (run / name).read_bytes() for name in ("recipe.yaml", "env.json")}
    other = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1,
                                                                     "model.head_channels": 16}))
    with pytest.raises(MmtrackError, match="pass --resume"):
        train(other, stage="teacher", run_dir=run)
    with pytest.raises(MmtrackError, match="different model configuration"):
        train(other, stage="teacher", run_dir=run, resume=True)
    assert {name: (run / name).read_bytes() for name in before} == before

def test_an_output_dir_that_is_a_file_is_a_clear_error(synthetic_root, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path / "file"))
    with pytest.raises(MmtrackError, match=r"is a file, not a folder"):
        train(recipe, stage="teacher")


@pytest.mark.slow
def test_ctrl_c_stops_self_launched_processes_with_last_pt_saved_and_resume_continues(synthetic_root, tmp_path):
    """Ctrl-C in a terminal signals the launcher and its processes together: each saves or
    stops, the launcher says how to continue, and --resume continues from the saved update."""
    import signal
    import time

    data = recipe_data(synthetic_root, tmp_path, **{"teacher.optim.samples_per_epoch": 40000,
                                                     "train.processes": 2})
    recipe_file = tmp_path / "long.yaml"
    recipe_file.write_text(yaml.safe_dump(data))
    command = [sys.executable, "-m", "mmtrack_kd", "train", str(recipe_file), "--stage", "teacher",
               "--run-dir", str(tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last = tmp_path / "run" / "teacher" / "last.pt"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not last.is_file() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert last.is_file(), "no checkpoint within 120 s"
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0, output[-3000:]
    assert "continue with --resume" in output and "mmtrack-kd train ... --resume` continues it" in output
    assert "Traceback" not in output, output[-3000:]
    saved = RunCheckpoint.read(last).progress.update
    assert 0 < saved < 10000

    resumed = subprocess.Popen(command + ["--resume"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while RunCheckpoint.read(last).progress.update <= saved and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(resumed.pid, signal.SIGINT)
    output, _ = resumed.communicate(timeout=120)
    assert f"at epoch 0, update {saved}" in " ".join(output.split()), output[-3000:]
    assert RunCheckpoint.read(last).progress.update > saved
