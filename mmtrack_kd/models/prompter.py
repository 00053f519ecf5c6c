"""The Multi-Modal Mutual Prompter (MMMP) of the paper's teacher (section 3.2.2, eq. 6 and 16).

One prompter makes the prompt for one stream ("own") from its tokens, the other stream's tokens
and (with ``history``) its own previous prompt::

    P = fovea(A(LN(own))) + A(LN(other)) [+ A(LN(prev))]

where ``A`` applies, per input branch, a channel attention and then a spatial attention
(CBAM-like), and ``fovea(x) = softmax_over_positions(lambda * x) * x`` with a learnable lambda
(initially 10). Template and search tokens are separate 2-D maps (8x8 and 16x16 in the paper):
every pooling, convolution and softmax over positions runs on one map at a time.

Names of the two attentions -- read this before touching the switches:

* :class:`SpatialAttention` weights **positions**: mean and max over channels give a 2-channel
  map, a 7x7 conv (2 -> 1) and a sigmoid give one weight per position. This is what the paper
  calls **spatial attention** (switch ``spatial_attention``). MPLT's code calls this module
  ``TokenAttention`` (its ``tokenattentionK.conv1``).
* :class:`ChannelAttention` weights **channels**: average- and max-pooling over positions, a
  shared bottleneck D -> D/r -> D (ReLU between, no bias), summed, sigmoid. This is what the
  paper calls **token attention** (eqs. 12-13 pool to a ``1 x D`` vector; switch
  ``token_attention``). MPLT's code calls this module ``SpatialAttention`` (its
  ``spatialattentionK.fc1/fc2``).

So MPLT names them the other way round from the paper's ablation wording. (The paper's own
equations attach the bottleneck ``g_s1, g_s2`` to "spatial" and the 7x7 ``g_t`` to "token", i.e.
they follow MPLT's class names; we follow what each attention weights, as the design asks, and
note the ambiguity here.)

``layer_type`` picks the implementation of the 1x1 layers: ``"linear"`` keeps everything in token
layout ``(B, n, D)`` with ``nn.Linear``; ``"conv2d"`` works on ``(B, D, h, w)`` maps with 1x1
``nn.Conv2d`` as MPLT and ViPT do. The maths is identical (weights ``(o, i)`` vs ``(o, i, 1, 1)``);
the paper's supplement (Table 2) compares their speed.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtrack_kd.models.fusion import tokens_to_map
from mmtrack_kd.models.vit import LayerNorm

LayerType = Literal["linear", "conv2d"]


def _check_layer_type(layer_type: str) -> None:
    if layer_type not in ("linear", "conv2d"):
        raise ValueError(f"unknown layer_type {layer_type!r}: expected 'linear' or 'conv2d'")


class ChannelAttention(nn.Module):
    """Per-channel weights from position-pooled statistics (the paper's "token attention").

    ``fc1`` and ``fc2`` are the shared bottleneck ``D -> D/r -> D`` without bias, as ``nn.Linear``
    (``(o, i)`` weights) or 1x1 ``nn.Conv2d`` (``(o, i, 1, 1)``).
    """

    def __init__(self, dim: int, reduction: int = 8, layer_type: LayerType = "conv2d") -> None:
        super().__init__()
        _check_layer_type(layer_type)
        hidden = max(dim // reduction, 1)
        self.layer_type = layer_type
        if layer_type == "linear":
            self.fc1: nn.Module = nn.Linear(dim, hidden, bias=False)
            self.fc2: nn.Module = nn.Linear(hidden, dim, bias=False)
        else:
            self.fc1 = nn.Conv2d(dim, hidden, kernel_size=1, bias=False)
            self.fc2 = nn.Conv2d(hidden, dim, kernel_size=1, bias=False)

    def _bottleneck(self, avg: Tensor, peak: Tensor) -> Tensor:
        # avg and max share the bottleneck: run them as one batch, then sum (CBAM).
        both = self.fc2(F.relu(self.fc1(torch.cat([avg, peak], dim=0))))
        avg_out, peak_out = both.chunk(2, dim=0)
        return torch.sigmoid(avg_out + peak_out)

    def forward(self, x: Tensor) -> Tensor:
        """Weights for ``x``: tokens ``(B, n, D)`` -> ``(B, 1, D)`` (linear) or map
        ``(B, D, h, w)`` -> ``(B, D, 1, 1)`` (conv2d)."""
        if self.layer_type == "linear":
            return self._bottleneck(x.mean(dim=1), x.amax(dim=1)).unsqueeze(1)
        return self._bottleneck(F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1))


class SpatialAttention(nn.Module):
    """Per-position weights from channel-pooled statistics (the paper's "spatial attention").

    ``conv`` is the 7x7 (zero-padded) convolution from the [mean, max] map (2 channels) to 1.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"spatial attention kernel {kernel_size} must be odd")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor, grid: tuple[int, int] | None = None) -> Tensor:
        """Weights for ``x``: tokens ``(B, n, D)`` with ``grid`` -> ``(B, n, 1)``, or a map
        ``(B, D, h, w)`` (``grid`` None) -> ``(B, 1, h, w)``."""
        if grid is None:
            stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
            return torch.sigmoid(self.conv(stats))
        batch = x.shape[0]
        stats = torch.stack([x.mean(dim=2), x.amax(dim=2)], dim=1).view(batch, 2, *grid)
        return torch.sigmoid(self.conv(stats)).view(batch, -1, 1)


