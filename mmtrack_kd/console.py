"""The rich console and logging set-up shared by every command."""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn
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


class ProgressBar:
    """A rich progress bar of steps with a status (loss terms, samples/s) and the ETA, drawn
    only when ``enabled`` and the error console is a terminal (see :class:`ProgressLog` for
    the lines written otherwise).

    Args:
        enabled: False on all but the process that reports (rank 0).
        title: what is counted, e.g. ``"teacher epoch 1/15"``.
        total: the number of steps.
        completed: steps already done (a resumed epoch).
    """

    def __init__(self, enabled: bool, title: str, total: int, completed: int) -> None:
        self.visible = enabled and error_console.is_terminal
        self._progress = None
        if self.visible:
            self._progress = RichProgress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                console=error_console, transient=False,
            )
            self._task = self._progress.add_task(title, total=total, completed=completed, status="")

    def __enter__(self) -> "ProgressBar":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, steps: int, terms: dict[str, float], rate: float) -> None:
        """Count ``steps`` more and show ``terms`` and ``rate`` (samples/s) as the status."""
        if self._progress is None:
            return
        status = " ".join(f"{key} {value:.3f}" for key, value in terms.items()) + f" | {rate:.1f}/s"
        self._progress.update(self._task, advance=steps, status=status)
