"""Fixtures of the experiment tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmtrack_kd.experiments.arms import ArmsTable, load_arms
from tests.experiments.helpers import write_arms_table


@pytest.fixture
def arms_folder(tmp_path: Path) -> Path:
    """A folder with the small arms table of :mod:`tests.experiments.helpers` and its bases."""
    return write_arms_table(tmp_path / "arms")


@pytest.fixture
def arms_table(arms_folder: Path) -> ArmsTable:
    return load_arms(arms_folder)