class Fovea(nn.Module):
    """``softmax over positions (lambda * x) * x`` per channel; ``smooth`` is lambda (init 10)."""

    def __init__(self, init: float = 10.0) -> None:
        super().__init__()
        self.smooth = nn.Parameter(torch.full((1,), float(init)))

    def forward(self, x: Tensor, tokens: bool) -> Tensor:
        """Tokens ``(B, n, D)`` (``tokens=True``) or a map ``(B, D, h, w)``; same shape out."""
        if tokens:
            return torch.softmax(x * self.smooth, dim=1) * x
        flat = x.flatten(2)
        return (torch.softmax(flat * self.smooth, dim=-1) * flat).view_as(x)


class PromptBranch(nn.Module):
    """One input branch: channel attention, then spatial attention (either may be switched off)."""

    def __init__(
        self,
        dim: int,
        channel: bool,
        spatial: bool,
        layer_type: LayerType,
        reduction: int,
        kernel_size: int,
    ) -> None:
        super().__init__()
        self.channel_attention = ChannelAttention(dim, reduction, layer_type) if channel else None
        self.spatial_attention = SpatialAttention(kernel_size) if spatial else None

    def forward(
        self, x: Tensor, grid: tuple[int, int] | None, channel_attention: nn.Module | None = None
    ) -> Tensor:
        """``x`` as tokens ``(B, n, D)`` with ``grid`` or as a map ``(B, D, h, w)`` (grid None).

        ``channel_attention`` replaces this branch's own (MPLT compatibility, see
        :class:`MutualPrompter`).
        """
        if channel_attention is None:
            channel_attention = self.channel_attention
        if channel_attention is not None:
            x = x * channel_attention(x)
        if self.spatial_attention is not None:
            x = x * self.spatial_attention(x, grid)
        return x


