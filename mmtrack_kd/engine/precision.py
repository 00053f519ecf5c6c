"""Mixed precision: which autocast dtype a precision setting means, and the autocast context.

One place for training (``train.precision``), tracking (``TrackerSettings(precision=...)``,
``evaluate --bf16``, ``track --bf16``) and the speed benchmark's bf16 rows.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting (None: full fp32)."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; a no-op context for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
