"""Errors that end a command with one readable message and exit status 2.

Everything a user can cause (a recipe typo, a missing dataset file, a checkpoint of the wrong
shape, an unknown plugin) raises a subclass of :class:`MmtrackError`. The CLI prints its message
without a traceback; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class MmtrackError(Exception):
    """Base class of user-facing errors; ``str(error)`` is the whole message."""

    exit_code: int = 2


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
