"""The training engine on a tiny synthetic RGB-T benchmark: learning, resume, NaN, errors, DDP."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mmtrack_kd.checkpoints import read_file
from mmtrack_kd.checkpoints import load_model
from mmtrack_kd.data.loader import build_train_dataset
from mmtrack_kd.engine.run import train
from mmtrack_kd.engine.trainer import StageTrainer, TrainingStopped, to_device
from mmtrack_kd.errors import DataError, MmtrackError
from mmtrack_kd.recipe import validate_recipe
from mmtrack_kd.runtime.distributed import DistributedContext

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


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "lasher"
    recipe = validate_recipe(recipe_data(root, root.parent / "runs"))
    recipe.data.train[0].plugin(recipe.data.train[0].options)  # generates on first use
    return root


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_file(path)["model"]


def test_a_few_updates_lower_the_loss_for_teacher_and_student(synthetic_root, tmp_path):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    folder = train(recipe, stage="teacher", run_dir=tmp_path / "run")
    teacher_path = folder / "teacher" / "best.pt"
    for stage in ("teacher", "student"):
        trainer = StageTrainer(recipe, stage, tmp_path / f"overfit-{stage}", DistributedContext(),
                               teacher_checkpoint=teacher_path if stage == "student" else None)
        trainer._build()
        samples = [trainer.train_set[index] for index in range(4)]
        batch = to_device(torch.utils.data.default_collate(samples), trainer.ctx.device)
        trainer.model.train()
        first = trainer._forward_loss(batch, None)[0].detach()
        for _ in range(12):
            loss, terms = trainer._forward_loss(batch, None)
            loss.backward()
            trainer._update()
        last, terms = trainer._forward_loss(batch, None)
        last = last.detach()
        assert float(last) < 0.7 * float(first), (stage, float(first), float(last), terms)
        if stage == "student":
            assert terms["feature"] > 0 and terms["response"] > 0


def test_resume_after_interruption_gives_bit_identical_weights(synthetic_root, tmp_path, monkeypatch):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    straight = train(recipe, stage="teacher", run_dir=tmp_path / "straight")

    original = StageTrainer._update

    def interrupt_after_update_5(self):
        original(self)
        if self.progress.update == 5:  # mid-way through the second epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(StageTrainer, "_update", interrupt_after_update_5)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, stage="teacher", run_dir=tmp_path / "resumed")
    saved = read_file(tmp_path / "resumed" / "teacher" / "last.pt")
    assert saved["progress"]["update"] == 5 and saved["progress"]["epoch"] == 1
    assert not saved["progress"]["finished"]
    monkeypatch.setattr(StageTrainer, "_update", original)
    train(recipe, stage="teacher", run_dir=tmp_path / "resumed", resume=True)

    expected = weights(straight / "teacher" / "last.pt")
    got = weights(tmp_path / "resumed" / "teacher" / "last.pt")
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert read_file(tmp_path / "resumed" / "teacher" / "last.pt")["progress"]["finished"]


def test_a_second_run_in_the_same_folder_needs_resume(synthetic_root, tmp_path):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1}))
    train(recipe, stage="teacher", run_dir=tmp_path / "run")
    with pytest.raises(MmtrackError, match="pass --resume"):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")


def test_non_finite_loss_stops_the_run_and_names_the_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch):
    from mmtrack_kd.engine.losses import TrackingLoss

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
    assert read_file(last)["progress"]["update"] == 2  # the good state, not the diverged one


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
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.accumulate": 3}))
    with pytest.raises(MmtrackError, match="not divisible by world size 1 x accumulate 3"):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")


def test_fost_and_single_modality_students_run_without_a_teacher(synthetic_root, tmp_path):
    fost = recipe_data(synthetic_root, tmp_path, **{"distill.feature.weight": 0,
                                                     "distill.response.weight": 0,
                                                     "student.init": "none"})
    folder = train(validate_recipe(fost), stage="student", run_dir=tmp_path / "fost")
    assert (folder / "student" / "best.pt").is_file()
    baseline = recipe_data(synthetic_root, tmp_path, **{"student.single_modality": True,
                                                         "student.init": "none"})
    folder = train(validate_recipe(baseline), stage="student", run_dir=tmp_path / "rgb")
    saved = read_file(folder / "student" / "last.pt")
    assert saved["model_config"]["num_modalities"] == 1
    assert [entry["name"] for entry in saved["modalities"]] == ["rgb"]


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


def test_sigterm_stops_at_the_next_micro_batch_and_saves_the_last_update(synthetic_root, tmp_path, monkeypatch):
    """In-process and deterministic: a SIGTERM arriving right after update 3 stops the run before
    the next micro-batch's backward; last.pt holds update 3, and the handlers are restored."""
    import signal

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 50}))
    original = StageTrainer._update

    def signal_after_update_3(self):
        original(self)
        if self.progress.update == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(StageTrainer, "_update", signal_after_update_3)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    saved = read_file(tmp_path / "run" / "teacher" / "last.pt")["progress"]
    assert saved["update"] == 3 and not saved["finished"]
    assert saved["samples"] == 3 * 4 and saved["batch_in_epoch"] == 3


