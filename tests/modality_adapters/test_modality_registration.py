"""Each adapter module is a plugin that registers its adapter through the hook."""

from __future__ import annotations

import numpy as np
import pytest

import modality_adapters.depth
import modality_adapters.event
import modality_adapters.rgb
import modality_adapters.thermal
from mmtrack_kd.data.modality import AdapterOptions, ModalityAdapter
from mmtrack_kd.plugins import load_registry

PLUGINS = {
    "rgb": (modality_adapters.rgb, modality_adapters.rgb.RGBAdapter),
    "thermal": (modality_adapters.thermal, modality_adapters.thermal.ThermalAdapter),
    "depth": (modality_adapters.depth, modality_adapters.depth.DepthAdapter),
    "event": (modality_adapters.event, modality_adapters.event.EventAdapter),
}


def test_each_module_registers_its_adapter():
    registry = load_registry(
        only=[], extra_plugins=[(name, module) for name, (module, _) in PLUGINS.items()]
    )
    assert not registry.failures
    assert set(registry.modalities) == set(PLUGINS)
    for name, (_, adapter) in PLUGINS.items():
        assert registry.modality(name) is adapter
        owner = registry.owner("modality", name)
        assert owner.name == name and owner.registers == [f"modality {name}"]
        assert owner.hooks == ["mmtrack_kd_register_modalities"]


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_adapter_declarations(name):
    _, adapter = PLUGINS[name]
    assert issubclass(adapter, ModalityAdapter) and adapter.name == name
    assert issubclass(adapter.Options, AdapterOptions)
    assert adapter.description and "\n" not in adapter.description
    default = adapter()
    assert len(default.mean) == len(default.std) == default.channels
    assert all(value > 0 for value in default.std)
    # Defaults survive the recipe's JSON round trip (the resolved recipe is written to disk).
    assert (
        adapter.Options.model_validate(default.options.model_dump(mode="json")) == default.options
    )


def test_event_channels_follow_the_representation():
    event = modality_adapters.event
    assert event.EventAdapter().channels == 3
    voxel = event.EventAdapter(event.EventOptions(representation="voxel", bins=7))
    assert voxel.channels == 7 and len(voxel.mean) == 7
    assert voxel.normalise(np.ones((2, 2, 7), np.float32)).shape == (2, 2, 7)
