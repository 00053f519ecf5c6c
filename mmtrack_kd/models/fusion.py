"""Fusion of the modalities' search tokens into one map for the head (the paper's eq. 7 "DR").

Teacher and student share this module and its parameter names, so the student's fusion (and head)
can start from the teacher's.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from mmtrack_kd.models.head import conv_bn_relu

FusionKind = Literal["linear", "conv"]


def tokens_to_map(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """Row-major tokens ``(B, h*w, C)`` -> feature map ``(B, C, h, w)``."""
    batch, _, channels = tokens.shape
    return tokens.transpose(1, 2).reshape(batch, channels, grid[0], grid[1])


def map_to_tokens(feature_map: Tensor) -> Tensor:
    """Feature map ``(B, C, h, w)`` -> row-major tokens ``(B, h*w, C)``."""
    return feature_map.flatten(2).transpose(1, 2)


class SearchFusion(nn.Module):
    """Concatenate M search halves on channels and reduce ``M*D -> D``.

    ``kind="linear"``: one ``nn.Linear(M*D, D)`` per token (the paper). ``kind="conv"``: MPLT's
    conv3x3 + BatchNorm + ReLU on the ``(B, M*D, h, w)`` map (needed to load MPLT checkpoints).
    The parameters live under ``reduce`` (``reduce.weight`` or ``reduce.0.weight`` / ``reduce.1.*``).
    """

    def __init__(self, dim: int, num_modalities: int = 2, kind: FusionKind = "linear") -> None:
        super().__init__()
        if kind not in ("linear", "conv"):
            raise ValueError(f"unknown fusion {kind!r}: expected 'linear' or 'conv'")
        self.kind = kind
        self.reduce: nn.Module = (
            nn.Linear(num_modalities * dim, dim) if kind == "linear" else conv_bn_relu(num_modalities * dim, dim)
        )

    def forward(self, halves: Sequence[Tensor], grid: tuple[int, int]) -> Tensor:
        """Search tokens ``[(B, Nx, D)] * M`` in modality order -> fused map ``(B, D, h, w)``."""
        stacked = torch.cat(list(halves), dim=-1)  # (B, Nx, M*D), channel blocks in modality order
        if self.kind == "linear":
            return tokens_to_map(self.reduce(stacked), grid)
        return self.reduce(tokens_to_map(stacked, grid))
