"""What the teacher and student stages own: start files, declared parts, shapes, keep ratio."""

from __future__ import annotations

import logging

import pytest
import torch

from mmtrack_kd.checkpoints import load_model
from mmtrack_kd.engine.run import teacher_for_stage, train
from mmtrack_kd.engine.stages import StudentStage, TeacherStage, keep_ratio_at
from mmtrack_kd.engine.trainer import StageTrainer, to_device
from mmtrack_kd.errors import CheckpointError, MmtrackError
from mmtrack_kd.models import build_model
from mmtrack_kd.recipe import validate_recipe
from mmtrack_kd.runtime.distributed import DistributedContext

from .conftest import recipe_data, weights


@pytest.mark.slow
def test_rgb_only_baseline_takes_an_ostrack_file_whole_or_not_at_all(synthetic_root, tmp_path):
    """The single-modality student is exactly OSTrack: its OSTrack checkpoint loads strictly,
    and a partial one (here without the head) is refused with the file named."""

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
    data = recipe_data(synthetic_root, tmp_path, **{"teacher.prompter": {"mplt_compat": True},
                                                    "model.fusion": "conv"})
    kind, config = TeacherStage(validate_recipe(data)).model_config(3)
    assert kind == "teacher" and config["mplt_compat"] is True and config["fusion"] == "conv"


def test_candidate_elimination_keep_ratio_ramps_linearly_between_its_epochs(synthetic_root, tmp_path):
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

@pytest.mark.slow
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
    trainer.build()
    assert trainer.training_stage.pairs == pairs
    student = trainer.model.state_dict()
    blocks = recipe.student.shape.resolve_blocks(2)
    for target, source in enumerate(blocks):
        for name in ("attn.qkv.weight", "mlp.fc2.bias", "norm1.weight"):
            assert torch.equal(student[f"backbone.blocks.{target}.{name}"], teacher[f"backbone.blocks.{source - 1}.{name}"])
    samples = [trainer.train_set[index] for index in range(4)]
    batch = to_device(torch.utils.data.default_collate(samples), trainer.ctx.device)
    trainer.model.train()
    loss, terms = trainer.forward_loss(batch, None)
    assert sorted(k for k in terms if k.startswith("feature/")) == [f"feature/layer{s}" for s, _ in pairs]
    assert terms["feature"] > 0 and terms["response"] > 0
    loss.backward()
    trainer.update()
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
        trainer.training_stage.initialise(build_model("teacher", {**tiny, "aux_in_chans": 3}))

    initialise("full.pth.tar")
    with pytest.raises(CheckpointError) as error:
        initialise("headless.pth.tar")
    assert "headless.pth.tar" in str(error.value) and "box_head.conv1_ctr.0.weight" in str(error.value)
    assert "rgb_prompters" not in str(error.value).split("parts declared")[0]
    initialise("headless.pth.tar", **{"teacher.fresh": ["prompters", "fusion", "head"]})
    with pytest.raises(CheckpointError, match="fusion.reduce.weight"):
        initialise("full.pth.tar", **{"teacher.fresh": ["prompters"]})


def test_candidate_elimination_template_range_is_a_recipe_option(synthetic_root, tmp_path):
    for template_range in ("centre", "all"):
        data = recipe_data(synthetic_root, tmp_path, **{"student.candidate_elimination": {
            "enabled": True, "layers": [0], "ramp_epochs": [0, 1], "template_range": template_range}})
        kind, config = StudentStage(validate_recipe(data)).model_config(3)
        assert config["ce_template_range"] == template_range
        assert build_model(kind, config).config["ce_template_range"] == template_range
    with pytest.raises(MmtrackError, match="template_range"):
        validate_recipe(recipe_data(synthetic_root, tmp_path, **{"student.candidate_elimination": {
            "template_range": "middle"}}))


def test_a_student_initialised_from_its_teacher_is_a_normal_event(synthetic_root, tmp_path, caplog):
    """The teacher's prompters are unused by the student by design: INFO, not a WARNING."""

    recipe = validate_recipe(recipe_data(synthetic_root, tmp_path, **{"teacher.optim.epochs": 1}))
    folder = train(recipe, stage="teacher", run_dir=tmp_path / "run")
    trainer = StageTrainer(recipe, "student", tmp_path / "student", DistributedContext(),
                           teacher_checkpoint=folder / "teacher" / "best.pt")
    with caplog.at_level(logging.INFO):
        trainer.build()
    [record] = [r for r in caplog.records if "initialised from" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert "unused" in record.getMessage() or "prompt" in record.getMessage()


@pytest.mark.parametrize("changes, needs", [
    ({}, True),                                                       # distils
    ({"distill.feature.weight": 0.0, "distill.response.weight": 0.0,
      "student.init": "none"}, False),                                # FOST from scratch
    ({"distill.feature.weight": 0.0, "distill.response.weight": 0.0}, True),  # starts from it
    ({"student.single_modality": True}, False),                       # OSTrack
])
def test_a_stage_says_what_it_reads_and_whether_it_needs_a_teacher(tmp_path, changes, needs):
    recipe = validate_recipe(recipe_data(tmp_path / "data", tmp_path / "runs", **changes))
    teacher, student = TeacherStage(recipe), StudentStage(recipe)
    assert (teacher.takes_teacher, teacher.needs_teacher, teacher.aux_modality) == (False, False, "thermal")
    assert student.takes_teacher and student.needs_teacher is needs
    single = recipe.student.single_modality
    assert student.aux_modality == ("rgb" if single else "thermal")
    assert student.model_config(3)[1]["num_modalities"] == (1 if single else 2)
    # the run's own teacher is looked up only when the stage needs one; --teacher is checked
    assert teacher_for_stage(teacher, tmp_path, tmp_path / "given.pt") is None
    if needs:
        with pytest.raises(MmtrackError, match="student stage needs a teacher checkpoint"):
            teacher_for_stage(student, tmp_path, None)
    else:
        assert teacher_for_stage(student, tmp_path, None) is None
    with pytest.raises(MmtrackError, match="--teacher .*given.pt does not exist"):
        teacher_for_stage(student, tmp_path, tmp_path / "given.pt")