def test_a_signal_during_the_final_save_stops_before_the_next_stage(synthetic_root, tmp_path, monkeypatch):
    """Too late to stop the teacher (it finishes and is saved), but the run stops there: the
    student stage does not start."""
    import signal

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
    assert read_file(tmp_path / "run" / "teacher" / "last.pt")["progress"]["finished"]
    assert not (tmp_path / "run" / "student").exists()


def test_a_signal_during_validation_stops_there_with_the_last_update(synthetic_root, tmp_path, monkeypatch):
    """Validation is not waited out: the stop comes at its next batch, and last.pt holds the
    epoch's last update (not finished; a resume validates and goes on)."""
    import signal

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))  # teacher: 2 epochs x 4 updates
    original = StageTrainer.validate

    def signal_while_validating(self):
        if self.progress.update == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self)

    monkeypatch.setattr(StageTrainer, "validate", signal_while_validating)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    saved = read_file(tmp_path / "run" / "teacher" / "last.pt")["progress"]
    assert saved["update"] == 4 and saved["epoch"] == 0 and not saved["finished"]
    monkeypatch.setattr(StageTrainer, "validate", original)
    train(recipe, stage="teacher", run_dir=tmp_path / "run", resume=True)
    assert read_file(tmp_path / "run" / "teacher" / "last.pt")["progress"]["update"] == 8


def test_a_second_signal_stops_at_once_and_keeps_the_saved_checkpoint(synthetic_root, tmp_path, monkeypatch):
    """The second signal may land inside an update, so nothing is saved then: last.pt stays the
    one written at the last checkpoint (checkpoint_every: 2 updates)."""
    import signal

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 50}))
    original = StageTrainer._update

    def two_signals_in_update_3(self):
        if self.progress.update == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # asks to stop at the next micro-batch ...
            os.kill(os.getpid(), signal.SIGTERM)  # ... and this one stops here, mid-update
        original(self)

    monkeypatch.setattr(StageTrainer, "_update", two_signals_in_update_3)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    saved = read_file(tmp_path / "run" / "teacher" / "last.pt")["progress"]
    assert saved["update"] == 2 and not saved["finished"]


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
    import signal
    import time

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
    saved = read_file(last)["progress"]
    assert saved["update"] >= 2 and not saved["finished"]
    assert saved["samples"] == saved["update"] * 4


def test_rgb_only_baseline_takes_an_ostrack_file_whole_or_not_at_all(synthetic_root, tmp_path):
    """The single-modality student is exactly OSTrack: its OSTrack checkpoint loads strictly,
    and a partial one (here without the head) is refused with the file named."""
    from mmtrack_kd.errors import CheckpointError
    from mmtrack_kd.models import build_model

    changes = {"student.single_modality": True, "student.init": "pretrained",
               "distill.feature.weight": 0, "distill.response.weight": 0}
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **changes))
    model = build_model("student", dict(template_size=32, search_size=64, patch_size=16, embed_dim=64,
                                        depth=2, num_heads=4, head_channels=32, num_modalities=1))
    full = {"net": model.state_dict()}
    partial = {"net": {k: v for k, v in model.state_dict().items() if not k.startswith("box_head")}}
    for name, payload in (("full.pth.tar", full), ("partial.pth.tar", partial)):
        torch.save(payload, tmp_path / name)
    with pytest.raises(CheckpointError, match="partial.pth.tar"):
        train(recipe.model_copy(update={"model": recipe.model.model_copy(
            update={"pretrained": tmp_path / "partial.pth.tar"})}), stage="student", run_dir=tmp_path / "a")
    train(recipe.model_copy(update={"model": recipe.model.model_copy(
        update={"pretrained": tmp_path / "full.pth.tar"})}), stage="student", run_dir=tmp_path / "b")
    assert (tmp_path / "b" / "student" / "last.pt").is_file()


