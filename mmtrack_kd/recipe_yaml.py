"""Recipe text: the YAML reader recipes and arms tables share, and ``--set KEY=VALUE`` overrides.

The reader is PyYAML's safe loader with three changes a recipe author expects: ``1e-4`` is a
float, a key written twice in one mapping is an error, and a file whose aliases expand past
:data:`MAX_EXPANDED_VALUES` values is refused. Every problem is a :class:`RecipeError` naming
the file (or ``--set``) and the line or key.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from mmtrack_kd.errors import RecipeError


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float: YAML 1.1 requires a dot (``1.0e-4``), which
    surprises everyone who writes learning rates; and refuses a key given twice in one mapping
    (YAML keeps the last silently, so the value a user edited may not be the one used)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            # `<<: *base` merges are how recipes share sections: only a key written twice counts
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice (first on line {seen[key] + 1})",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


#: Most values a recipe may expand to once YAML aliases are followed: a few thousand at most in a
#: real recipe, while a "billion laughs" file of nested aliases expands to 10**9 and more.
MAX_EXPANDED_VALUES = 100_000


def _expanded_size(value: Any, limit: int) -> int:
    """How many values ``value`` holds with every alias expanded, counted up to ``limit``."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_yaml(text: str, source: str = "<text>") -> Any:
    """Parse YAML with :class:`_Loader`; syntax errors become a RecipeError with the line."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(error, "problem", None) or str(error)
        raise RecipeError(source, [(where, f"YAML syntax: {problem}")]) from None
    except RecursionError:
        raise RecipeError(source, [("(file)", "nested too deeply to be a recipe")]) from None
    if _expanded_size(data, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
        raise RecipeError(source, [("(file)", f"expands to more than {MAX_EXPANDED_VALUES:,} values "
                                              "once its aliases (*name) are followed; not a recipe")])
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.0.c=value`` into its key path and its value parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError("--set", [(text, "expected KEY=VALUE, e.g. train.loss.l1=5")])
    return key.strip().split("."), parse_yaml(value, f"--set {key}") if value.strip() else None


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``value`` at ``path`` inside nested dicts and lists, creating dicts as needed."""
    node: Any = data
    for depth, key in enumerate(path):
        last = depth == len(path) - 1
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            if not key.lstrip("-").isdigit() or not -len(node) <= int(key) < len(node):
                raise RecipeError("--set", [(where, f"no list item {key} (list has {len(node)})")])
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                if not isinstance(node.get(key), (dict, list)):
                    node[key] = {}
                node = node[key]
        else:
            raise RecipeError("--set", [(where, f"cannot set a key inside a {type(node).__name__}")])
