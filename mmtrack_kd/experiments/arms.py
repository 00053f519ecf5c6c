"""The arms table: base recipes per modality plus a few overrides per arm.

``recipes/experiments/arms.yaml`` names the modalities (a base recipe each, the benchmark whose
paper numbers stand beside ours, the attributes that mark a switch of the dominant stream) and
the arms (a stage, the overrides on the base, the teacher arm a student needs, the paper rows the
arm stands for). :func:`load_arms` validates the file once and returns an :class:`ArmsTable`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from mmtrack_kd.errors import MmtrackError, RecipeError
from mmtrack_kd.recipe import Section, validation_problems
from mmtrack_kd.recipe_yaml import parse_yaml

#: Default arms table.
DEFAULT_ARMS = Path("recipes/experiments/arms.yaml")
#: Order in which groups are run: main arms (every seed) first, then the other modalities, then
#: the ablations.
GROUP_ORDER = ("main", "modality", "ablation")


@dataclass(frozen=True)
class Arm:
    """One row of the arms table."""

    name: str
    description: str
    stage: str
    modalities: tuple[str, ...]
    group: str
    overrides: tuple[str, ...]
    teacher: str | None = None
    paper: dict[str, str] = field(default_factory=dict)
    #: an ablation that runs every seed (after the first seed's ablations), not only the first
    all_seeds: bool = False


@dataclass(frozen=True)
class Modality:
    """A modality's base recipe and the attributes that mark a switch of the dominant stream."""

    key: str
    base: Path
    benchmark: str
    switch_attributes: tuple[str, ...]
    all_seeds: bool


@dataclass(frozen=True)
class ArmsTable:
    """A validated arms table: its file, its modalities and its arms (both in file order)."""

    path: Path
    modalities: dict[str, Modality]
    arms: dict[str, Arm]


class _ModalityEntry(Section):
    """A ``modalities`` entry of the arms table (the file's schema; unknown keys are errors)."""

    base: str
    benchmark: str | None = None
    switch_attributes: list[str] = Field(default_factory=list)
    all_seeds: bool | None = None


class _ArmEntry(Section):
    """An ``arms`` entry of the arms table."""

    stage: Literal["teacher", "student"]
    description: str | None = None
    modalities: list[str] = Field(default_factory=lambda: ["rgbt"])
    group: Literal[GROUP_ORDER] = "ablation"  # type: ignore[valid-type]
    set: list[str] = Field(default_factory=list)
    teacher: str | None = None
    paper: dict[str, str] = Field(default_factory=dict)
    all_seeds: bool = False


class _ArmsFile(Section):
    modalities: dict[str, _ModalityEntry] = Field(default_factory=dict)
    arms: dict[str, _ArmEntry] = Field(default_factory=dict)


def load_arms(path: str | os.PathLike[str] = DEFAULT_ARMS) -> ArmsTable:
    """Read an arms table (a file, or the folder holding ``arms.yaml``); a schema problem is a
    :class:`RecipeError` naming every bad key by its path (``arms.teacher.all_seed``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "arms.yaml"
    if not path.is_file():
        raise MmtrackError(f"{path}: no arms table")
    try:
        data = _ArmsFile.model_validate(parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {})
    except ValidationError as error:
        raise RecipeError(str(path), validation_problems(error), what="arms table") from None
    modalities = {
        key: Modality(
            key=key,
            base=(path.parent / entry.base).resolve(),
            benchmark=entry.benchmark or key,
            switch_attributes=tuple(entry.switch_attributes),
            all_seeds=entry.all_seeds if entry.all_seeds is not None else key == "rgbt",
        )
        for key, entry in data.modalities.items()
    }
    arms = {}
    for name, entry in data.arms.items():
        arm = Arm(
            name=name,
            description=" ".join((entry.description or name).split()),
            stage=entry.stage,
            modalities=tuple(entry.modalities),
            group=entry.group,
            overrides=tuple(entry.set),
            teacher=entry.teacher,
            paper=dict(entry.paper),
            all_seeds=entry.all_seeds,
        )
        missing = [m for m in arm.modalities if m not in modalities]
        if missing:
            raise MmtrackError(f"{path}: arm {name}: unknown modalities {missing}")
        arms[name] = arm
    for arm in arms.values():
        if arm.teacher is not None and (arm.teacher not in arms or arms[arm.teacher].stage != "teacher"):
            raise MmtrackError(f"{path}: arm {arm.name}: teacher {arm.teacher!r} is not a teacher arm")
    return ArmsTable(path, modalities, arms)