def test_recipe_builds_an_mplt_compatible_teacher(synthetic_root, tmp_path):
    from mmtrack_kd.engine.build import model_config

    data = recipe_data(synthetic_root, tmp_path, **{"teacher.prompter": {"mplt_compat": True},
                                                    "model.fusion": "conv"})
    kind, config = model_config(validate_recipe(data), "teacher", 3)
    assert kind == "teacher" and config["mplt_compat"] is True and config["fusion"] == "conv"


def test_candidate_elimination_keep_ratio_ramps_linearly_between_its_epochs(synthetic_root, tmp_path):
    from mmtrack_kd.engine.trainer import keep_ratio_at

    off = validate_recipe(recipe_data(synthetic_root, tmp_path))
    assert keep_ratio_at(off, 0) is None  # elimination off: no keep ratio at all
    ramp = validate_recipe(recipe_data(
        synthetic_root, tmp_path, **{"model.backbone.depth": 4, "student.optim.epochs": 8, "student.candidate_elimination": {
            "enabled": True, "layers": [1, 2], "keep_ratio": 0.6, "ramp_epochs": [2, 6]}}))
    assert [keep_ratio_at(ramp, epoch) for epoch in range(8)] == pytest.approx(
        [1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.6])
    sudden = validate_recipe(recipe_data(
        synthetic_root, tmp_path, **{"model.backbone.depth": 4, "student.optim.epochs": 8, "student.candidate_elimination": {
            "enabled": True, "layers": [1], "keep_ratio": 0.5, "ramp_epochs": [3, 3]}}))
    assert [keep_ratio_at(sudden, epoch) for epoch in (2, 3, 4)] == [1.0, 0.5, 0.5]


def test_data_benchmark_prints_loader_and_step_figures_and_leaves_nothing(synthetic_root, tmp_path,
                                                                           monkeypatch):
    import json
    import tempfile

    from mmtrack_kd.cli import main

    recipe_file = tmp_path / "tiny.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe_data(synthetic_root, tmp_path / "out")))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "data.json"
    assert main(["benchmark", "--what", "data", "--recipe", str(recipe_file), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert [row["workers"] for row in figures["loader"]] == [0]
    assert all(row["samples_per_second"] > 0 for row in figures["loader"])
    assert [row["stage"] for row in figures["steps"]] == ["teacher", "student"]
    assert all(row["seconds_per_step"] > 0 for row in figures["steps"])
    # No run folders left behind (torch's own compile cache may appear there; it is not ours).
    assert [p for p in scratch.iterdir() if not p.name.startswith("torchinductor")] == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "shape, pairs",
    [
        ({"depth": 1}, [(1, 2)]),  # half depth: student block 1 starts from and learns teacher block 2
        ({"fuse_after": 1}, [(1, 1), (2, 2)]),  # block 2 runs on fused tokens
        ({"aux_pool": 2, "depth": 1, "blocks_from": [1]}, [(1, 1)]),
    ],
    ids=["half-depth", "token-fusion", "pooled-aux"],
)
def test_a_shaped_student_starts_from_its_teacher_blocks_and_distils(synthetic_root, tmp_path, shape, pairs):
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"student.shape": shape}))
    folder = train(recipe, stage="teacher", run_dir=tmp_path / "run")
    teacher_path = folder / "teacher" / "best.pt"
    teacher = weights(teacher_path)
    trainer = StageTrainer(recipe, "student", tmp_path / "student", DistributedContext(), teacher_checkpoint=teacher_path)
    trainer._build()
    assert trainer.pairs == pairs
    student = trainer.model.state_dict()
    blocks = recipe.student.shape.resolve_blocks(2)
    for target, source in enumerate(blocks):
        for name in ("attn.qkv.weight", "mlp.fc2.bias", "norm1.weight"):
            assert torch.equal(student[f"backbone.blocks.{target}.{name}"], teacher[f"backbone.blocks.{source - 1}.{name}"])
    samples = [trainer.train_set[index] for index in range(4)]
    batch = to_device(torch.utils.data.default_collate(samples), trainer.ctx.device)
    trainer.model.train()
    loss, terms = trainer._forward_loss(batch, None)
    assert sorted(k for k in terms if k.startswith("feature/")) == [f"feature/layer{s}" for s, _ in pairs]
    assert terms["feature"] > 0 and terms["response"] > 0
    loss.backward()
    trainer._update()
    # the whole stage runs, and the checkpoint rebuilds the shaped student
    folder = train(recipe, stage="student", teacher=teacher_path, run_dir=tmp_path / "run")
    model, info = load_model(folder / "student" / "best.pt")
    assert model.backbone.depth == shape.get("depth", 2)
    assert info.model_config["fuse_after"] == shape.get("fuse_after", 0)
    assert info.model_config["aux_pool"] == shape.get("aux_pool", 1)


