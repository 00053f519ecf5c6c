"""Our own checkpoint: the typed run checkpoint, its file layout, and rebuilding its model."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmtrack_kd.checkpoints import ModalityEntry, RunCheckpoint, RunPosition, load_model, load_pretrained, save_model
from mmtrack_kd.data.crop import CropSettings
from mmtrack_kd.errors import CheckpointError
from mmtrack_kd.models import OneStreamStudent, TwoStreamTeacher

#: A teacher the trainer wrote before the checkpoint had a type of its own.
SHIPPED_TEACHER = Path(__file__).resolve().parents[2] / "docs" / "teachers" / "rgbt-teacher-s0" / "best.pt"


def test_own_format_rebuilds_the_model(tmp_path, tiny, inputs, random_weights):
    teacher = random_weights(TwoStreamTeacher(**tiny, history=False, layer_type="linear")).eval()
    path = save_model(teacher, tmp_path / "teacher" / "best.pt", epoch=3, recipe={"name": "demo"})
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == "mmtrack-kd" and raw["kind"] == "teacher" and raw["model_config"] == teacher.config
    model, saved = load_model(path)
    assert isinstance(model, TwoStreamTeacher) and not model.training
    assert saved.extra == {"epoch": 3} and saved.recipe == {"name": "demo"}
    templates, searches = inputs()
    with torch.no_grad():
        assert torch.equal(model(templates, searches).boxes, teacher(templates, searches).boxes)
    # a teacher's checkpoint starts a student: backbone, fusion and head by name
    student = OneStreamStudent(**tiny)
    report = load_pretrained(student, path)
    assert not report.missing
    assert {k.split(".")[0] for k in report.unexpected} == {"rgb_prompters", "aux_prompters"}
    assert torch.equal(student.fusion.reduce.weight, teacher.fusion.reduce.weight)


def test_load_model_from_foreign_checkpoint_is_refused(tmp_path, tiny, random_weights):
    path = tmp_path / "OSTrack_ep0300.pth.tar"
    torch.save({"net": random_weights(OneStreamStudent(**tiny, num_modalities=1)).state_dict()}, path)
    with pytest.raises(CheckpointError, match="ostrack checkpoint without a model description"):
        load_model(path)
    bad = tmp_path / "bad.pt"
    torch.save({"format": "mmtrack-kd", "kind": "student", "model_config": {"depth": 2, "colour": 1},
                "model": {"x": torch.zeros(1)}}, bad)
    with pytest.raises(CheckpointError, match="colour"):
        load_model(bad)


def test_a_file_written_before_the_typed_checkpoint_reads_and_writes_the_same_entries(tmp_path):
    raw = torch.load(SHIPPED_TEACHER, map_location="cpu", weights_only=True)
    checkpoint = RunCheckpoint.read(SHIPPED_TEACHER)
    assert checkpoint.version == 1 and checkpoint.stage == "teacher" and checkpoint.extra == {}
    assert [entry.name for entry in checkpoint.modalities] == ["rgb", "thermal"]
    assert checkpoint.crop == CropSettings.for_model(SimpleNamespace(config=checkpoint.model_config))
    assert isinstance(checkpoint.progress, RunPosition) and checkpoint.missing_for_resume == [
        "optimizer", "scheduler", "scaler", "rng"]
    payload = checkpoint.to_payload()
    assert list(payload) == list(raw)
    for key, value in raw.items():
        if key == "model":
            assert payload[key].keys() == value.keys()
            assert all(torch.equal(payload[key][name], tensor) for name, tensor in value.items())
        else:
            assert payload[key] == value, key
    again = RunCheckpoint.read(checkpoint.save(tmp_path / "best.pt"))
    assert again.to_payload().keys() == raw.keys() and again.progress == checkpoint.progress


def test_a_run_checkpoint_round_trips_every_entry(tmp_path, tiny, random_weights):
    student = random_weights(OneStreamStudent(**tiny))
    position = RunPosition(epoch=2, batch_in_epoch=1, update=7, samples=56, best_val=math.inf)
    saved = RunCheckpoint.of_model(student, version=1, stage="student", progress=position,
                                   modalities=[ModalityEntry("rgb")], crop=CropSettings(32, 64, 2.0, 5.0, 16),
                                   optimizer={"state": {}}, rng={"torch": torch.get_rng_state()}, note="kept")
    path = saved.save(tmp_path / "run" / "last.pt")
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed, not left over
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["format", "version", "kind", "stage", "model_config", "model", "modalities",
                         "crop", "progress", "optimizer", "rng", "note"]
    # the typed entries are plain dicts on disk
    assert raw["modalities"] == [{"name": "rgb", "options": {}}]
    assert raw["crop"] == {"template_size": 32, "search_size": 64, "template_factor": 2.0, "search_factor": 5.0}
    read = RunCheckpoint.read(path)
    assert read.progress == position and read.extra == {"note": "kept"}
    assert read.modalities == [ModalityEntry("rgb")] and read.crop == CropSettings(32, 64, 2.0, 5.0, 16)
    assert read.missing_for_resume == ["scheduler", "scaler"]


def test_a_crop_entry_lacking_keys_takes_them_from_the_model_config(tmp_path, tiny):
    """Sizes and the patch come from ``model_config`` and factors default to OSTrack's where the
    entry lacks them (or holds None)."""
    student = OneStreamStudent(**tiny)
    payload = {**RunCheckpoint.of_model(student).to_payload(), "crop": {"search_factor": 5.0, "template_factor": None}}
    torch.save(payload, tmp_path / "partial.pt")
    config = student.config
    assert RunCheckpoint.read(tmp_path / "partial.pt").crop == CropSettings(
        config["template_size"], config["search_size"], 2.0, 5.0, config["patch_size"])


def test_wrongly_typed_entries_name_the_file_and_the_entry(tmp_path, tiny):
    payload = RunCheckpoint.of_model(OneStreamStudent(**tiny)).to_payload()
    for entry, value, message in (("crop", [1, 2], "'crop' is a list, not a mapping"),
                                  ("crop", {"search_size": "wide"}, "'crop' is not a crop geometry"),
                                  ("modalities", ["rgb"], "'modalities' must be a list"),
                                  ("modalities", [{"name": "rgb", "options": 1}], "'modalities' must be a list"),
                                  ("progress", {"epochs": 1}, "'progress' is not a run position")):
        path = tmp_path / f"{entry}.pt"
        torch.save({**payload, entry: value}, path)
        with pytest.raises(CheckpointError, match=f"{entry}.pt: {message}"):
            RunCheckpoint.read(path)
