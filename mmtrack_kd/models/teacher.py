"""The two-stream teacher: one shared ViT on RGB and auxiliary streams with mutual prompts.

Paper section 3.2, eq. 6-7. With ``P^l`` the prompt added before block l::

    P_rgb^0 = M^0_rgb(E_rgb, E_aux)          (patch embeddings, before positions; as MPLT)
    P_rgb^l = M^l_rgb(H_rgb^{l-1}, P_rgb^{l-1}, H_aux^{l-1})    l = 1 .. L-1
    H_rgb^l = Block_l(H_rgb^{l-1} + P_rgb^l)

and symmetrically for the auxiliary stream. After the final norm the two search halves are
concatenated on channels, reduced to D (Linear, or MPLT's conv) and fed to the centre head.

Parameters: ``backbone.*`` (OSTrack names), ``rgb_prompters.l`` / ``aux_prompters.l`` (the
prompter applied before block l of that stream; entry 0 is the initial prompter),
``fusion.reduce.*`` and ``box_head.*``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from mmtrack_kd.models.base import TrackerOutput, TrackingModel
from mmtrack_kd.models.fusion import FusionKind, SearchFusion
from mmtrack_kd.models.head import CenterHead
from mmtrack_kd.models.prompter import LayerType, MutualPrompter
from mmtrack_kd.models.vit import BackboneSettings, ViTBackbone


class TwoStreamTeacher(TrackingModel):
    """Two-stream teacher with Multi-Modal Mutual Prompters (``num_modalities`` is 2).

    Args:
        head_channels: first width of the centre head (256).
        fusion: ``"linear"`` (the paper) or ``"conv"`` (MPLT's conv3x3+BN+ReLU).
        prompters: False removes every prompter: two independent OSTrack passes, fused at the end.
        spatial_attention: the paper's spatial attention in every prompter branch (per-position
            weights; MPLT's ``TokenAttention``; see :mod:`mmtrack_kd.models.prompter`).
        token_attention: the paper's token attention (per-channel weights; MPLT's
            ``SpatialAttention``).
        history: layer prompters take their previous prompt.
        layer_type: ``"conv2d"`` or ``"linear"`` for the prompters' 1x1 layers.
        reduction: channel-attention bottleneck ratio.
        kernel_size: spatial-attention kernel.
        fovea_init: initial fovea lambda.
        mplt_compat: prompters reproduce MPLT's forward quirk (needed for converted MPLT weights).
        backbone_args: the backbone's settings by name (:class:`BackboneSettings`:
            ``template_size``, ``search_size``, ``patch_size``, ``embed_dim``, ``depth``, ...).
    """

    kind = "teacher"

    def __init__(
        self,
        *,
        head_channels: int = 256,
        fusion: FusionKind = "linear",
        prompters: bool = True,
        spatial_attention: bool = True,
        token_attention: bool = True,
        history: bool = True,
        layer_type: LayerType = "conv2d",
        reduction: int = 8,
        kernel_size: int = 7,
        fovea_init: float = 10.0,
        mplt_compat: bool = False,
        **backbone_args: Any,
    ) -> None:
        super().__init__()
        settings = BackboneSettings(**backbone_args)
        embed_dim, depth = settings.embed_dim, settings.depth
        self.config = dict(
            **asdict(settings), head_channels=head_channels, fusion=fusion, prompters=prompters,
            spatial_attention=spatial_attention, token_attention=token_attention, history=history,
            layer_type=layer_type, reduction=reduction, kernel_size=kernel_size,
            fovea_init=fovea_init, mplt_compat=mplt_compat,
        )  # fmt: skip
        self.num_modalities = 2
        self.backbone = ViTBackbone(settings)
        self.history = history
        self.rgb_prompters: nn.ModuleList | None = None
        self.aux_prompters: nn.ModuleList | None = None
        if prompters:
            def make(layer: int) -> MutualPrompter:
                # The initial prompter (layer 0) has no previous prompt, hence no MPLT quirk.
                return MutualPrompter(
                    embed_dim, history=history and layer > 0, spatial_attention=spatial_attention,
                    token_attention=token_attention, layer_type=layer_type, reduction=reduction,
                    kernel_size=kernel_size, fovea_init=fovea_init, mplt_compat=mplt_compat and layer > 0,
                )  # fmt: skip

            self.rgb_prompters = nn.ModuleList([make(layer) for layer in range(depth)])
            self.aux_prompters = nn.ModuleList([make(layer) for layer in range(depth)])
        self.fusion = SearchFusion(embed_dim, 2, fusion)
        self.box_head = CenterHead(embed_dim, head_channels)

    def forward_embedded(
        self,
        template_patches: Sequence[Tensor],
        searches: Sequence[Tensor],
        return_features: bool = False,
        keep_ratio: float | None = None,
    ) -> TrackerOutput:
        """See :meth:`TrackingModel.forward`; ``keep_ratio`` is ignored (no elimination here)."""
        self._check_searches(searches, template_patches)
        backbone = self.backbone
        grids = [backbone.template_grid, backbone.search_grid]
        num_template = backbone.num_template_tokens
        rgb = torch.cat([template_patches[0], backbone.patchify(searches[0], 0)], dim=1)  # (B, N, D)
        aux = torch.cat([template_patches[1], backbone.patchify(searches[1], 1)], dim=1)
        prompt_rgb = prompt_aux = None
        if self.rgb_prompters is not None:
            prompt_rgb = self.rgb_prompters[0](rgb, aux, grids=grids)
            prompt_aux = self.aux_prompters[0](aux, rgb, grids=grids)
            rgb, aux = rgb + prompt_rgb, aux + prompt_aux
        positions = torch.cat([backbone.pos_embed_z, backbone.pos_embed_x], dim=1)
        # Both streams run as one batch of 2B through the shared blocks: same maths, fewer calls.
        tokens = torch.cat([rgb + positions, aux + positions], dim=0)
        features: list[Tensor] | None = [] if return_features else None
        for layer, block in enumerate(backbone.blocks):
            if layer > 0 and self.rgb_prompters is not None:
                rgb, aux = tokens.chunk(2, dim=0)
                new_rgb = self.rgb_prompters[layer](rgb, aux, prompt_rgb if self.history else None, grids)
                new_aux = self.aux_prompters[layer](aux, rgb, prompt_aux if self.history else None, grids)
                tokens = tokens + torch.cat([new_rgb, new_aux], dim=0)
                prompt_rgb, prompt_aux = new_rgb, new_aux
            tokens = block(tokens)
            if features is not None:
                # (B, 2N, D) in the student's order [z_rgb, x_rgb, z_aux, x_aux].
                features.append(torch.cat(tokens.chunk(2, dim=0), dim=1))
        rgb, aux = backbone.norm(tokens).chunk(2, dim=0)
        head = self.predict([rgb[:, num_template:], aux[:, num_template:]])
        return TrackerOutput.from_head(head, features)
