"""``mmtrack_kd.data`` is the whole plugin API: the built-in plugins, which a third-party plugin
would copy, import nothing else of the engine and no other plugin package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Each plugin package and the packages it may import of this repository.
PACKAGES = {"plugins": {"plugins"}, "modality_adapters": {"modality_adapters"}}


def project_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every import of ``mmtrack_kd``, ``plugins`` or
    ``modality_adapters`` in a source file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
    return [item for item in found if item[1].split(".")[0] in {"mmtrack_kd", *PACKAGES}]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_plugins_import_only_the_public_api(package):
    wrong = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module, names in project_imports(path):
            public = module == "mmtrack_kd.data" or (module == "mmtrack_kd" and names == ["hookimpl"])
            own = module.split(".")[0] in PACKAGES[package]
            if not (public or own):
                wrong.append(f"{path.relative_to(REPO)}:{line}: {module}")
    assert not wrong, "import from mmtrack_kd.data (or mmtrack_kd.hookimpl) instead:\n" + "\n".join(wrong)
