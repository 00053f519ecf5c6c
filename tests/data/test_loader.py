"""The pair dataset: sample layout, determinism from (seed, epoch, index), unreadable frames,
dataset mixing, DataLoader workers and sharding, and the throughput benchmark."""

from __future__ import annotations

import logging
from collections import Counter

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmtrack_kd.data.bench import benchmark_loader
from mmtrack_kd.data.loader import (
    ShardIndices,
    build_train_dataset,
    build_val_dataset,
    make_loader,
)
from mmtrack_kd.errors import DataError
from mmtrack_kd.recipe import BackboneConfig, ModelConfig, SamplerConfig

from tests.data.conftest import NpyEvent, PngRgb, PngThermal, moving_boxes

SIZES = dict(template_size=32, search_size=64, template_factor=2.0, search_factor=4.0,
             patch_size=8)


@pytest.fixture
def toy(make_sequence):
    """Two short RGB-T sequences (the second with an invisible stretch)."""
    first = make_sequence("first", moving_boxes(12, seed=0))
    visible = np.ones(10, bool)
    visible[3:6] = False
    second = make_sequence("second", moving_boxes(10, seed=1), visible=visible)
    return [first, second]


def train(datasets, aux=PngThermal(), samples=16, seed=0, **sampler):
    config = SamplerConfig(max_gap=sampler.pop("max_gap", 4), **sampler)
    return build_train_dataset(datasets, PngRgb(), aux, **SIZES, sampler=config,
                               samples_per_epoch=samples, seed=seed)


def same(a: dict, b: dict) -> bool:
    tensors = lambda s: s["template"] + s["search"] + [s["search_box"], s["frames"]]
    return all(torch.equal(x, y) for x, y in zip(tensors(a), tensors(b)))


def test_sample_layout(toy):
    dataset = train([(toy, 1.0)])
    assert dataset.streams == ("rgb", "thermal")
    sample = dataset[0]
    assert [t.shape for t in sample["template"]] == [(3, 32, 32)] * 2
    assert [t.shape for t in sample["search"]] == [(3, 64, 64)] * 2
    assert sample["template_box"].shape == sample["search_box"].shape == (4,)
    assert "heatmap" not in sample  # drawn by the loss from search_box, a batch at a time
    template, search = sample["frames"].tolist()
    assert 1 <= search - template <= 4
    assert sample["sequence"] in ("toy/first", "toy/second")


def test_five_channel_modality_and_single_modality(make_sequence):
    events = [make_sequence("ev", moving_boxes(8), streams=("rgb", "event"))]
    sample = train([(events, 1.0)], aux=NpyEvent())[3]
    assert [t.shape[0] for t in sample["search"]] == [3, 5]
    rgb_only = train([(events, 1.0)], aux=None)
    assert rgb_only.streams == ("rgb",)
    assert len(rgb_only[0]["template"]) == 1


def test_batches_collate(toy):
    batch = next(iter(make_loader(train([(toy, 1.0)]), batch_size=4, workers=0)))
    assert [t.shape for t in batch["search"]] == [(4, 3, 64, 64)] * 2
    assert batch["search_box"].shape == (4, 4) and batch["frames"].shape == (4, 2)
    assert len(batch["sequence"]) == 4


def test_samples_are_a_function_of_seed_epoch_and_index(toy):
    a, b = train([(toy, 1.0)], seed=7), train([(toy, 1.0)], seed=7)
    assert same(a[3], b[3]) and same(a[3], a[3])
    assert not same(a[3], a[4])
    assert not same(a[3], train([(toy, 1.0)], seed=8)[3])
    before = a[3]
    a.set_epoch(1)
    assert a.epoch == 1 and not same(before, a[3])
    a.set_epoch(0)
    assert same(before, a[3])
    assert same(a.sample(3, epoch=1), b.sample(3, epoch=1))


def test_workers_and_shards_reproduce_the_same_samples(toy):
    dataset = train([(toy, 1.0)], samples=12)
    dataset.set_epoch(2)
    reference = [dataset[i] for i in range(12)]
    batches = list(make_loader(dataset, batch_size=3, workers=2))
    for k, batch in enumerate(batches):
        for j in range(3):
            expected = reference[3 * k + j]
            assert torch.equal(batch["search"][1][j], expected["search"][1])
            assert torch.equal(batch["search_box"][j], expected["search_box"])
    # a resumed rank 1 of 2 starting after its first two samples sees indices 5, 7, 9, 11
    resumed = make_loader(dataset, batch_size=2, workers=0, rank=1, world_size=2, start=2)
    frames = torch.cat([b["frames"] for b in resumed])
    assert torch.equal(frames, torch.stack([reference[i]["frames"] for i in (5, 7, 9, 11)]))


def test_shard_indices_split_without_overlap():
    shards = [list(ShardIndices(10, rank, 3)) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(9))
    assert list(ShardIndices(10, 1, 3, start=1)) == [4, 7]
    assert len(ShardIndices(10, 1, 3, start=1)) == 2


