"""bf16 / int8 tracking against fp32: the int8 tracker quantizes, and agreement reads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

from mmtrack_kd.benchmark.agreement import agreement_rows, precision_agreement
from mmtrack_kd.data import Sequence
from mmtrack_kd.errors import MmtrackError
from mmtrack_kd.evaluation.groundtruth import GroundTruth
from mmtrack_kd.evaluation.protocols import get_protocol
from mmtrack_kd.tracking import Tracker, TrackerSettings, run_sequence


class FakeDataset:
    protocol = "lasher"

    def __init__(self, sequences: dict[str, Sequence]) -> None:
        self.sequences = sequences

    def list_sequences(self) -> list[str]:
        return list(self.sequences)

    def load_sequence(self, name: str) -> Sequence:
        return self.sequences[name]


def _dataset(tmp_path: Path, scene_frames, folder_writer, count: int = 2, n: int = 6) -> FakeDataset:
    sequences = {}
    for index in range(count):
        rgb, thermal, boxes = scene_frames(n)
        folder = tmp_path / f"seq{index}"
        sequences[f"seq{index}"] = Sequence(
            name=f"seq{index}", dataset="test",
            frames={"rgb": tuple(folder_writer(folder / "rgb", rgb, ".jpg")),
                    "thermal": tuple(folder_writer(folder / "thermal", thermal))},
            boxes=boxes, visible=np.ones(n, dtype=bool),
        )  # fmt: skip
    return FakeDataset(sequences)


def test_int8_tracker_runs_a_quantized_copy_and_leaves_the_model(make_checkpoint, registry, scene_frames) -> None:
    checkpoint = make_checkpoint()
    tracker = Tracker.from_checkpoint(checkpoint, registry=registry, settings=TrackerSettings(precision="int8"))
    assert any(isinstance(m, DynamicQuantizedLinear) for m in tracker.model.modules())
    assert TrackerSettings(precision="int8").variant_name("best") == "best-int8"
    rgb, thermal, boxes = scene_frames(3)
    tracker.initialize([rgb[0], thermal[0]], boxes[0])
    box, confidence = tracker.track([rgb[1], thermal[1]])
    assert np.all(np.isfinite(box)) and 0 <= confidence <= 1
    if torch.cuda.is_available():
        with pytest.raises(MmtrackError, match="CPU only"):
            Tracker.from_checkpoint(checkpoint, "cuda", registry=registry, settings=TrackerSettings(precision="int8"))


@pytest.mark.slow
def test_agreement_of_an_identical_model_is_perfect(tmp_path, make_checkpoint, scene_frames, folder_writer,
                                                    monkeypatch) -> None:
    """With quantization replaced by a plain copy, int8 must agree with fp32 exactly; a copy whose
    size head is scaled must not: the figures read the boxes, not a constant."""
    import copy

    from mmtrack_kd.tracking import tracker as tracker_module

    dataset = _dataset(tmp_path, scene_frames, folder_writer)
    checkpoint = make_checkpoint()
    monkeypatch.setattr(tracker_module, "quantize_int8", lambda model: copy.deepcopy(model))
    result = precision_agreement(str(checkpoint), [("fake", dataset)], precisions=("int8",))
    assert result["sequences"] == 2 and result["frames"] == 12
    int8, fp32 = result["int8"], result["fp32"]
    assert int8["mean_iou_to_fp32"] == 1.0 and int8["frames_iou_0_9"] == 1.0
    assert int8["scores"] == fp32["scores"] and set(fp32["scores"]) == {"PR", "NPR", "SR"}
    assert set(int8["per_sequence"]) == {"fake/seq0", "fake/seq1"}

    def shrunk(model):
        other = copy.deepcopy(model)
        with torch.no_grad():
            other.box_head.conv5_size.bias.sub_(3.0)  # sigmoid(size) much smaller: other boxes
        return other

    monkeypatch.setattr(tracker_module, "quantize_int8", shrunk)
    moved = precision_agreement(str(checkpoint), [("fake", dataset)], precisions=("int8",))["int8"]
    assert moved["mean_iou_to_fp32"] < 0.9
    rows = agreement_rows(result)
    assert [row["precision"] for row in rows] == ["fp32", "int8"]


@pytest.mark.slow
def test_agreement_scores_are_the_datasets_protocol(tmp_path, make_checkpoint, scene_frames, folder_writer) -> None:
    """The scores are the dataset's own protocol on the tracked boxes, in percent."""
    dataset = _dataset(tmp_path, scene_frames, folder_writer)
    checkpoint = make_checkpoint()
    result = precision_agreement(str(checkpoint), [("fake", dataset)], precisions=())
    tracker = Tracker.from_checkpoint(checkpoint)
    truths = [GroundTruth.from_sequence(dataset.load_sequence(n)) for n in dataset.list_sequences()]
    boxes = {gt.name: run_sequence(tracker, dataset.load_sequence(gt.name)).boxes for gt in truths}
    expected = get_protocol("lasher").score(boxes, truths, attributes=False).scores
    assert result["fp32"]["scores"] == pytest.approx({k: v * 100 for k, v in expected.items()})
    # a perfect tracker scores 100 on every headline of the protocol
    perfect = get_protocol("lasher").score({gt.name: gt.boxes for gt in truths}, truths,
                                           attributes=False).scores
    assert perfect["PR"] == 1.0 and perfect["SR"] > 0.9
