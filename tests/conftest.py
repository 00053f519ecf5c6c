"""Shared fixtures: throwaway plugin distributions discoverable through entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture
def make_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write an installed-looking distribution (a ``.dist-info`` folder with entry points and
    its modules) into a folder on ``sys.path``, so ``importlib.metadata`` discovers it exactly
    as it discovers a pip-installed plugin package."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    added_modules: list[str] = []

    def make(name: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = ["[mmtrack_kd]"] + [f"{key} = {value}" for key, value in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            added_modules.append(module)
        return site

    yield make
    for module in added_modules:
        sys.modules.pop(module, None)