def test_validation_set_is_fixed_and_unaugmented(toy):
    config = SamplerConfig(max_gap=4)
    val = build_val_dataset([(toy, 1.0)], PngRgb(), PngThermal(), **SIZES, sampler=config,
                            num_samples=8, seed=0)
    first = [val[i] for i in range(8)]
    val.set_epoch(5)
    assert all(same(a, val[i]) for i, a in enumerate(first))
    assert val.processing.augmentation.flip_probability == 0
    assert not same(first[0], train([(toy, 1.0)], seed=0)[0])


def test_datasets_mix_by_weight(make_sequence):
    a = [make_sequence("a", moving_boxes(6), dataset="a", size=(48, 64))]
    b = [make_sequence("b", moving_boxes(6), dataset="b", size=(48, 64))]
    dataset = train([(a, 4.0), (b, 1.0)], samples=200, max_gap=2)
    counts = Counter(dataset[i]["sequence"] for i in range(200))
    assert counts["a/a"] / 200 == pytest.approx(0.8, abs=0.09)


def test_missing_frame_is_reported_once_counted_and_skipped(toy, caplog):
    missing = toy[0].frames["thermal"][4]
    missing.unlink()
    dataset = train([(toy[:1], 1.0)], samples=40)
    with caplog.at_level(logging.WARNING, logger="mmtrack_kd.data.loader"):
        samples = [dataset[i] for i in range(40)]
    reports = [r for r in caplog.records if str(missing) in r.getMessage()]
    assert len(reports) == 1
    assert dataset.skipped >= 2  # drawn more than once, reported once
    assert all(4 not in s["frames"].tolist() for s in samples)
    # the replacement is deterministic too
    again = train([(toy[:1], 1.0)], samples=40)
    assert all(same(s, again[i]) for i, s in enumerate(samples))


def test_failures_in_workers_are_counted_in_the_main_process(toy):
    toy[0].frames["rgb"][2].unlink()
    dataset = train([(toy[:1], 1.0)], samples=24)
    list(make_loader(dataset, batch_size=4, workers=2))
    expected = train([(toy[:1], 1.0)], samples=24)
    for i in range(24):
        expected[i]
    assert dataset.skipped == expected.skipped > 0


def test_nothing_readable_ends_with_a_clear_error(toy):
    for path in toy[0].frames["rgb"]:
        path.unlink()
    dataset = train([(toy[:1], 1.0)], max_retries=3)
    expected = r"in 3 draws \(data.sampler.max_retries\); last problem: .*cannot be read"
    with pytest.raises(DataError, match=expected):
        dataset[0]
    assert dataset.skipped == 3


def test_misaligned_streams_are_a_data_error(make_sequence, tmp_path):
    sequence = make_sequence("bad", moving_boxes(5))
    small = np.zeros((10, 10), np.uint8)
    for path in sequence.frames["thermal"]:
        cv2.imwrite(str(path), small)
    dataset = train([([sequence], 1.0)], max_retries=2)
    with pytest.raises(DataError, match="thermal frame is 10x10 but the rgb frame is 128x96"):
        dataset[0]


def test_benchmark_reports_throughput(toy):
    result = benchmark_loader(train([(toy, 1.0)], samples=32), workers=0, batch_size=4,
                              batches=3, warmup=1)
    assert result.samples == 12 and result.samples_per_second > 0
    assert result.as_dict()["streams"] == ("rgb", "thermal")


def test_global_indices_count_on_into_later_epochs(toy):
    dataset = train([(toy, 1.0)], samples=6)
    assert same(dataset[2 * 6 + 3], dataset.sample(3, epoch=2))
    dataset.set_epoch(2)
    assert same(dataset[3], dataset.sample(3, epoch=2))
    # a sampler streaming global indices through workers gets the same samples
    loader = DataLoader(dataset, batch_size=3, sampler=list(range(12, 18)), num_workers=2)
    frames = torch.cat([batch["frames"] for batch in loader])
    expected = torch.stack([dataset.sample(k, epoch=4)["frames"] for k in range(6)])
    assert torch.equal(frames, expected)
    val = build_val_dataset([(toy, 1.0)], PngRgb(), PngThermal(), **SIZES,
                            sampler=SamplerConfig(max_gap=4), num_samples=4)
    assert same(val[4 + 1], val[1])


def test_recipe_sections_build_the_same_dataset(toy):
    model = ModelConfig(template_size=32, search_size=64, backbone=BackboneConfig(patch_size=8))
    from_recipe = build_train_dataset([(toy, 1.0)], adapters=[PngRgb(), PngThermal()],
                                      model=model, sampler=SamplerConfig(max_gap=4),
                                      samples_per_epoch=16, seed=0)
    assert same(from_recipe[5], train([(toy, 1.0)])[5])
    with pytest.raises(TypeError, match="missing crop sizes"):
        build_train_dataset([(toy, 1.0)], PngRgb(), None, sampler=SamplerConfig(),
                            samples_per_epoch=4, seed=0)
