"""OSTrack's centre head and the box decoding shared by loss and tracker.

Three branches (centre score ``*_ctr``, sub-cell ``*_offset``, box ``*_size``) of four
conv3x3 + BatchNorm + ReLU stages, widths ``C -> c -> c/2 -> c/4 -> c/8`` (``c`` = 256 in OSTrack),
then a 1x1 conv. Parameter names are OSTrack's ``CenterPredictor`` (``conv1_ctr.0.weight``,
``conv1_ctr.1.running_mean``, ..., ``conv5_size.bias``) so that an OSTrack ``box_head`` loads by
name.

Boxes are normalised to the search crop: ``(cx, cy, w, h)`` in [0, 1] of the crop side. On a
feature map of ``H x W`` cells, the box read at flat index ``i`` (row ``i // W``, column ``i % W``)
is ``cx = (column + offset_x) / W``, ``cy = (row + offset_y) / H``, ``w, h = size map``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

SIGMOID_EPS = 1e-4


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv3x3 (bias) + BatchNorm + ReLU; indices 0 and 1 carry OSTrack's parameter names."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=True),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def clamped_sigmoid(logits: Tensor) -> Tensor:
    """Sigmoid clamped to ``[1e-4, 1 - 1e-4]`` (OSTrack), so the focal loss never takes log(0)."""
    return torch.clamp(logits.sigmoid(), min=SIGMOID_EPS, max=1 - SIGMOID_EPS)


def peak_index(score_map: Tensor) -> Tensor:
    """Flat arg-max ``(B,)`` of a score map ``(B, 1, H, W)`` (row-major)."""
    return score_map.flatten(1).argmax(dim=1)


def boxes_at(index: Tensor, size_map: Tensor, offset_map: Tensor) -> Tensor:
    """Boxes ``(B, 4)`` as normalised ``cx, cy, w, h`` read at flat cell ``index`` ``(B,)``.

    ``size_map`` and ``offset_map`` are ``(B, 2, H, W)`` (channel 0 is x / width, 1 is y /
    height). The loss reads the box at the predicted peak; the tracker at the peak of the
    Hann-windowed score map.
    """
    height, width = size_map.shape[-2:]
    gather = index.view(-1, 1, 1).expand(-1, 2, 1)
    size = size_map.flatten(2).gather(2, gather).squeeze(-1)
    offset = offset_map.flatten(2).gather(2, gather).squeeze(-1)
    row = torch.div(index, width, rounding_mode="floor").to(size.dtype)
    column = (index % width).to(size.dtype)
    return torch.stack(
        [(column + offset[:, 0]) / width, (row + offset[:, 1]) / height, size[:, 0], size[:, 1]],
        dim=1,
    )


class HeadOutput(NamedTuple):
    """What the centre head predicts for a batch of search maps of ``H x W`` cells."""

    score_logits: Tensor  # (B, 1, H, W) before the sigmoid; response distillation needs them
    score_map: Tensor  # (B, 1, H, W) clamped sigmoid of score_logits
    size_map: Tensor  # (B, 2, H, W) normalised w, h in [1e-4, 1 - 1e-4]
    offset_map: Tensor  # (B, 2, H, W) sub-cell offset of the centre, in cells
    boxes: Tensor  # (B, 4) normalised cx, cy, w, h at the arg-max of score_map


class CenterHead(nn.Module):
    """OSTrack's ``CenterPredictor``: search feature map ``(B, C, H, W)`` -> :class:`HeadOutput`.

    Args:
        in_channels: width C of the incoming feature map (the ViT width D).
        channels: width of the first stage; the stages are ``channels / 2**k``, k = 0..3.
    """

    def __init__(self, in_channels: int = 768, channels: int = 256) -> None:
        super().__init__()
        if channels % 8:
            raise ValueError(f"head channels {channels} must be divisible by 8")
        widths = [in_channels, channels, channels // 2, channels // 4, channels // 8]
        for branch, out in (("ctr", 1), ("offset", 2), ("size", 2)):
            for stage in range(4):
                self.add_module(f"conv{stage + 1}_{branch}", conv_bn_relu(widths[stage], widths[stage + 1]))
            self.add_module(f"conv5_{branch}", nn.Conv2d(widths[4], out, kernel_size=1))
        # OSTrack's initialisation: xavier on every weight with more than one dimension.
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def _branch(self, x: Tensor, branch: str) -> Tensor:
        for stage in range(1, 6):
            x = getattr(self, f"conv{stage}_{branch}")(x)
        return x

    def forward(self, x: Tensor) -> HeadOutput:
        """``(B, C, H, W)`` -> score logits/map ``(B,1,H,W)``, size and offset ``(B,2,H,W)``, boxes ``(B,4)``."""
        score_logits = self._branch(x, "ctr")
        score_map = clamped_sigmoid(score_logits)
        size_map = clamped_sigmoid(self._branch(x, "size"))
        offset_map = self._branch(x, "offset")
        boxes = boxes_at(peak_index(score_map), size_map, offset_map)
        return HeadOutput(score_logits, score_map, size_map, offset_map, boxes)
