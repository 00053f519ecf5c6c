"""Precision: which autocast dtype a precision setting means, the autocast context, and int8.

One place for training (``train.precision``), tracking (``TrackerSettings(precision=...)``,
``evaluate --bf16 / --int8``, ``track --bf16 / --int8``) and the speed benchmark's bf16 and int8
rows.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Any

import torch
from torch import nn
from torch.ao.quantization import quantize_dynamic


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting (None: full fp32)."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    # int8 is no autocast: the model itself is quantized (quantize_int8), activations stay fp32
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": None}[precision]


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers are dynamically quantized to int8.

    Weights are stored in int8 (per tensor), activations are quantized on the fly per call and
    results come back in float32 (``torch.ao.quantization.quantize_dynamic``). In a ViT nearly
    all FLOPs are in Linear layers (qkv, projection, MLP); the convolutions of the patch
    embedding and the head stay float32. CPU only (fbgemm / x86 kernels). ``model`` is left as
    it is.
    """
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the API still works as documented
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)  # quantized tensor types, same move
        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; a no-op context for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
