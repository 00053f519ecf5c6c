"""Parameters and FLOPs of a tracking model, and the dummy inputs of one forward.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``: a real count of the matrix
multiplications, convolutions and attention kernels one forward executes (elementwise work such
as LayerNorm, softmax or GELU is not counted). It counts a multiply-add as 2 FLOPs; tracking
papers (OSTrack's 21.5 "GFLOPs") usually quote multiply-adds, half of it. Latency is measured by
:func:`mmtrack_kd.benchmark.speed.measure_latency_stats` on these dummy inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


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
