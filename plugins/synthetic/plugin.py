"""The ``synthetic`` dataset plugin: generate on first use, then read through the real plugin.

:class:`SyntheticDataset` resolves its root like every dataset (option ``root`` or
``MMTRACK_KD_SYNTHETIC_ROOT``); when that folder is missing or empty it generates the data there
(both splits, logged with timing), and when the folder was generated with other options it
refuses (or regenerates, ``on_mismatch: regenerate``). Listing and loading are delegated to the
real dataset plugin of the chosen layout, found in the plugin registry (never imported by
name), so the synthetic data exercises exactly the code path of the real benchmark.

Its ``modalities``, ``protocol`` and ``attribute_names`` follow the layout (the class methods
``modalities_for``, ``protocol_for`` and ``attribute_names_for``, from the layout's writer); on
the class they describe the default layout (``lasher``), as the dataset-plugin interface says.
The ``mmtrack-kd synth`` command is in :mod:`plugins.synthetic.command`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from mmtrack_kd.data import DataError, DatasetPlugin, Sequence, installed_plugins, root_variable
from plugins.synthetic.generate import GenerationReport, ensure_generated, load_truth
from plugins.synthetic.layouts import LASHER_ATTRIBUTES, WRITERS
from plugins.synthetic.options import SyntheticOptions, generation_options


class SyntheticDataset(DatasetPlugin):
    """Generated sequences in a real layout (see the module docstring).

    Args:
        options: the plugin's options.
        registry: the plugin registry to find the layout's real plugin in (default: the
            installed plugins); tests pass their own.
    """

    name = "synthetic"
    Options = SyntheticOptions
    modalities: tuple[str, ...] = ("rgb", "thermal")
    splits = ("train", "test")
    protocol: str = "lasher"
    attribute_names: tuple[str, ...] = LASHER_ATTRIBUTES
    description = "Generated RGB-T / RGB-D / RGB-E sequences in the LasHeR, DepthTrack or VisEvent layout."
    layout = (
        "The folder is generated on first use (an empty or missing folder is filled): set "
        "`root` to a folder of your choice, e.g. runs/<run>/data/synthetic-lasher."
    )
    options: SyntheticOptions

    def __init__(self, options: SyntheticOptions | None = None, registry: Any = None) -> None:
        self._registry = registry
        self.report: GenerationReport | None = None
        self._real: DatasetPlugin | None = None
        options = options if options is not None else self.Options()
        # Find the layout's reader before generating anything for it.
        self.layout_class(options.layout, registry)
        super().__init__(options)

    @property
    def real(self) -> DatasetPlugin:
        """The real plugin of the layout, reading this root (created on first use)."""
        if self._real is None:
            real_cls = self.layout_class(self.options.layout, self._registry)
            self._real = real_cls(
                real_cls.Options(root=self.root, split=self.options.split, sequences=self.options.sequences)
            )
        return self._real

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for worker processes: the real plugin (with its caches) and a test's
        # registry stay behind; a copy finds the installed plugin again on first use.
        state = dict(self.__dict__)
        state["_real"] = None
        state["_registry"] = None
        return state

    @staticmethod
    def layout_class(layout: str, registry: Any = None) -> type[DatasetPlugin]:
        """The real dataset plugin class that reads ``layout``, from the registry."""
        return (registry or installed_plugins()).dataset(WRITERS[layout].dataset)

    @classmethod
    def modalities_for(cls, options: SyntheticOptions) -> tuple[str, ...]:
        """The streams of the chosen layout (``depthtrack``: rgb and depth)."""
        return ("rgb", WRITERS[options.layout].aux)

    @classmethod
    def protocol_for(cls, options: SyntheticOptions) -> str:
        """The protocol of the benchmark whose layout is written (``depthtrack``'s for it)."""
        return WRITERS[options.layout].protocol

    @classmethod
    def attribute_names_for(cls, options: SyntheticOptions) -> tuple[str, ...]:
        """The layout's attribute vocabulary, with what the generator adds to it."""
        return WRITERS[options.layout].attribute_names

    @classmethod
    def generated_data(cls, options: SyntheticOptions) -> tuple[Path, dict[str, Any]] | None:
        """The root it generates and the options that decide the bytes (not the split)."""
        if options.root is None:
            return None
        return Path(options.root).expanduser(), generation_options(options)

    def resolve_root(self) -> Path:
        variable = root_variable(self.name)
        root = self.options.root or (Path(os.environ[variable]) if os.environ.get(variable) else None)
        if root is None:
            raise DataError(
                f"dataset {self.name}: no root folder given; set `root` in the recipe's dataset "
                f"entry or the environment variable {variable}. {self.layout}"
            )
        root = Path(root).expanduser()
        self.report = ensure_generated(root, self.options)
        return root

    def list_sequences(self) -> list[str]:
        return self.real.list_sequences()

    def load_sequence(self, name: str) -> Sequence:
        sequence = self.real.load_sequence(name)
        return dataclasses.replace(sequence, dataset=self.name)

    def load_groundtruth(self, name: str) -> Sequence:
        """Ground truth without frames (for scoring result files), as the real plugin gives it."""
        sequence = self.real.load_groundtruth(name)  # type: ignore[attr-defined]
        return dataclasses.replace(sequence, dataset=self.name)

    def truth(self, name: str) -> dict[str, Any]:
        """The generator's truth about sequence ``name``: spells, per-frame visibility of the
        target in each stream (``rgb_visibility``, ``aux_visibility``), the ``dominant`` stream
        per frame (``both``, ``rgb``, ``aux``, ``none``), occlusion and every object's boxes."""
        return load_truth(self.root, self.options.split, name)
