"""Training feedback: ``metrics.jsonl`` lines and optional TensorBoard event files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class MetricsLog:
    """Appends one JSON object a line to ``metrics.jsonl`` (rank 0 only) and mirrors numbers to
    TensorBoard when the optional ``tensorboard`` package is installed."""

    def __init__(self, folder: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(folder) / "metrics.jsonl"
        self._writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the extra is optional: jsonl is always written
                log.debug("tensorboard not installed; writing metrics.jsonl only")
            else:
                self._writer = SummaryWriter(log_dir=str(Path(folder) / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record``; numbers also go to TensorBoard under ``<event>/<key>``."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
        if self._writer is not None:
            step = int(record.get("update", 0))
            prefix = record.get("event", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("update", "epoch"):
                    self._writer.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl``."""
    with Path(path).open(encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]
