"""Recipe validation, YAML loading and --set overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmtrack_kd.errors import RecipeError
from mmtrack_kd.recipe import dump_recipe, load_recipe
from mmtrack_kd.recipe_yaml import apply_override, parse_override, parse_yaml
from tests.recipe_plugins import toy_registry

GOOD = """
modality:
  name: toy-thermal
  bits: 16
data:
  train:
    - name: toy-data
      root: /data/toy
      weight: 2
      annotated_every: 10
model:
  backbone: {depth: 4, embed_dim: 64, num_heads: 4}
  template_size: 64
  search_size: 128
teacher:
  optim: {lr: 1e-4, lr_backbone: 5E-5, epochs: 2}
distill:
  feature: {layers: [2, 4]}
"""


@pytest.fixture
def registry():
    return toy_registry()


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(error: pytest.ExceptionInfo[RecipeError]) -> dict[str, str]:
    return dict(error.value.problems)


def test_good_recipe_uses_plugin_schemas(tmp_path, registry):
    recipe = load_recipe(write(tmp_path, GOOD, "toy-run.yaml"), registry=registry)
    assert recipe.name == "toy-run"
    assert recipe.modality.name == "toy-thermal"
    assert recipe.modality.options.bits == 16 and recipe.modality.options.gain == 1.0
    [train] = recipe.data.train
    assert train.weight == 2.0
    assert train.options.root == Path("/data/toy")
    assert train.options.annotated_every == 10
    assert recipe.teacher.optim.lr == pytest.approx(1e-4)
    assert isinstance(recipe.teacher.optim.lr, float)
    assert recipe.teacher.optim.lr_backbone == pytest.approx(5e-5)


def test_yaml_reads_exponent_floats_without_a_dot():
    assert parse_yaml("a: 1e-4\nb: 5E+3\nc: 1.5\nd: 7\ne: .inf\nf: '1e-4'") == {
        "a": 1e-4, "b": 5e3, "c": 1.5, "d": 7, "e": float("inf"), "f": "1e-4"
    }


def test_show_round_trips_with_defaults_filled(tmp_path, registry):
    recipe = load_recipe(write(tmp_path, GOOD), registry=registry)
    dumped = parse_yaml(dump_recipe(recipe))
    assert dumped["modality"] == {"name": "toy-thermal", "bits": 16, "gain": 1.0}
    assert dumped["data"]["train"][0]["annotated_every"] == 10
    assert dumped["data"]["train"][0]["split"] == "train"
    assert dumped["student"]["optim"]["batch_size"] == 12
    again = load_recipe(write(tmp_path, dump_recipe(recipe), "again.yaml"), registry=registry)
    assert again == recipe or dump_recipe(again) == dump_recipe(recipe)


def test_every_problem_is_reported_with_its_path(tmp_path, registry):
    text = GOOD.replace("weight: 2", "weight: 2\n      rot: /typo") \
        .replace("bits: 16", "bits: 12") \
        .replace("depth: 4", "depth: four") \
        + "trian: {}\n"
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, text), registry=registry)
    found = problems(error)
    assert set(found) == {"data.train.0.rot", "modality.bits", "model.backbone.depth", "trian"}
    assert "Extra inputs are not permitted" in found["trian"]
    assert "valid integer" in found["model.backbone.depth"]
    message = str(error.value)
    assert message.startswith(f"recipe {tmp_path / 'recipe.yaml'}: 4 problems")


def test_unknown_plugin_names_point_at_the_name_key(tmp_path, registry):
    text = GOOD.replace("name: toy-thermal", "name: toy-thermel").replace("name: toy-data", "name: lasher")
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, text), registry=registry)
    found = problems(error)
    assert "did you mean 'toy-thermal'" in found["modality.name"]
    assert "unknown dataset 'lasher'" in found["data.train.0.name"]


def test_cross_section_checks(tmp_path, registry):
    text = GOOD.replace("layers: [2, 4]", "layers: [2, 6]").replace("num_heads: 4", "num_heads: 5")
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, text), registry=registry)
    found = problems(error)
    assert "not divisible by num_heads 5" in found["model.backbone"]


def test_layers_beyond_depth(tmp_path, registry):
    text = GOOD.replace("layers: [2, 4]", "layers: [2, 6]")
    with pytest.raises(RecipeError, match=r"distill.feature.layers +layers \[6\] outside 1..4"):
        load_recipe(write(tmp_path, text), registry=registry)


def test_an_elimination_ramp_beyond_the_student_epochs_is_refused(tmp_path, registry):
    sets = ["student.candidate_elimination.enabled=true", "student.optim.epochs=3",
            "student.candidate_elimination.layers=[1, 2]"]
    with pytest.raises(RecipeError) as error:  # the default ramp, epochs 2..6
        load_recipe(write(tmp_path, GOOD), sets, registry=registry)
    assert "within the student's 3 epochs" in problems(error)["student.candidate_elimination.ramp_epochs"]
    load_recipe(write(tmp_path, GOOD), sets + ["student.candidate_elimination.ramp_epochs=[1, 2]"],
                registry=registry)


def test_a_global_batch_that_the_processes_cannot_share_is_refused_at_its_key(tmp_path, registry):
    # default batch 24: 3 processes share it, 5 cannot; the student's accumulate counts too
    load_recipe(write(tmp_path, GOOD), ["train.processes=3"], registry=registry)
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, GOOD), ["train.processes=5", "student.optim.batch_size=16",
                                            "student.optim.accumulate=2"], registry=registry)
    found = problems(error)
    assert "must divide by train.processes 5" in found["teacher.optim.batch_size"]
    assert "train.processes 5 x student.optim.accumulate 2" in found["student.optim.batch_size"]
    with pytest.raises(RecipeError, match="train.processes"):
        load_recipe(write(tmp_path, GOOD), ["train.processes=0"], registry=registry)


def test_a_union_key_is_one_problem_at_the_recipe_path(tmp_path, registry):
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, GOOD.replace("layers: [2, 4]", "layers: odd")), registry=registry)
    found = problems(error)
    assert list(found) == ["distill.feature.layers"]
    assert "valid list" in found["distill.feature.layers"] and "'even'" in found["distill.feature.layers"]


def test_mplt_quirk_without_its_parts_points_at_the_prompter(tmp_path, registry):
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, GOOD), ["teacher.prompter.mplt_compat=true",
                                            "teacher.prompter.history=false"], registry=registry)
    assert "mplt_compat needs history" in problems(error)["teacher.prompter"]


def test_overrides_apply_before_validation(tmp_path, registry):
    overrides = [
        "teacher.optim.lr=1e-4",
        "distill.feature.layers=[1, 3]",
        "data.train.0.root=/elsewhere",
        "data.train.0.annotated_every=5",
        "modality.gain=0.5",
        "train.stages=[teacher]",
        "model.backbone.depth=3",
    ]
    recipe = load_recipe(write(tmp_path, GOOD), overrides, registry=registry)
    assert recipe.teacher.optim.lr == pytest.approx(1e-4)
    assert recipe.distill.feature.layers == [1, 3]
    assert recipe.data.train[0].options.root == Path("/elsewhere")
    assert recipe.data.train[0].options.annotated_every == 5
    assert recipe.modality.options.gain == 0.5
    assert recipe.train.stages == ["teacher"]
    assert recipe.model.backbone.depth == 3


def test_override_errors_name_the_key(tmp_path, registry):
    with pytest.raises(RecipeError, match="no list item 3"):
        load_recipe(write(tmp_path, GOOD), ["data.train.3.root=/x"], registry=registry)
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        parse_override("train.device")
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, GOOD), ["train.devcie=cpu"], registry=registry)
    assert "train.devcie" in problems(error)


def test_override_creates_missing_sections():
    data: dict = {}
    apply_override(data, ["train", "loss", "l1"], 3.0)
    assert data == {"train": {"loss": {"l1": 3.0}}}


def test_yaml_syntax_error_names_the_line(tmp_path, registry):
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, "modality:\n  name: [toy\n"), registry=registry)
    [(where, message)] = error.value.problems
    assert where.startswith("line ")
    assert "YAML syntax" in message


def test_a_key_given_twice_is_an_error_but_a_merge_may_be_overridden():
    with pytest.raises(RecipeError, match=r"line 3.*'lr' appears twice \(first on line 2\)"):
        parse_yaml("optim:\n  lr: 0.1\n  lr: 0.2\n")
    assert parse_yaml("base: &base {lr: 0.1, epochs: 2}\nteacher:\n  <<: *base\n  lr: 0.2\n") == {
        "base": {"lr": 0.1, "epochs": 2}, "teacher": {"lr": 0.2, "epochs": 2}}


def test_non_finite_numbers_are_refused_with_their_path(tmp_path, registry):
    """YAML reads ``.inf`` and ``.nan`` as floats; a recipe never means them."""
    text = GOOD + "train: {loss: {l1: .nan}}\n"
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, text), overrides=["teacher.optim.lr=.inf"], registry=registry)
    assert set(problems(error)) == {"teacher.optim.lr", "train.loss.l1"}
    assert all("finite" in message for message in problems(error).values())


def test_a_billion_laughs_is_refused_before_validation(tmp_path):
    laughs = 'a: &a ["l", "l", "l", "l", "l", "l", "l", "l", "l"]\n' + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
    with pytest.raises(RecipeError, match="expands to more than"):
        load_recipe(write(tmp_path, laughs))


def test_missing_file_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match="cannot read"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("rule", "depth", "expected"),
    [
        ("even", 12, [2, 4, 6, 8, 10, 12]),
        ("first-half", 12, [1, 2, 3, 4, 5, 6]),
        ("second-half", 12, [7, 8, 9, 10, 11, 12]),
        ("all", 4, [1, 2, 3, 4]),
        ("even", 3, [2]),
        ([1, 3], 4, [1, 3]),
    ],
)
def test_feature_layer_rules_follow_the_depth(rule, depth, expected):
    from mmtrack_kd.recipe import FeatureDistillConfig

    assert FeatureDistillConfig(layers=rule).resolve_layers(depth) == expected


@pytest.mark.parametrize(
    "teacher_depth, sets, blocks, pairs",
    [
        (4, [], [1, 2, 3, 4], [(2, 2), (4, 4)]),  # the paper's student: even layers, identity
        (4, ["student.shape.depth=2"], [2, 4], [(1, 2), (2, 4)]),  # half depth: every layer
        (12, ["student.shape.depth=6"], [2, 4, 6, 8, 10, 12], [(j, 2 * j) for j in range(1, 7)]),
        (12, ["student.shape.depth=4"], [3, 6, 9, 12], [(2, 6), (4, 12)]),
        (4, ["student.shape.depth=2", "distill.feature.layers=first-half"], [2, 4], [(1, 2)]),
        (4, ["student.shape.depth=2", "student.shape.blocks_from=[1, 3]", "distill.feature.layers=all"],
         [1, 3], [(1, 1), (2, 3)]),
        (4, ["student.shape.depth=2", "distill.feature.pairs=[[1, 3], [2, 4]]"], [2, 4], [(1, 3), (2, 4)]),
    ],
)
def test_student_shape_blocks_and_feature_pairs(tmp_path, registry, teacher_depth, sets, blocks, pairs):
    text = GOOD.replace("depth: 4", f"depth: {teacher_depth}").replace("layers: [2, 4]", "layers: even")
    recipe = load_recipe(write(tmp_path, text), sets, registry=registry)
    assert recipe.student.shape.resolve_blocks(teacher_depth) == blocks
    assert recipe.distill.feature.resolve_pairs(teacher_depth, blocks) == pairs


@pytest.mark.parametrize(
    "sets, key, message",
    [
        (["student.shape.depth=5"], "student.shape.depth", "more than the teacher's 4"),
        (["student.shape.depth=2", "student.shape.blocks_from=[3, 2]"], "student.shape.blocks_from",
         "must increase within 1..4"),
        (["student.shape.depth=2", "student.shape.blocks_from=[2]"], "student.shape.blocks_from",
         "1 entries for a student of 2 blocks"),
        (["student.shape.depth=2", "student.shape.fuse_after=2"], "student.shape.fuse_after", "below the student's 2"),
        (["student.shape.aux_pool=3"], "student.shape.aux_pool", "does not divide"),
        (["student.shape.depth=2", "distill.feature.layers=[1, 2]"], "distill.feature.layers",
         r"teacher blocks \[1\] start no student block"),
        (["student.shape.depth=2", "distill.feature.pairs=[[3, 4]]"], "distill.feature.pairs", "outside student blocks 1..2"),
        (["student.shape.fuse_after=1", "student.candidate_elimination.enabled=true",
          "student.candidate_elimination.layers=[2]", "student.candidate_elimination.ramp_epochs=[0, 1]"],
         "student.candidate_elimination.enabled", "plain token layout"),
        (["student.shape.depth=2", "student.candidate_elimination.enabled=true",
          "student.candidate_elimination.layers=[2]", "student.candidate_elimination.ramp_epochs=[0, 1]"],
         "student.candidate_elimination.layers", r"outside 0..1 \(0-indexed student blocks\)"),
    ],
)
def test_impossible_student_shapes_name_their_key(tmp_path, registry, sets, key, message):
    with pytest.raises(RecipeError) as error:
        load_recipe(write(tmp_path, GOOD), sets, registry=registry)
    assert key in problems(error), problems(error)
    assert re.search(message, problems(error)[key])