def test_a_start_file_that_leaves_undeclared_parts_fresh_is_refused(synthetic_root, tmp_path):
    """A teacher from an OSTrack file may start its prompters and fusion fresh (the stage's
    default); a file that also lacks the head is refused with the missing keys listed, unless
    the recipe declares the head fresh too."""
    from mmtrack_kd.errors import CheckpointError
    from mmtrack_kd.models import build_model

    tiny = dict(template_size=32, search_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=4,
                head_channels=32)
    ostrack = build_model("student", {**tiny, "num_modalities": 1}).state_dict()
    torch.save({"net": ostrack}, tmp_path / "full.pth.tar")
    torch.save({"net": {k: v for k, v in ostrack.items() if not k.startswith("box_head")}},
               tmp_path / "headless.pth.tar")

    def initialise(file: str, **changes) -> None:
        recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"model.pretrained": str(tmp_path / file),
                                                                          **changes}))
        trainer = StageTrainer(recipe, "teacher", tmp_path / "run", DistributedContext())
        trainer._initialise(build_model("teacher", {**tiny, "aux_in_chans": 3}))

    initialise("full.pth.tar")
    with pytest.raises(CheckpointError) as error:
        initialise("headless.pth.tar")
    assert "headless.pth.tar" in str(error.value) and "box_head.conv1_ctr.0.weight" in str(error.value)
    assert "rgb_prompters" not in str(error.value).split("parts declared")[0]
    initialise("headless.pth.tar", **{"teacher.fresh": ["prompters", "fusion", "head"]})
    with pytest.raises(CheckpointError, match="fusion.reduce.weight"):
        initialise("full.pth.tar", **{"teacher.fresh": ["prompters"]})


def test_candidate_elimination_template_range_is_a_recipe_option(synthetic_root, tmp_path):
    from mmtrack_kd.engine.build import model_config
    from mmtrack_kd.models import build_model

    for template_range in ("centre", "all"):
        data = recipe_data(synthetic_root, tmp_path, **{"student.candidate_elimination": {
            "enabled": True, "layers": [0], "ramp_epochs": [0, 1], "template_range": template_range}})
        kind, config = model_config(validate_recipe(data), "student", 3)
        assert config["ce_template_range"] == template_range
        assert build_model(kind, config).config["ce_template_range"] == template_range
    with pytest.raises(MmtrackError, match="template_range"):
        validate_recipe(recipe_data(synthetic_root, tmp_path, **{"student.candidate_elimination": {
            "template_range": "middle"}}))


