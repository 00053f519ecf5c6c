"""The layers of docs/architecture.md, checked on the source: nothing imports upward.

Each module of ``mmtrack_kd`` belongs to one layer. An import at module top may reach its own
layer or one below it. An import inside a function may reach higher only where the module
states why (listed in :data:`LAZY_UPWARD`, with the reason). The built-in plugin packages import
only the public plugin API.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Layers, bottom first: (name, module prefixes). A module's layer is that of its longest
#: matching prefix, so ``mmtrack_kd.data.loader`` sits above the rest of ``mmtrack_kd.data``; a
#: prefix ending in ``=`` names one module only (the ``mmtrack_kd.data`` package itself is the
#: public plugin API, which hands plugins the registry).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("runtime", ("mmtrack_kd=", "mmtrack_kd.errors", "mmtrack_kd.console", "mmtrack_kd.hookspecs",
                 "mmtrack_kd.runtime")),
    ("models and data types", ("mmtrack_kd.models", "mmtrack_kd.data")),
    ("plugin registry and API", ("mmtrack_kd.plugins", "mmtrack_kd.data.lookup", "mmtrack_kd.data=")),
    ("recipe and loader", ("mmtrack_kd.recipe", "mmtrack_kd.recipe_yaml", "mmtrack_kd.data.loader",
                           "mmtrack_kd.data.bench")),
    ("checkpoints", ("mmtrack_kd.checkpoints",)),
    ("training, tracking, export", ("mmtrack_kd.engine", "mmtrack_kd.tracking", "mmtrack_kd.export")),
    ("evaluation", ("mmtrack_kd.evaluation",)),
    ("experiments and benchmarks", ("mmtrack_kd.experiments", "mmtrack_kd.benchmark")),
    ("command line", ("mmtrack_kd.cli", "mmtrack_kd.__main__")),
]

#: Packages of one layer that stay out of each other: training, tracking and export share
#: only what lies below them.
SIBLINGS = ("mmtrack_kd.engine", "mmtrack_kd.tracking", "mmtrack_kd.export")

#: (importer, imported prefix): the function-level imports that reach a higher layer, and why.
LAZY_UPWARD: dict[tuple[str, str], str] = {
    ("mmtrack_kd.plugins", "mmtrack_kd.evaluation.protocols.base"):
        "the registry checks a registered protocol against its base class; evaluation itself "
        "looks protocols up in the registry",
}

#: The public API a built-in plugin package may import from the project.
PLUGIN_API = ("mmtrack_kd.data", "mmtrack_kd.hookimpl")


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


def layer_of(module: str) -> int:
    best, level = "", None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            exact = prefix.endswith("=")
            prefix = prefix.rstrip("=")
            matches = module == prefix or (not exact and module.startswith(prefix + "."))
            if matches and (len(prefix) > len(best) or (exact and len(prefix) == len(best))):
                best, level = prefix, index
    assert level is not None, f"{module} is in no layer of LAYERS"
    return level


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(module, line, at_top)`` of every absolute project import in ``path``; imports under
    ``if TYPE_CHECKING:`` are left out (they never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(node) for stmt in tree.body if isinstance(stmt, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(stmt.test) for node in ast.walk(stmt)}
    top = {id(stmt) for stmt in tree.body}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(name, node.lineno, id(node) in top) for name in names if name.split(".")[0] == "mmtrack_kd"]
    return found


SOURCES = sorted((REPO / "mmtrack_kd").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_imports_upward(path: Path) -> None:
    importer = module_name(path)
    level = layer_of(importer)
    for imported, line, at_top in imports(path):
        target = layer_of(imported)
        where = f"{path.relative_to(REPO)}:{line} imports {imported}"
        if target > level:
            allowed = [reason for (who, prefix), reason in LAZY_UPWARD.items()
                       if who == importer and (imported == prefix or imported.startswith(prefix + "."))]
            assert allowed and not at_top, (
                f"{where}: layer '{LAYERS[target][0]}' is above '{LAYERS[level][0]}'")
        own = next((s for s in SIBLINGS if importer == s or importer.startswith(s + ".")), None)
        other = next((s for s in SIBLINGS if imported == s or imported.startswith(s + ".")), None)
        assert own is None or other is None or own == other, f"{where}: {own} and {other} are siblings"


def test_every_upward_exception_is_still_needed() -> None:
    """An exception nobody uses any more is a rule nobody checks."""
    used = set()
    for path in SOURCES:
        for imported, _, _ in imports(path):
            for who, prefix in LAZY_UPWARD:
                if module_name(path) == who and (imported == prefix or imported.startswith(prefix + ".")):
                    used.add((who, prefix))
    assert used == set(LAZY_UPWARD)


@pytest.mark.parametrize("path", sorted([*(REPO / "plugins").rglob("*.py"), *(REPO / "modality_adapters").rglob("*.py")]),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_built_in_plugins_use_only_the_public_plugin_api(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "mmtrack_kd" else [f"mmtrack_kd.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "mmtrack_kd":
                assert name in PLUGIN_API, f"{path.relative_to(REPO)}:{node.lineno} imports {name}"


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself: a model module importing the trainer is refused, and a module no layer
    names is an error rather than the bottom layer."""
    assert layer_of("mmtrack_kd.models.vit") < layer_of("mmtrack_kd.engine.trainer")
    assert layer_of("mmtrack_kd") == 0
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("mmtrack_kd.newmodule")
    assert layer_of("mmtrack_kd.data.loader") > layer_of("mmtrack_kd.data.dataset")
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom mmtrack_kd.engine.trainer import StageTrainer\n\n"
                   "def f():\n    from mmtrack_kd.cli import main\n")
    assert imports(bad) == [("mmtrack_kd.engine.trainer", 2, True), ("mmtrack_kd.cli", 5, False)]
