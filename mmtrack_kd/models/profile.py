"""Parameters, FLOPs and latency of a tracking model.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``: a real count of the matrix
multiplications, convolutions and attention kernels one forward executes (elementwise work such
as LayerNorm, softmax or GELU is not counted). It counts a multiply-add as 2 FLOPs; tracking
papers (OSTrack's 21.5 "GFLOPs") usually quote multiply-adds, so :class:`ModelProfile` gives
both (``macs = flops / 2``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from mmtrack_kd.runtime.timing import time_calls


@dataclass(frozen=True)
class ModelProfile:
    """Size and cost of one forward (one frame: a template and a search region per modality)."""

    parameters: int
    trainable: int
    flops: int  # FlopCounterMode count, 2 per multiply-add
    batch_size: int = 1

    @property
    def macs(self) -> int:
        return self.flops // 2

    def __str__(self) -> str:
        per_frame = self.flops / self.batch_size / 1e9
        return (
            f"{self.parameters / 1e6:.2f} M parameters ({self.trainable / 1e6:.2f} M trainable), "
            f"{per_frame:.2f} GFLOPs ({per_frame / 2:.2f} GMACs) per frame"
        )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def dummy_inputs(
    model: nn.Module, batch_size: int = 1, device: torch.device | str | None = None
) -> tuple[list[Tensor], list[Tensor]]:
    """Random ``(templates, searches)`` at the model's sizes and channels, ``[rgb, aux]`` order."""
    config = model.config
    device = device if device is not None else next(model.parameters()).device
    channels = [3] + [config.get("aux_in_chans", 3)] * (model.num_modalities - 1)
    templates = [torch.randn(batch_size, c, config["template_size"], config["template_size"], device=device) for c in channels]
    searches = [torch.randn(batch_size, c, config["search_size"], config["search_size"], device=device) for c in channels]
    return templates, searches


def count_flops(model: nn.Module, batch_size: int = 1, keep_ratio: float | None = None) -> int:
    """FLOPs of one forward on dummy inputs (eval mode, no gradient)."""
    templates, searches = dummy_inputs(model, batch_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(templates, searches, keep_ratio=keep_ratio)
    finally:
        model.train(was_training)
    return counter.get_total_flops()


def profile_model(model: nn.Module, batch_size: int = 1, keep_ratio: float | None = None) -> ModelProfile:
    """Parameters and FLOPs of ``model`` (per forward of ``batch_size`` frames)."""
    total, trainable = count_parameters(model)
    return ModelProfile(total, trainable, count_flops(model, batch_size, keep_ratio), batch_size)


def measure_latency(
    model: nn.Module,
    batch_size: int = 1,
    warmup: int = 3,
    repeats: int = 10,
    keep_ratio: float | None = None,
) -> float:
    """Median wall time in seconds of one model-only forward (eval, no gradient), after warm-up.

    On CUDA the device is synchronised around each forward so the time is the kernels', not the
    launch's.
    """
    templates, searches = dummy_inputs(model, batch_size)
    device = templates[0].device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            times = time_calls(lambda: model(templates, searches, keep_ratio=keep_ratio), warmup, repeats, device)
    finally:
        model.train(was_training)
    return statistics.median(times)
