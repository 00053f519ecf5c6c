"""What every tracking model shares: the forward API, its output, and template caching.

The trainer and the tracker use only this API, for the teacher and the student alike::

    out = model(templates, searches, return_features=False, keep_ratio=None)

``templates`` and ``searches`` hold one normalised image tensor per modality, in the order
``[rgb, aux]`` (length ``model.num_modalities``): ``(B, 3, Ht, Wt)`` for RGB and
``(B, aux_in_chans, Ht, Wt)`` for the auxiliary modality (search likewise at the search size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from mmtrack_kd.models.fusion import SearchFusion, tokens_to_map
from mmtrack_kd.models.head import CenterHead, HeadOutput
from mmtrack_kd.models.vit import ViTBackbone


@dataclass
class TrackerOutput:
    """One forward pass of a tracking model on a batch of B (template, search) pairs.

    The head sees an ``H x W`` map (16 x 16 at search 256, patch 16). Boxes are normalised
    ``cx, cy, w, h`` of the search crop.

    ``features`` (only when asked for) has one entry per block, 0-indexed: ``features[l - 1]`` is
    the output of block l, ``(B, N, D)`` in the student's token order
    ``[z_rgb, x_rgb, z_aux, x_aux]`` (``[z, x]`` with one modality). For the teacher it is the
    token-wise concatenation of its RGB and auxiliary streams after that block, so feature
    distillation is a plain MSE. With candidate elimination the features are re-expanded to all
    N positions (dropped tokens are zero) and ``feature_masks`` holds, per block, a ``(B, N)``
    bool mask of the tokens that were present; otherwise ``feature_masks`` is None.
    """

    score_logits: Tensor  # (B, 1, H, W)
    score_map: Tensor  # (B, 1, H, W), clamped sigmoid of score_logits
    size_map: Tensor  # (B, 2, H, W)
    offset_map: Tensor  # (B, 2, H, W)
    boxes: Tensor  # (B, 4) at the arg-max of score_map
    features: list[Tensor] | None = None
    feature_masks: list[Tensor] | None = None

    def __getitem__(self, key: str) -> Any:
        """Dict-style access (``out["boxes"]``) for code written against OSTrack's output dicts."""
        return getattr(self, key)

    @classmethod
    def from_head(
        cls, head: HeadOutput, features: list[Tensor] | None = None, feature_masks: list[Tensor] | None = None
    ) -> "TrackerOutput":
        return cls(*head, features=features, feature_masks=feature_masks)


class TrackingModel(nn.Module):
    """Base of :class:`TwoStreamTeacher` and :class:`OneStreamStudent`.

    Subclasses build ``backbone`` (:class:`ViTBackbone`), ``fusion`` (:class:`SearchFusion`, or
    None with one modality) and ``box_head`` (:class:`CenterHead`), set ``config`` to their
    constructor arguments (a JSON-able dict; ``build_model(kind, config)`` rebuilds the model)
    and implement :meth:`forward_embedded`.
    """

    kind: ClassVar[str] = ""
    num_modalities: int
    config: dict[str, Any]
    backbone: ViTBackbone
    fusion: SearchFusion | None
    box_head: CenterHead

    def __init__(self) -> None:
        super().__init__()
        # Patch embeddings of the template set by set_template(); a plain attribute, not a
        # buffer, so it never enters a state dict.
        self._template_patches: list[Tensor] | None = None

    # -- inputs -----------------------------------------------------------------------------

    def _check_inputs(self, images: Sequence[Tensor], what: str, size: int) -> None:
        if len(images) != self.num_modalities:
            raise ValueError(
                f"{type(self).__name__} takes {self.num_modalities} {what} (one per modality, "
                f"[rgb, aux]); got {len(images)}"
            )
        for modality, image in enumerate(images):
            channels = 3 if modality == 0 else self.backbone.aux_in_chans
            expected = (channels, size, size)
            if image.dim() != 4 or tuple(image.shape[1:]) != expected:
                raise ValueError(
                    f"{what}[{modality}] has shape {tuple(image.shape)}; expected (B, {channels}, {size}, {size})"
                )

    def embed_templates(self, templates: Sequence[Tensor]) -> list[Tensor]:
        """Patch embeddings (no position) of each modality's template, ``(B, Nz, D)`` each."""
        self._check_inputs(templates, "templates", self.config["template_size"])
        return [self.backbone.patchify(image, modality) for modality, image in enumerate(templates)]

    # -- forward ----------------------------------------------------------------------------

    def forward(
        self,
        templates: Sequence[Tensor],
        searches: Sequence[Tensor],
        return_features: bool = False,
        keep_ratio: float | None = None,
    ) -> TrackerOutput:
        """Predict boxes for B (template, search) pairs.

        Args:
            templates: one ``(B, C, Ht, Wt)`` tensor per modality, ``[rgb, aux]``.
            searches: one ``(B, C, Hs, Ws)`` tensor per modality, ``[rgb, aux]``.
            return_features: also return the per-block tokens (see :class:`TrackerOutput`).
            keep_ratio: candidate elimination keep ratio for this call (student only; None uses
                the configured one). The teacher accepts and ignores it.
        """
        return self.forward_embedded(self.embed_templates(templates), searches, return_features, keep_ratio)

    def forward_embedded(
        self,
        template_patches: Sequence[Tensor],
        searches: Sequence[Tensor],
        return_features: bool = False,
        keep_ratio: float | None = None,
    ) -> TrackerOutput:
        """:meth:`forward` with the templates already patch-embedded (``(B, Nz, D)`` each)."""
        raise NotImplementedError

    def predict(self, search_tokens: Sequence[Tensor]) -> HeadOutput:
        """Fuse the modalities' final (normed) search tokens ``(B, Nx, D)`` and run the head."""
        grid = self.backbone.search_grid
        if self.fusion is None:
            return self.box_head(tokens_to_map(search_tokens[0], grid))
        return self.box_head(self.fusion(search_tokens, grid))

    # -- tracking ---------------------------------------------------------------------------

    @torch.no_grad()
    def set_template(self, templates: Sequence[Tensor]) -> None:
        """Embed the template(s) once for :meth:`track` (a tracker's initialisation frame)."""
        self._template_patches = self.embed_templates(templates)

    @torch.no_grad()
    def track(self, searches: Sequence[Tensor], keep_ratio: float | None = None) -> TrackerOutput:
        """Forward one batch of search regions against the template given to :meth:`set_template`."""
        if self._template_patches is None:
            raise RuntimeError("track() before set_template()")
        return self.forward_embedded(self._template_patches, searches, False, keep_ratio)

    def _check_searches(self, searches: Sequence[Tensor], template_patches: Sequence[Tensor]) -> None:
        self._check_inputs(searches, "searches", self.config["search_size"])
        if searches[0].shape[0] != template_patches[0].shape[0]:
            raise ValueError(
                f"batch of searches ({searches[0].shape[0]}) differs from templates ({template_patches[0].shape[0]})"
            )
