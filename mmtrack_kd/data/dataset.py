"""The dataset-plugin interface that dataset plugins implement."""

from __future__ import annotations

import abc
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Iterator

from pydantic import BaseModel, ConfigDict, Field

from mmtrack_kd.data.sequence import Sequence
from mmtrack_kd.errors import DataError


class DatasetOptions(BaseModel):
    """Options every dataset plugin accepts; a plugin subclasses this to add its own."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    root: Path | None = Field(
        None,
        description="Dataset folder. When unset, the environment variable "
        "MMTRACK_KD_<NAME>_ROOT (e.g. MMTRACK_KD_LASHER_ROOT) is used.",
    )
    split: str = Field("train", description="Which split to list (the plugin's `splits`).")
    sequences: list[str] | None = Field(
        None, description="Restrict the split to these sequence names."
    )


def root_variable(dataset_name: str) -> str:
    """Environment variable that names a dataset's root: ``MMTRACK_KD_<NAME>_ROOT``."""
    return "MMTRACK_KD_" + re.sub(r"[^A-Z0-9]", "_", dataset_name.upper()) + "_ROOT"


class DatasetPlugin(abc.ABC):
    """Lists the sequences of one benchmark's split from its real on-disk layout.

    Class attributes:
        name: registry name (``"lasher"``).
        Options: pydantic options model (a :class:`DatasetOptions` subclass).
        modalities: streams it carries, RGB first (``("rgb", "thermal")``).
        splits: split names (``("train", "test")``).
        protocol: name of its evaluation protocol (``"lasher"``).
        attribute_names: its attribute vocabulary, in the dataset's own order.
        layout: what the root folder must contain, shown when the root is missing.
        description: one line for ``mmtrack-kd plugins``.

    ``modalities``, ``protocol`` and ``attribute_names`` may depend on the options (the
    ``folder`` dataset carries the modality its ``aux`` option names; the ``synthetic`` one
    follows its ``layout``). On the class they describe the default options; an instance holds
    its own configuration's values, which :meth:`modalities_for`, :meth:`protocol_for` and
    :meth:`attribute_names_for` give before any instance exists. A plugin whose facts depend on
    its options overrides those three class methods, and nothing else: code that holds an
    instance reads the instance, and code that holds only a class and options (the recipe
    check) asks the class methods, never the bare class attributes.
    """

    name: ClassVar[str]
    Options: ClassVar[type[DatasetOptions]] = DatasetOptions
    modalities: tuple[str, ...]
    splits: ClassVar[tuple[str, ...]]
    protocol: str
    attribute_names: tuple[str, ...] = ()
    layout: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, options: DatasetOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()
        if self.options.split not in self.splits:
            raise DataError(
                f"dataset {self.name}: unknown split {self.options.split!r}; "
                f"it has {', '.join(self.splits)}"
            )
        self.modalities = self.modalities_for(self.options)
        self.protocol = self.protocol_for(self.options)
        self.attribute_names = self.attribute_names_for(self.options)
        self.root = self.resolve_root()

    @classmethod
    def modalities_for(cls, options: DatasetOptions) -> tuple[str, ...]:
        """The streams a dataset configured with ``options`` carries, RGB first.

        ``modalities`` unless an option chooses them (the ``folder`` plugin's ``aux``). The
        recipe check asks this, before any root is read, so a recipe that pairs a dataset with
        a modality it does not carry fails ``recipe check`` as it would fail ``train``.
        """
        return tuple(cls.modalities)

    @classmethod
    def protocol_for(cls, options: DatasetOptions) -> str:
        """The evaluation protocol of a dataset configured with ``options``: ``protocol``
        unless an option chooses it (the ``synthetic`` plugin's ``layout``)."""
        return cls.protocol

    @classmethod
    def attribute_names_for(cls, options: DatasetOptions) -> tuple[str, ...]:
        """The attribute vocabulary of a dataset configured with ``options``:
        ``attribute_names`` unless an option chooses it."""
        return tuple(cls.attribute_names)

    @classmethod
    def generated_data(cls, options: DatasetOptions) -> tuple[Path, dict[str, Any]] | None:
        """For a plugin that writes its data on first use: the folder it writes and the options
        that decide what it writes; ``None`` (the default) for data read as it is.

        Two recipe entries with the same folder must ask for the same data (the recipe check
        says so before the second one finds the first one's data and refuses it).
        """
        return None

    def resolve_root(self) -> Path:
        """The dataset folder from the options or the environment; missing is a DataError
        that says where the data should be and what it must contain."""
        variable = root_variable(self.name)
        root = self.options.root or (Path(os.environ[variable]) if os.environ.get(variable) else None)
        if root is None:
            raise DataError(
                f"dataset {self.name}: no root folder given; set `root` in the recipe's dataset "
                f"entry or the environment variable {variable}.\n{self.layout}".rstrip()
            )
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DataError(
                f"dataset {self.name}: root folder {root} does not exist. Download the dataset "
                f"and point `root` (or {variable}) at it.\n{self.layout}".rstrip()
            )
        return root

    @abc.abstractmethod
    def list_sequences(self) -> list[str]:
        """Names of the sequences of the chosen split (honouring ``options.sequences``),
        without reading any image."""

    @abc.abstractmethod
    def load_sequence(self, name: str) -> Sequence:
        """One sequence with its frame paths, ground truth, visibility and attributes."""

    def load_groundtruth(self, name: str) -> Sequence:
        """Ground truth, visibility and attributes of one sequence without needing its frames
        on disk (scoring published results). Built-in plugins override this; the default reads
        the whole sequence."""
        return self.load_sequence(name)

    def sequences(self) -> Iterator[Sequence]:
        """Every sequence of the chosen split, in listing order."""
        for name in self.list_sequences():
            yield self.load_sequence(name)
