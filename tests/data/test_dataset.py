"""The dataset-plugin interface: facts that depend on the options live on the instance."""

from __future__ import annotations

from typing import ClassVar

import pytest

from mmtrack_kd.data import DataError, DatasetOptions, DatasetPlugin
from mmtrack_kd.data.loader import load_sequences


class ScoredOptions(DatasetOptions):
    aux: str = "thermal"
    protocol: str = "otb"
    split: str = "test"


class Scored(DatasetPlugin):
    """A dataset whose second stream and protocol are options."""

    name: ClassVar[str] = "scored"
    Options = ScoredOptions
    modalities = ("rgb", "thermal")
    splits: ClassVar[tuple[str, ...]] = ("test",)
    protocol = "otb"
    attribute_names = ("IV",)

    @classmethod
    def modalities_for(cls, options: ScoredOptions) -> tuple[str, ...]:
        return ("rgb", options.aux)

    @classmethod
    def protocol_for(cls, options: ScoredOptions) -> str:
        return options.protocol

    def list_sequences(self) -> list[str]:
        return []

    def load_sequence(self, name: str):
        raise KeyError(name)


def test_an_instance_holds_its_configurations_facts_and_the_class_its_defaults(tmp_path):
    dataset = Scored(ScoredOptions(root=tmp_path, aux="depth", protocol="vot"))
    assert (dataset.modalities, dataset.protocol, dataset.attribute_names) == (("rgb", "depth"), "vot", ("IV",))
    assert (Scored.modalities, Scored.protocol) == (("rgb", "thermal"), "otb")
    plain = Scored(ScoredOptions(root=tmp_path))
    assert (plain.modalities, plain.protocol) == (Scored.modalities, Scored.protocol)


def test_the_stream_check_reads_the_instance(tmp_path):
    dataset = Scored(ScoredOptions(root=tmp_path, aux="depth"))
    assert load_sequences(dataset, ["depth"]) == ("scored", [])
    # the class-level default (thermal) is not what this instance carries
    with pytest.raises(DataError, match="dataset scored carries rgb, depth; it has no thermal stream"):
        load_sequences(dataset, ["thermal"])