def test_a_student_initialised_from_its_teacher_is_a_normal_event(synthetic_root, tmp_path, caplog):
    """The teacher's prompters are unused by the student by design: INFO, not a WARNING."""
    import logging

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1}))
    folder = train(recipe, stage="teacher", run_dir=tmp_path / "run")
    trainer = StageTrainer(recipe, "student", tmp_path / "student", DistributedContext(),
                           teacher_checkpoint=folder / "teacher" / "best.pt")
    with caplog.at_level(logging.INFO):
        trainer._build()
    [record] = [r for r in caplog.records if "initialised from" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "unused" in record.getMessage() or "prompt" in record.getMessage()


# -- signals at any point resume bit-identically; the run folder is never lost --------------

_STRAIGHT: dict[int, Path] = {}


def _straight_run(recipe, root: Path, accumulate: int) -> Path:
    """The uninterrupted teacher run of ``recipe`` (made once per accumulation setting)."""
    if accumulate not in _STRAIGHT:
        _STRAIGHT[accumulate] = train(recipe, stage="teacher", run_dir=root / f"straight-{accumulate}")
    return _STRAIGHT[accumulate]


def _full_state(path: Path) -> dict[str, torch.Tensor]:
    """Weights, buffers (BatchNorm statistics and counters) and optimiser state of a checkpoint."""
    state = read_file(path)
    out = {f"model.{key}": value for key, value in state["model"].items()}
    for index, values in state["optimizer"]["state"].items():
        out.update({f"optimizer.{index}.{key}": value for key, value in values.items()
                    if isinstance(value, torch.Tensor)})
    return out


def assert_same_state(expected: Path, got: Path) -> None:
    a, b = _full_state(expected), _full_state(got)
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, different[:5]


@pytest.mark.parametrize("point, accumulate", [
    ("before_forward", 1), ("after_forward", 1), ("after_forward", 2), ("during_validation", 1),
    ("during_update", 2),
])
def test_a_signal_at_any_point_resumes_bit_identically(synthetic_root, tmp_path_factory, monkeypatch,
                                                       point, accumulate):
    """SIGTERM before a micro-batch's forward, right after it (the BatchNorm statistics have
    moved), in the middle of a gradient accumulation, or during validation: the resumed run ends
    with exactly the weights, BatchNorm buffers and optimiser state of the uninterrupted one."""
    import signal

    import mmtrack_kd.engine.trainer as trainer_module

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
        original_forward = StageTrainer._forward_loss

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

        monkeypatch.setattr(StageTrainer, "_forward_loss", forward)
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


def test_a_signal_between_stages_resumes_the_student_bit_identically(synthetic_root, tmp_path, monkeypatch):
    import signal

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


class _Killed(BaseException):
    """Stands for kill -9: nothing after it runs, no handler saves anything."""


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
        expected, got = read_file(straight / "teacher" / name), read_file(tmp_path / "run" / "teacher" / name)
        assert expected["progress"] == got["progress"], name
        for key in expected["model"]:
            assert torch.equal(expected["model"][key], got["model"][key]), (name, key)


def test_weights_that_turn_non_finite_are_never_saved_as_the_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch):
    """The loss of the update that breaks the weights is still finite; the checkpoint after it
    is refused, and the one named as last good holds finite tensors only."""
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path))
    original = StageTrainer._update

    def poisoning_update(self):
        original(self)
        if self.progress.update == 3:
            with torch.no_grad():
                next(unwrap_model(self).parameters()).fill_(float("inf"))

    def unwrap_model(trainer):
        from mmtrack_kd.engine.trainer import unwrap

        return unwrap(trainer.model)

    monkeypatch.setattr(StageTrainer, "_update", poisoning_update)
    with pytest.raises(TrainingStopped) as error:
        train(recipe, stage="teacher", run_dir=tmp_path / "run")
    message = str(error.value)
    last = tmp_path / "run" / "teacher" / "last.pt"
    assert "non-finite" in message and f"Last good checkpoint: {last}" in message
    state = read_file(last)
    assert state["progress"]["update"] == 2
    assert all(torch.isfinite(value).all() for value in state["model"].values() if value.is_floating_point())


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


def test_resume_from_a_weights_only_checkpoint_is_a_clear_error(synthetic_root, tmp_path):
    import shutil

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1}))
    run = train(recipe, stage="teacher", run_dir=tmp_path / "run")
    shutil.copy(run / "teacher" / "best.pt", run / "teacher" / "last.pt")
    with pytest.raises(MmtrackError, match=r"last.pt cannot be resumed from: it holds no optimizer"):
        train(recipe, stage="teacher", run_dir=run, resume=True)


def test_an_output_dir_that_is_a_file_is_a_clear_error(synthetic_root, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path / "file"))
    with pytest.raises(MmtrackError, match=r"is a file, not a folder"):
        train(recipe, stage="teacher")
