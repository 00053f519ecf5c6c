"""The ``synthetic`` dataset plugin: generate on first use, then read through the real plugin.

:class:`SyntheticDataset` resolves its root like every dataset (option ``root`` or
``MMTRACK_KD_SYNTHETIC_ROOT``); when that folder is missing or empty it generates the data there
(both splits, logged with timing), and when the folder was generated with other options it
refuses (or regenerates, ``on_mismatch: regenerate``). Listing and loading are delegated to the
real dataset plugin of the chosen layout, found in the plugin registry (never imported by
name), so the synthetic data exercises exactly the code path of the real benchmark.

Its ``modalities``, ``protocol`` and ``attribute_names`` follow the layout and are set on the
instance. On the class, ``modalities`` lists every stream some layout carries (so a check made
before construction, with the recipe's modality, passes for any layout); ``protocol`` and
``attribute_names`` there describe the default layout (``lasher``). Code that needs the exact
values reads them from the instance.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from mmtrack_kd.data.dataset import DatasetPlugin, root_variable
from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import DataError, RecipeError
from mmtrack_kd.recipe import validation_problems
from plugins.synthetic.generate import GenerationReport, ensure_generated, load_truth
from plugins.synthetic.layouts import LASHER_ATTRIBUTES, WRITERS
from plugins.synthetic.options import FINGERPRINT_FIELDS, SyntheticOptions, generation_options


def recipe_entry(options: SyntheticOptions) -> str:
    """A recipe dataset entry (YAML flow mapping) that reads the data ``options`` describe:
    the root, the split, and every generation option that differs from its default."""
    defaults = SyntheticOptions().model_dump(mode="json")
    current = options.model_dump(mode="json")
    parts = ["name: synthetic", f"layout: {options.layout}", f"root: {options.root}", f"split: {options.split}"]
    for key in FINGERPRINT_FIELDS:
        if key != "layout" and current[key] != defaults[key]:
            parts.append(f"{key}: {json.dumps(current[key])}")
    return "{" + ", ".join(parts) + "}"

# `mmtrack-kd synth` flags whose option field has another name (the rest are `--<field>`).
_SYNTH_FLAGS = {"n_train": "--sequences", "n_test": "--test-sequences", "on_mismatch": "--force"}


class SyntheticDataset(DatasetPlugin):
    """Generated sequences in a real layout (see the module docstring).

    Args:
        options: the plugin's options.
        registry: the plugin registry to find the layout's real plugin in (default: the
            installed plugins); tests pass their own.
    """

    name = "synthetic"
    Options = SyntheticOptions
    modalities: ClassVar[tuple[str, ...]] = ("rgb", "thermal", "depth", "event")
    splits = ("train", "test")
    protocol: ClassVar[str] = "lasher"
    attribute_names: ClassVar[tuple[str, ...]] = LASHER_ATTRIBUTES
    description = "Generated RGB-T / RGB-D / RGB-E sequences in the LasHeR, DepthTrack or VisEvent layout."
    layout = (
        "The folder is generated on first use (an empty or missing folder is filled): set "
        "`root` to a folder of your choice, e.g. runs/<run>/data/synthetic-lasher."
    )
    options: SyntheticOptions

    def __init__(self, options: SyntheticOptions | None = None, registry: Any = None) -> None:
        self._registry = registry
        self.report: GenerationReport | None = None
        options = options if options is not None else self.Options()
        # Find the layout's reader before generating anything for it.
        real_cls = self.layout_class(options.layout, registry)
        super().__init__(options)
        # Instance attributes: exactly what this layout carries (see the module docstring).
        self.modalities = tuple(real_cls.modalities)
        self.protocol = real_cls.protocol
        # The real vocabulary, plus what the generator adds (VisEvent has none of its own).
        written = WRITERS[self.options.layout].attribute_names
        self.attribute_names = tuple(dict.fromkeys([*real_cls.attribute_names, *written]))
        self._real: DatasetPlugin | None = None

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
        if registry is None:
            from mmtrack_kd.plugins import default_registry

            registry = default_registry()
        return registry.dataset(WRITERS[layout].dataset)

    @classmethod
    def modalities_for(cls, options: SyntheticOptions) -> tuple[str, ...]:
        """The streams of the chosen layout (``depthtrack``: rgb and depth)."""
        return cls.layout_class(options.layout).modalities

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

    # -- the `mmtrack-kd synth` command ---------------------------------------------------

    @classmethod
    def synth(
        cls,
        root: Path | None = None,
        *,
        layout: str = "lasher",
        sequences: int = 20,
        test_sequences: int | None = None,
        frames: int = 100,
        width: int = 320,
        height: int = 240,
        seed: int = 0,
        workers: int = 2,
        force: bool = False,
        preview: bool = False,
        out: Path | None = None,
        registry: Any = None,
    ) -> list[str]:
        """What ``mmtrack-kd synth`` does; returns the lines to print.

        Without ``preview``: generate ``root`` (default ``data/synthetic-<layout>``;
        ``sequences`` train and ``test_sequences``,
        default the same number, test sequences) unless it already holds exactly that data;
        ``force`` rewrites data generated with other options. With ``preview``: write a
        contact sheet PNG (a few frames of every stream of each of the three layouts, from
        small generated samples with the same seed and sizes) to ``out``
        (default ``synthetic-preview.png``) and generate nothing else. ``registry``: where
        the preview finds the plugins (default: the installed ones).

        Raises:
            DataError: ``root`` holds other data, or other synthetic data without ``force``.
        """
        if preview:
            from plugins.synthetic.preview import write_preview

            path = write_preview(
                Path(out) if out else Path("synthetic-preview.png"),
                seed=seed,
                frames=frames,
                width=width,
                height=height,
                registry=registry,
            )
            return [f"wrote the synthetic-data contact sheet {path}"]
        if root is None:
            root = Path("data") / f"synthetic-{layout}"
        try:
            options = SyntheticOptions(
                root=Path(root),
                layout=layout,  # type: ignore[arg-type]
                n_train=sequences,
                n_test=sequences if test_sequences is None else test_sequences,
                frames=frames,
                width=width,
                height=height,
                seed=seed,
                workers=workers,
                on_mismatch="regenerate" if force else "error",
            )
        except ValidationError as error:
            problems = [(_SYNTH_FLAGS.get(path, "--" + path.replace("_", "-")), message)
                        for path, message in validation_problems(error)]
            raise RecipeError("mmtrack-kd synth", problems, what="options of") from None
        report = ensure_generated(Path(root), options)
        return [report.message, f"recipe dataset entry: {recipe_entry(options)}"]
