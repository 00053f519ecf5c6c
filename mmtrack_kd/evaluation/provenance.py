"""What wrote a result folder, so that results are reused only for the run that made them.

Each ``<out>/<tracker>/<dataset>/`` folder that :func:`~mmtrack_kd.evaluation.runner.evaluate_checkpoint`
tracks into holds ``provenance.json``: the checkpoint's SHA-256, the tracker settings that change
boxes, and the dataset's name, root and split (plus the sequence restriction, which changes the
list). Finished sequences are skipped only when every one of these matches; otherwise the old
folder is moved aside (never deleted: it is someone's results) and the sequences are tracked again
into a clean folder, so a folder never mixes the boxes of two models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from mmtrack_kd.data.results_io import atomic_write_text
from mmtrack_kd.errors import DataError

log = logging.getLogger(__name__)

#: The file in a result folder that records what wrote it.
PROVENANCE_FILE = "provenance.json"
#: The keys that must match for a folder's results to be reused (``checkpoint`` is the path,
#: kept for the reader only: a moved file with the same bytes is the same model).
MATCHED_KEYS = ("checkpoint_sha256", "tracker", "dataset", "root", "split", "sequences")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def result_provenance(checkpoint: str | os.PathLike[str], checkpoint_sha256: str,
                      tracker: dict[str, Any], dataset_name: str, dataset: Any) -> dict[str, Any]:
    """The provenance record of one checkpoint's results on one dataset plugin instance."""
    options = getattr(dataset, "options", None)
    root = getattr(dataset, "root", None) or getattr(options, "root", None)
    sequences = getattr(options, "sequences", None)
    return {
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha256": checkpoint_sha256,
        "tracker": dict(tracker),
        "dataset": dataset_name,
        "root": str(Path(root).resolve()) if root is not None else None,
        "split": getattr(options, "split", None),
        "sequences": list(sequences) if sequences is not None else None,
    }


def read_provenance(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The folder's recorded provenance; None when there is none or it cannot be read."""
    path = Path(folder) / PROVENANCE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def differences(recorded: dict[str, Any] | None, wanted: dict[str, Any]) -> list[str]:
    """What differs between a folder's recorded provenance and the one wanted, one phrase per key
    (``checkpoint_sha256 3f2a9c01... != 77b0e4d2...``); ``["no provenance.json"]`` without one."""
    if recorded is None:
        return [f"no {PROVENANCE_FILE} (written by an older version, or by hand)"]
    out = []
    for key in MATCHED_KEYS:
        old, new = recorded.get(key), wanted.get(key)
        if old != new:
            if key == "checkpoint_sha256":
                old, new = str(old)[:12] + "...", str(new)[:12] + "..."
            out.append(f"{key} {old} != {new}")
    return out


def prepare_results_folder(folder: str | os.PathLike[str], provenance: dict[str, Any]) -> bool:
    """Make ``folder`` safe to track ``provenance``'s results into; returns whether its
    existing results may be reused.

    A folder whose recorded provenance matches is kept (its finished sequences are reused). A
    folder with any other content is renamed ``<folder>.stale-<time>`` with a warning naming
    what differs, and a clean folder takes its place. The record is written before any result.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: a file is in the way of the results folder")
    if folder.is_dir() and any(folder.iterdir()):
        changed = differences(read_provenance(folder), provenance)
        if not changed:
            return True
        aside = folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        suffix = 1
        while aside.exists():
            aside = aside.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}")
            suffix += 1
        folder.rename(aside)
        log.warning("%s: results were written by another run (%s); moved them to %s and tracking "
                    "again", folder, "; ".join(changed), aside)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / PROVENANCE_FILE, json.dumps(provenance, indent=2) + "\n")
    return False
