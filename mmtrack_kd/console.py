"""The rich console and logging set-up shared by every command."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

console = Console()
error_console = Console(stderr=True)


def name_column(table: Table, header: str) -> None:
    """Add a text column that wraps a long name over lines instead of cutting it to ``teac…``
    when the table must fit a narrow terminal (80 columns)."""
    table.add_column(header, overflow="fold")


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Route logging through rich. INFO is shown on a terminal and off it alike (a log file of
    a batch job needs its progress lines and normal events as much as a terminal does);
    ``-q`` shows warnings and errors only, ``-vv`` shows DEBUG."""
    if quiet:
        level = logging.WARNING
    elif verbose >= 2:
        level = logging.DEBUG
    else:
        level = logging.INFO
    handler = RichHandler(console=error_console, show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)


class ProgressLog:
    """Progress as log lines, for when no progress bar is drawn (output is not a terminal):
    one INFO line every ``every`` steps (default: a tenth of the total) and one at the end.

    Args:
        log: the logger to write to.
        what: what is counted, e.g. ``"student: tracked"``.
        total: the number of steps.
        every: steps between lines (``None``: ``total // 10``, at least 1).
        enabled: ``None``: only when the error console is not a terminal.
    """

    def __init__(self, log: logging.Logger, what: str, total: int, every: int | None = None,
                 enabled: bool | None = None) -> None:
        self.log, self.what, self.total = log, what, total
        self.every = max(1, every if every is not None else total // 10)
        self.enabled = (not error_console.is_terminal) if enabled is None else enabled
        self.done = 0

    def step(self, detail: str = "", count: int = 1) -> None:
        """Count ``count`` steps; log a line when a multiple of ``every`` or the end is passed."""
        before, self.done = self.done, self.done + count
        if self.enabled and (self.done // self.every > before // self.every or self.done >= self.total):
            suffix = f" ({detail})" if detail else ""
            self.log.info("%s %d of %d%s", self.what, self.done, self.total, suffix)
