"""The ViT backbone shared by teacher and student, on timm's ``Block``.

Parameter names are OSTrack's (``patch_embed.proj``, ``pos_embed_z``, ``pos_embed_x``,
``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``), so that under a parent
module named ``backbone`` an OSTrack state dict loads by name. timm's ``Block`` runs attention
through ``scaled_dot_product_attention``; it never materialises the attention map, which is why
candidate elimination (student) computes the little it needs on its own
(:func:`attention_with_probe`).

Tokens are always ``(B, N, D)``; a template of side ``template_size`` gives
``Nz = (template_size / patch_size) ** 2`` tokens, a search region ``Nx`` likewise, and the
token order within a grid is row-major (index = row * width + column), as in OSTrack.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models import adapt_input_conv
from timm.models.vision_transformer import Block, init_weights_vit_timm
from torch import Tensor, nn

# OSTrack (and MAE) use LayerNorm eps 1e-6; timm's Block defaults to 1e-5, which would shift every
# activation slightly when OSTrack weights are loaded.
LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` convolution: image ``(B, C, H, W)`` -> ``(B, H*W/p^2, D)``.

    Unlike timm's ``PatchEmbed`` it has no fixed image size: the same layer embeds the template
    and the search region.
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, image: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, (H/p) * (W/p), D)``, row-major."""
        return self.proj(image).flatten(2).transpose(1, 2)


@dataclass(frozen=True)
class BackboneSettings:
    """What a :class:`ViTBackbone` is built from: the backbone's share of the teacher's and the
    student's constructor arguments, and of their ``config`` (a checkpoint's ``model_config``).

    Attributes:
        template_size: template crop side in pixels (128 in the paper).
        search_size: search crop side in pixels (256 in the paper).
        patch_size: patch side in pixels (16).
        embed_dim: token width D (768 for ViT-B).
        depth: number of blocks (12).
        num_heads: attention heads (12).
        mlp_ratio: MLP hidden width / D (4).
        qkv_bias: bias on the qkv projection (True for ViT-B/MAE/OSTrack).
        drop_path_rate: stochastic depth at the last block, linear from 0 at the first.
        aux_in_chans: channels of the auxiliary modality. When it is 3 the auxiliary images go
            through the RGB ``patch_embed`` (shared weights, as in MPLT and ViPT); otherwise an
            own ``patch_embed_aux`` is created, initialised from the RGB one the way timm's
            ``adapt_input_conv`` adapts a pretrained stem.
    """

    template_size: int = 128
    search_size: int = 256
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    aux_in_chans: int = 3

    def __post_init__(self) -> None:
        for name, size in (("template_size", self.template_size), ("search_size", self.search_size)):
            if size % self.patch_size:
                raise ValueError(f"{name} {size} is not a multiple of patch_size {self.patch_size}")


