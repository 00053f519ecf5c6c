"""Errors that end a command with one readable message and exit status 2.

Everything a user can cause (a recipe typo, a missing dataset file, a checkpoint of the wrong
shape, an unknown plugin) raises a subclass of :class:`MmtrackError`. The CLI prints its message
without a traceback; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for the annotation: this module imports nothing of pydantic's at run time
    from pydantic import ValidationError


class MmtrackError(Exception):
    """Base class of user-facing errors; ``str(error)`` is the whole message."""

    exit_code: int = 2
    #: True when another process has already printed the reason (a refused distributed run).
    quiet: bool = False


class RecipeError(MmtrackError):
    """A recipe that does not validate; ``problems`` holds ``(path, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]], what: str = "recipe") -> None:
        self.source = source
        self.problems = problems
        count = len(problems)
        lines = [f"{what} {source}: {count} problem{'s' if count != 1 else ''}"]
        width = max((len(path) for path, _ in problems), default=0)
        lines += [f"  {path.ljust(width)}  {message}" for path, message in problems]
        super().__init__("\n".join(lines))


class PluginError(MmtrackError):
    """A plugin that cannot be used: unknown name, duplicate registration, bad declaration."""


class DataError(MmtrackError):
    """Dataset content that cannot be read; the message names dataset, sequence and file."""


class CheckpointError(MmtrackError):
    """A checkpoint that cannot be loaded into the model asked for; the message names the key."""


class NotAvailableError(MmtrackError):
    """A command or option whose engine is not built yet."""


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(recipe)"


# The location parts pydantic adds for a union member or a wrap validator (`list[int]`,
# `literal['even','all']`, `function-wrap[...]`): never a recipe key. Bare member tags (`int`,
# `str`, `path`) are left alone: a plugin's option may well be called `path`.
_UNION_TAG = re.compile(r"(list|dict|set|tuple|literal|function-[a-z]+|nullable|union|tagged-union)\[.*\]")


def validation_problems(error: ValidationError) -> list[tuple[str, str]]:
    """A pydantic error as ``(dotted path, message)`` pairs, one per problem: what
    :class:`RecipeError` lists (for a recipe, a plugin's options, a command's flags)."""
    problems: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        # `wrap` validators (the recipe's plugin choices) add the class name to the location of
        # nested errors, and a union adds the member it tried (`list[int]`, `literal['even',...]`):
        # keep the recipe's path, and give one problem a key whose every member failed.
        loc = tuple(
            part for part in item["loc"]
            if part not in ("ModalityChoice", "DatasetChoice")
            and not (isinstance(part, str) and _UNION_TAG.fullmatch(part))
        )
        message = item["msg"]
        if item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        messages = problems.setdefault(_location(loc), [])
        if message not in messages:
            messages.append(message)
    return [(path, "; or ".join(messages)) for path, messages in problems.items()]
