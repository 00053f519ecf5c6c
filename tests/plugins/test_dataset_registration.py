"""Every built-in dataset module registers its plugin through the hook, as an entry point would."""

from __future__ import annotations

from pathlib import Path

import pytest

import plugins.depthtrack
import plugins.folder
import plugins.gtot
import plugins.lasher
import plugins.rgbt210
import plugins.rgbt234
import plugins.visevent
import plugins.vtuav
from mmtrack_kd.errors import DataError
from mmtrack_kd.plugins import load_registry
from tests.plugins.layouts import lasher_sequence

MODULES = {
    "lasher": plugins.lasher,
    "rgbt234": plugins.rgbt234,
    "rgbt210": plugins.rgbt210,
    "gtot": plugins.gtot,
    "vtuav": plugins.vtuav,
    "depthtrack": plugins.depthtrack,
    "visevent": plugins.visevent,
    "folder": plugins.folder,
}

EXPECTED = {
    # name: (modalities, protocol, splits)
    "lasher": (("rgb", "thermal"), "lasher", ("train", "test")),
    "rgbt234": (("rgb", "thermal"), "rgbt234", ("test",)),
    "rgbt210": (("rgb", "thermal"), "rgbt210", ("test",)),
    "gtot": (("rgb", "thermal"), "gtot", ("test",)),
    "vtuav": (("rgb", "thermal"), "vtuav", ("train", "test")),
    "vtuav-st": (("rgb", "thermal"), "vtuav", ("train", "test")),
    "vtuav-lt": (("rgb", "thermal"), "vtuav", ("train", "test")),
    "depthtrack": (("rgb", "depth"), "depthtrack", ("train", "test")),
    "visevent": (("rgb", "event"), "visevent", ("train", "test")),
    "folder": (("rgb", "thermal"), "otb", ("all", "train", "val", "test")),
}


def test_each_module_registers_its_datasets():
    registry = load_registry(only=[], extra_plugins=list(MODULES.items()))
    assert not registry.failures
    assert set(registry.datasets) == set(EXPECTED)
    for name, (modalities, protocol, splits) in EXPECTED.items():
        cls = registry.dataset(name)
        assert (cls.modalities, cls.protocol, cls.splits) == (modalities, protocol, splits), name
        assert cls.layout and cls.description
        assert registry.owner("dataset", name).name == (
            "vtuav" if name.startswith("vtuav") else name
        )
    assert registry.dataset("lasher") is plugins.lasher.LasHeR


def test_one_module_registers_only_its_own_dataset():
    registry = load_registry(only=[], extra_plugins=[("rgbt210", plugins.rgbt210)])
    assert list(registry.datasets) == ["rgbt210"]


def test_options_forbid_unknown_keys():
    with pytest.raises(ValueError, match="extra"):
        plugins.lasher.LasHeR.Options(roots="/data")


def test_root_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    lasher_sequence(tmp_path, "blkboy`shead", split="test")
    monkeypatch.setenv("MMTRACK_KD_LASHER_ROOT", str(tmp_path))
    dataset = plugins.lasher.LasHeR(
        plugins.lasher.LasHeR.Options(split="test", sequences=["blkboy`shead"])
    )
    assert dataset.root == tmp_path and dataset.list_sequences() == ["blkboy`shead"]


def test_missing_root_shows_the_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MMTRACK_KD_DEPTHTRACK_ROOT", raising=False)
    with pytest.raises(DataError) as error:
        plugins.depthtrack.DepthTrack(plugins.depthtrack.DepthTrack.Options(root=tmp_path / "nope"))
    assert "does not exist" in str(error.value) and "color/%08d.jpg" in str(error.value)