class MutualPrompter(nn.Module):
    """Prompt for one stream from (own tokens, other stream's tokens[, own previous prompt]).

    The initial prompter (before block 0) has ``history=False`` and takes the two streams' patch
    embeddings; a layer prompter (before block l >= 1) takes the block l-1 outputs and, with
    ``history``, the prompt it made before (``history=False`` is the paper's "w/o history"
    ablation).

    Args:
        dim: token width D.
        history: whether there is a previous-prompt input.
        spatial_attention: the paper's spatial attention (per-position weights, 7x7 conv; MPLT's
            ``TokenAttention``). See the module docstring.
        token_attention: the paper's token attention (per-channel weights, bottleneck; MPLT's
            ``SpatialAttention``).
        layer_type: ``"linear"`` or ``"conv2d"`` for the bottleneck's 1x1 layers.
        reduction: bottleneck ratio r (D -> D/r -> D).
        kernel_size: spatial attention kernel (7).
        fovea_init: initial lambda of the fovea.
        mplt_compat: reproduce MPLT's forward, which applies the previous-prompt branch's channel
            attention to the other-stream branch too (its third channel attention is never used,
            so here it is not created). Needs ``history`` and ``token_attention``.
    """

    def __init__(
        self,
        dim: int,
        history: bool,
        spatial_attention: bool = True,
        token_attention: bool = True,
        layer_type: LayerType = "conv2d",
        reduction: int = 8,
        kernel_size: int = 7,
        fovea_init: float = 10.0,
        mplt_compat: bool = False,
    ) -> None:
        super().__init__()
        _check_layer_type(layer_type)
        if mplt_compat and not (history and token_attention):
            raise ValueError("mplt_compat needs history=True and token_attention=True")
        self.layer_type = layer_type
        self.mplt_compat = mplt_compat
        branch = dict(spatial=spatial_attention, layer_type=layer_type, reduction=reduction, kernel_size=kernel_size)
        self.norm_own = LayerNorm(dim)
        self.norm_other = LayerNorm(dim)
        self.norm_prev = LayerNorm(dim) if history else None
        self.own = PromptBranch(dim, channel=token_attention, **branch)
        self.other = PromptBranch(dim, channel=token_attention and not mplt_compat, **branch)
        self.prev = PromptBranch(dim, channel=token_attention, **branch) if history else None
        self.fovea = Fovea(fovea_init)

    @property
    def history(self) -> bool:
        return self.prev is not None

    def forward(
        self,
        own: Tensor,
        other: Tensor,
        prev: Tensor | None = None,
        grids: Sequence[tuple[int, int]] = (),
    ) -> Tensor:
        """Prompt ``(B, N, D)`` for ``own``.

        Args:
            own, other, prev: ``(B, N, D)`` tokens laid out as consecutive row-major grids
                (template then search), ``N = sum(h * w for h, w in grids)``. ``prev`` is required
                exactly when the prompter has ``history``.
            grids: the ``(h, w)`` of each map, e.g. ``[(8, 8), (16, 16)]``.
        """
        if (prev is None) == self.history:
            raise ValueError(f"prompter with history={self.history} got prev={'None' if prev is None else 'a tensor'}")
        total = sum(h * w for h, w in grids)
        if own.shape[1] != total:
            raise ValueError(f"prompter got {own.shape[1]} tokens for grids {list(grids)} ({total} tokens)")
        own = self.norm_own(own)
        other = self.norm_other(other)
        if prev is not None:
            prev = self.norm_prev(prev)
        parts, start = [], 0
        for grid in grids:
            window = slice(start, start + grid[0] * grid[1])
            parts.append(self._one_map(own[:, window], other[:, window], None if prev is None else prev[:, window], grid))
            start = window.stop
        return torch.cat(parts, dim=1)

    def _one_map(self, own: Tensor, other: Tensor, prev: Tensor | None, grid: tuple[int, int]) -> Tensor:
        """The prompt of one map, tokens ``(B, h*w, D)`` in and out."""
        tokens = self.layer_type == "linear"
        if not tokens:
            own, other = tokens_to_map(own, grid), tokens_to_map(other, grid)
            prev = None if prev is None else tokens_to_map(prev, grid)
        branch_grid = grid if tokens else None
        out = self.fovea(self.own(own, branch_grid), tokens)
        shared = self.prev.channel_attention if self.mplt_compat else None
        out = out + self.other(other, branch_grid, channel_attention=shared)
        if prev is not None:
            out = out + self.prev(prev, branch_grid)
        return out if tokens else out.flatten(2).transpose(1, 2)
