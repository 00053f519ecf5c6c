"""A throwaway modality and dataset plugin with their own option schemas, for recipe tests."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmtrack_kd import hookimpl
from mmtrack_kd.data import AdapterOptions, DatasetOptions, DatasetPlugin, ModalityAdapter


class ToyThermal(ModalityAdapter):
    name = "toy-thermal"
    channels = 3
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)

    class Options(AdapterOptions):
        bits: Literal[8, 16] = 8
        gain: float = Field(1.0, gt=0)

    def read(self, sequence, index):
        raise NotImplementedError

    def render(self, frame):
        raise NotImplementedError


class ToyDataset(DatasetPlugin):
    name = "toy-data"
    modalities = ("rgb", "toy-thermal")
    splits = ("train", "test")
    protocol = "otb"

    class Options(DatasetOptions):
        annotated_every: int = Field(1, ge=1)

    def list_sequences(self):
        return []

    def load_sequence(self, name):
        raise KeyError(name)


@hookimpl
def mmtrack_kd_register_modalities(register):
    register(ToyThermal)


@hookimpl
def mmtrack_kd_register_datasets(register):
    register(ToyDataset)


def toy_registry():
    """A registry holding only the toy plugins."""
    from mmtrack_kd.plugins import load_registry
    import sys

    return load_registry(only=[], extra_plugins=[("toy", sys.modules[__name__])])


