"""Checkpoint files on disk: the one atomic writer and the one reader.

Files are read with ``torch.load(path, map_location="cpu", weights_only=True)`` only: a checkpoint
is plain data (tensors, numbers, strings, lists and dicts), and any Python object another code
base pickled beside its weights is read as an inert :class:`ForeignObject`, never imported or run.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from mmtrack_kd.errors import CheckpointError

logger = logging.getLogger(__name__)

#: The ``format`` entry of every checkpoint mmtrack-kd writes.
FORMAT = "mmtrack-kd"


def write_atomic(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename,
    so an interruption leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


class ForeignObject:
    """Inert stand-in for an object another code base pickled beside its weights.

    OSTrack's (pytracking's) trainer saves its ``settings``, ``stats`` meters and ``constructor``
    next to ``net``; ``weights_only=True`` refuses their classes, and importing that code base to
    unpickle them is what ``weights_only`` exists to prevent. Each such global is read as this
    class instead: it is called or built with the pickled arguments and state, keeps them as
    data, and runs nothing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _foreign_globals(path: Path) -> list[str]:
    """The globals of a checkpoint that ``weights_only`` loading does not allow."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip checkpoint, or unreadable: the first error says enough
        return []


#: How torch names a global that weights-only loading refuses (``GLOBAL posix.system``).
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _unreadable(error: BaseException) -> str:
    """Why a file is no checkpoint, in a line. torch's weights-only text opens by suggesting
    ``weights_only=False`` (running the file's code): never advice to pass on."""
    text = str(error).strip()
    refused = _REFUSED_GLOBAL.findall(text)
    if refused:
        return (f"refused: it needs Python objects that are never loaded "
                f"({', '.join(dict.fromkeys(refused))}); not a checkpoint of weights")
    if "Weights only load failed" in text:
        detail = text.partition("WeightsUnpickler error:")[2].strip().splitlines()
        return f"not a readable PyTorch checkpoint (pickled data weights-only loading refuses: {detail[0] if detail else 'unknown'})"
    first = text.splitlines()[0] if text else type(error).__name__
    return f"not a readable PyTorch checkpoint ({first})"


def read_file(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors that name the file.

    Objects of classes the file's own code base pickled (OSTrack's training settings and
    statistics) are read as inert :class:`ForeignObject` placeholders, never by importing or
    running that code; only the tensors are used.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    # Random or truncated bytes fail deep inside the unpickler with almost any exception type
    # (IndexError, KeyError, struct and zip errors): all of them mean "not a readable file".
    readable = (Exception,)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except readable as error:
        foreign = _foreign_globals(path) if isinstance(error, pickle.UnpicklingError) else []
        try:
            if not foreign:
                raise
            with torch.serialization.safe_globals([(ForeignObject, name) for name in foreign]):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except readable as error:  # e.g. TypeError: a placeholder where a tensor type was
            raise CheckpointError(f"checkpoint {path}: {_unreadable(error)}") from None
        logger.info("checkpoint %s: %d pickled objects of other code read as inert placeholders (%s)",
                 path, len(foreign), ", ".join(foreign))
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path}: holds a {type(checkpoint).__name__}, not a dict of weights")
    return checkpoint


