"""The learning-rate schedules: warm-up, step drop, cosine decay, and the recipe's check."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from mmtrack_kd.engine.optim import build_optimizer, build_scheduler, lr_factor
from mmtrack_kd.errors import RecipeError
from mmtrack_kd.recipe import OptimConfig, dump_recipe, validate_recipe

UPDATES_PER_EPOCH = 10


def factors(optim: OptimConfig) -> list[float]:
    return [lr_factor(update, UPDATES_PER_EPOCH, optim)
            for update in range(optim.epochs * UPDATES_PER_EPOCH)]


def test_step_schedule_warms_up_then_drops_once():
    optim = OptimConfig(epochs=4, lr_drop_epoch=3, lr_drop_factor=0.1, warmup_epochs=0.5)
    values = factors(optim)
    assert values[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert values[5:30] == [1.0] * 25
    assert values[30:] == pytest.approx([0.1] * 10)


def test_cosine_schedule_falls_from_one_to_zero_after_the_warm_up():
    optim = OptimConfig(epochs=4, schedule="cosine", warmup_epochs=0.5)
    values = factors(optim)
    assert values[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    decay = values[5:]
    assert all(a > b for a, b in zip(decay, decay[1:]))  # strictly falling
    # update 22 is epoch 2.2: (2.2 - 0.5) / 3.5 of the way from the warm-up's end to the last
    assert values[22] == pytest.approx(0.5 * (1 + math.cos(math.pi * 1.7 / 3.5)))
    assert 0.0 < decay[-1] < 0.01
    assert lr_factor(40, UPDATES_PER_EPOCH, optim) == pytest.approx(0.0, abs=1e-12)


def test_cosine_without_warm_up_starts_at_the_full_rate():
    values = factors(OptimConfig(epochs=2, schedule="cosine"))
    assert values[0] == 1.0 and values[10] == pytest.approx(0.5)


def test_scheduler_applies_the_factor_to_both_groups():
    model = torch.nn.Linear(2, 2)
    optim = OptimConfig(epochs=2, schedule="cosine", lr=1e-2)
    optimizer = torch.optim.AdamW([{"params": model.parameters(), "lr": optim.lr}])
    scheduler = build_scheduler(optimizer, UPDATES_PER_EPOCH, optim)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5e-2)


def test_a_drop_setting_under_the_cosine_schedule_is_refused_with_its_key():
    with pytest.raises(RecipeError) as error:
        validate_recipe({"modality": {"name": "thermal"},
                         "teacher": {"optim": {"schedule": "cosine", "lr_drop_epoch": 3}}})
    assert "teacher.optim" in str(error.value)
    assert "lr_drop_epoch applies to schedule: step only" in str(error.value)
    # the step keys at their defaults are no obstacle, so a run's written recipe (which spells
    # out every default) reads back
    recipe = validate_recipe({"modality": {"name": "thermal"}, "teacher": {"optim": {"schedule": "cosine"}}})
    assert recipe.teacher.optim.schedule == "cosine"
    written = dump_recipe(recipe)
    assert dump_recipe(validate_recipe(yaml.safe_load(written))) == written


def test_optimizer_is_fused_on_the_cpu_and_updates_like_the_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    reference = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    reference.load_state_dict(model.state_dict())
    optim = OptimConfig(lr=1e-2, lr_backbone=1e-3, weight_decay=1e-4)
    fused = build_optimizer(model, optim)
    assert fused.defaults["fused"] is True
    loop = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=1e-4, foreach=False)
    for _ in range(5):
        for net, optimizer in ((model, fused), (reference, loop)):
            net(torch.ones(3, 4)).square().sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
