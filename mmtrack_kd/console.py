"""The rich console and logging set-up shared by every command."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler

console = Console()
error_console = Console(stderr=True)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Route logging through rich. On a terminal INFO is shown; when output is not a terminal
    (CI logs, pipes) only warnings, unless ``-v`` is given; ``-vv`` shows DEBUG."""
    interactive = sys.stderr.isatty()
    if quiet:
        level = logging.WARNING
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1 or interactive:
        level = logging.INFO
    else:
        level = logging.WARNING
    handler = RichHandler(console=error_console, show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)