class ViTBackbone(nn.Module):
    """A plain ViT over (template, search) token pairs with separate position embeddings.

    Args:
        settings: sizes, depth, width and the auxiliary channels (:class:`BackboneSettings`;
            default: ViT-B/16 at template 128 and search 256).
    """

    def __init__(self, settings: BackboneSettings | None = None) -> None:
        super().__init__()
        settings = settings if settings is not None else BackboneSettings()
        template_size, search_size, patch_size = settings.template_size, settings.search_size, settings.patch_size
        embed_dim, aux_in_chans = settings.embed_dim, settings.aux_in_chans
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.template_grid = (template_size // patch_size, template_size // patch_size)
        self.search_grid = (search_size // patch_size, search_size // patch_size)
        self.aux_in_chans = aux_in_chans

        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.patch_embed_aux = (
            PatchEmbed(patch_size, aux_in_chans, embed_dim) if aux_in_chans != 3 else None
        )
        self.pos_embed_z = nn.Parameter(torch.zeros(1, self.num_template_tokens, embed_dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, self.num_search_tokens, embed_dim))
        rates = torch.linspace(0, settings.drop_path_rate, settings.depth).tolist()
        self.blocks = nn.Sequential(
            *[
                Block(
                    dim=embed_dim,
                    num_heads=settings.num_heads,
                    mlp_ratio=settings.mlp_ratio,
                    qkv_bias=settings.qkv_bias,
                    drop_path=rate,
                    norm_layer=LayerNorm,
                )
                for rate in rates
            ]
        )
        self.norm = LayerNorm(embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed_z, std=0.02)
        trunc_normal_(self.pos_embed_x, std=0.02)
        for name, module in self.blocks.named_modules():
            init_weights_vit_timm(module, name)
        self.init_aux_patch_embed()

    @torch.no_grad()
    def init_aux_patch_embed(self) -> None:
        """Copy the RGB patch embedding into ``patch_embed_aux`` (channel-adapted), if there is one."""
        if self.patch_embed_aux is None:
            return
        weight = adapt_input_conv(self.aux_in_chans, self.patch_embed.proj.weight.detach().clone())
        self.patch_embed_aux.proj.weight.copy_(weight)
        self.patch_embed_aux.proj.bias.copy_(self.patch_embed.proj.bias)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def num_template_tokens(self) -> int:
        return self.template_grid[0] * self.template_grid[1]

    @property
    def num_search_tokens(self) -> int:
        return self.search_grid[0] * self.search_grid[1]

    def patchify(self, image: Tensor, modality: int = 0) -> Tensor:
        """Patch tokens of one image, no position: ``(B, C, H, W)`` -> ``(B, HW/p^2, D)``.

        ``modality`` 0 is RGB; any other index is the auxiliary modality.
        """
        embed = self.patch_embed if modality == 0 or self.patch_embed_aux is None else self.patch_embed_aux
        return embed(image)

    def add_positions(self, z: Tensor, x: Tensor) -> Tensor:
        """Template patches ``(B, Nz, D)`` and search patches ``(B, Nx, D)`` -> ``(B, Nz+Nx, D)``."""
        return torch.cat([z + self.pos_embed_z, x + self.pos_embed_x], dim=1)

    def embed(self, template: Tensor, search: Tensor, modality: int = 0) -> Tensor:
        """One modality's (template, search) images -> position-embedded tokens ``(B, Nz+Nx, D)``."""
        return self.add_positions(self.patchify(template, modality), self.patchify(search, modality))

    def run_blocks(self, tokens: Tensor, return_features: bool = False) -> tuple[Tensor, list[Tensor] | None]:
        """All blocks on ``(B, N, D)``; the per-block outputs are kept only when asked for."""
        features: list[Tensor] | None = [] if return_features else None
        for block in self.blocks:
            tokens = block(tokens)
            if features is not None:
                features.append(tokens)
        return tokens, features

    def forward(
        self, template: Tensor, search: Tensor, modality: int = 0, return_features: bool = False
    ) -> tuple[Tensor, list[Tensor] | None]:
        """OSTrack's backbone pass: final normed tokens ``(B, Nz+Nx, D)`` and optionally the list of
        per-block outputs (un-normed, ``(B, Nz+Nx, D)`` each)."""
        tokens, features = self.run_blocks(self.embed(template, search, modality), return_features)
        return self.norm(tokens), features


def attention_with_probe(attn: nn.Module, x: Tensor, query_index: Tensor) -> tuple[Tensor, Tensor]:
    """timm ``Attention`` forward that also returns the attention rows of a few queries.

    The fused kernel gives no attention map; candidate elimination only needs the rows of the
    template centre token(s), so those are recomputed from the same q and k (``nq x N`` instead of
    ``N x N``), without gradient since they only choose indices.

    Args:
        attn: a ``timm.layers.Attention`` (no gate).
        x: normed tokens ``(B, N, D)``.
        query_index: ``(nq,)`` positions of the probing queries in ``x``.

    Returns:
        The attention output ``(B, N, D)`` (identical maths to ``attn(x)``) and the probe
        ``(B, heads, nq, N)``: softmax over all N keys, as in OSTrack's attention map.
    """
    if getattr(attn, "gate", None) is not None:
        raise NotImplementedError("gated attention is not supported by candidate elimination")
    batch, tokens, _ = x.shape
    qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    out = F.scaled_dot_product_attention(
        q, k, v, dropout_p=attn.attn_drop.p if attn.training else 0.0
    )
    with torch.no_grad():
        probe = ((q[:, :, query_index] * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
    out = out.transpose(1, 2).reshape(batch, tokens, attn.attn_dim)
    out = attn.proj_drop(attn.proj(attn.norm(out)))
    return out, probe
