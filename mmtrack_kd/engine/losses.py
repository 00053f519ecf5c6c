"""Training losses: OSTrack's tracking loss and the paper's two distillation terms.

The file reads top to bottom:

1. box helpers and the three tracking terms (CornerNet focal loss on a Gaussian heat map,
   GIoU and L1 on the box decoded at the predicted peak), plus the heat-map target itself;
2. ``TrackingLoss``: their weighted sum (paper eq. 20, weights 1 / 2 / 5);
3. ``FeatureDistillLoss``: MSE between student and teacher tokens after chosen blocks (eq. 18);
4. ``ResponseDistillLoss``: a soft-target focal loss between temperature-scaled score maps (eq. 19);
5. ``DistillationLoss``: the student's objective (eq. 21); with both distillation weights at zero
   it is FOST, the paper's no-distillation control, and never touches the teacher.

Every loss module returns ``(total, terms)``: ``total`` is the weighted scalar tensor to
back-propagate, ``terms`` a dict of plain floats (unweighted terms) for logging. Everything is set
by constructor arguments; nothing reads global configuration.

Conventions shared with the models (documented here because the loss is where they meet):

* model outputs are a mapping with ``score_map`` ``(B, 1, H, W)`` (probabilities, after the head's
  clamped sigmoid), ``score_logits`` ``(B, 1, H, W)`` (the same map before the sigmoid), ``boxes``
  ``(B, 4)`` normalised ``(cx, cy, w, h)`` read at the score map's arg-max, and ``features``: one
  ``(B, N, D)`` tensor per backbone block (position ``l - 1`` holds block ``l``);
* targets are a mapping with ``search_box`` ``(B, 4)`` normalised ``(x, y, w, h)`` in the search
  crop and, optionally, ``heatmap`` ``(B, 1, H, W)`` or ``(B, H, W)`` (built here when absent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "gaussian_radius",
    "gaussian_heatmap",
    "box_cxcywh_to_xyxy",
    "box_xywh_to_xyxy",
    "focal_loss",
    "generalized_box_iou",
    "giou_loss",
    "l1_loss",
    "masked_mse",
    "soft_focal_loss",
    "TrackingLoss",
    "FeatureDistillLoss",
    "ResponseDistillLoss",
    "DistillationLoss",
]

#: Floor for areas in IoU / GIoU denominators: keeps zero-area boxes finite (see ``giou_loss``).
BOX_EPS = 1e-7
#: OSTrack clamps the focal loss' predictions at 1e-12 before taking logarithms.
FOCAL_EPS = 1e-12

# --------------------------------------------------------------------------- the heat-map target


def gaussian_radius(wh: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CornerNet's ``gaussian_radius`` exactly as OSTrack (and CenterNet) ship it.

    The three quadratic roots are taken as ``(b + sqrt(b^2 - 4ac)) / 2``, not ``/ (2a)``; this is
    the widely copied variant OSTrack trains with ("bug version" in its comment), kept so that
    targets and trained weights agree with OSTrack's.

    Args:
        wh: ``(..., 2)`` box width and height in feature-map cells.
        min_overlap: IoU a box of the radius' corner offset must keep with the true box.

    Returns:
        ``(...)`` radius in cells (real-valued; callers truncate).
    """
    width, height = wh[..., 0], wh[..., 1]
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2**2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(r1, torch.minimum(r2, r3))


def gaussian_heatmap(
    boxes: torch.Tensor | np.ndarray, feat_size: int, min_overlap: float = 0.7
) -> torch.Tensor:
    """Gaussian centre heat maps, OSTrack's ``generate_heatmap`` vectorised over boxes.

    The peak (value 1) sits at cell ``round(centre * feat_size)`` (torch's round, half to even,
    as OSTrack); radius ``r = int(gaussian_radius(w, h) in cells)`` (truncated, at least 0),
    ``sigma = (2r + 1) / 6``, zero beyond ``r`` cells on either axis. A centre outside the map
    leaves only the part of the Gaussian that falls on it.

    Args:
        boxes: ``(..., 4)`` ``x, y, w, h`` normalised to the search crop (``[0, 1]``).
        feat_size: side of the score map (``search_size // patch_size``).
        min_overlap: CornerNet's minimum overlap (0.7 in OSTrack).

    Returns:
        ``(..., feat_size, feat_size)`` float32, on the boxes' device.
    """
    boxes = torch.as_tensor(boxes)
    if not boxes.is_floating_point():
        boxes = boxes.float()
    boxes = boxes.to(torch.float32)
    leading = boxes.shape[:-1]
    cells = boxes.reshape(-1, 4) * feat_size
    wh = cells[:, 2:]
    centre = torch.round(cells[:, :2] + wh / 2)
    radius = gaussian_radius(wh, min_overlap).clamp_min(0).to(torch.int64).to(torch.float32)
    sigma = (2 * radius + 1) / 6
    grid = torch.arange(feat_size, dtype=torch.float32, device=boxes.device)
    dx = grid[None, :] - centre[:, 0:1]  # (B, F)
    dy = grid[None, :] - centre[:, 1:2]
    denominator = (2 * sigma**2)[:, None]
    gx = torch.exp(-(dx**2) / denominator) * (dx.abs() <= radius[:, None])
    gy = torch.exp(-(dy**2) / denominator) * (dy.abs() <= radius[:, None])
    heat = gy[:, :, None] * gx[:, None, :]  # exp(-(dx^2 + dy^2) / 2 sigma^2) is separable
    return heat.reshape(*leading, feat_size, feat_size)


# Per-layer inputs of the feature loss: a list indexed by block (position l - 1 is block l), or a
# mapping keyed by the 1-indexed block number. A teacher entry may be a pair of streams.
LayerTensors = Union[Sequence[Tensor], Mapping[int, Tensor]]
TeacherLayerTensors = Union[Sequence[Union[Tensor, Sequence[Tensor]]],
                            Mapping[int, Union[Tensor, Sequence[Tensor]]]]
KeepMask = Union[Tensor, Sequence[Union[Tensor, None]], Mapping[int, Union[Tensor, None]], None]


# --------------------------------------------------------------------------------------------
# Boxes and tracking terms
# --------------------------------------------------------------------------------------------

def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(..., 4)`` ``(cx, cy, w, h)`` -> ``(..., 4)`` ``(x1, y1, x2, y2)``, same units."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(..., 4)`` ``(x, y, w, h)`` (top-left corner) -> ``(..., 4)`` ``(x1, y1, x2, y2)``."""
    x, y, w, h = boxes.unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def _box_area(boxes: Tensor) -> Tensor:
    """``(N, 4)`` xyxy -> ``(N,)``; an inverted box (x2 < x1) has area 0, not a negative one."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def focal_loss(pred_score_map: Tensor, gt_heatmap: Tensor, alpha: float = 2.0,
               beta: float = 4.0) -> Tensor:
    """CornerNet's penalty-reduced focal loss, exactly as OSTrack computes it.

    ``-1/N_pos * sum[ (1-p)^alpha log p        where y == 1
                    + (1-y)^beta p^alpha log(1-p) where y < 1 ]``

    Positives are the cells where the heat map is exactly 1 (the Gaussian's peak); ``N_pos`` is
    counted over the whole batch (OSTrack normalises per batch, not per image); with no positive
    at all the sum is returned unnormalised, again as OSTrack.

    OSTrack clamps ``p`` at 1e-12 before ``log p``; it relies on the head's 1 - 1e-4 clamp to keep
    ``log(1 - p)`` finite. We floor ``1 - p`` at the same 1e-12 as well, which is identical
    whenever ``p < 1`` and keeps the loss finite for an unclamped ``p == 1``.

    Args:
        pred_score_map: ``(B, 1, H, W)`` or ``(B, H, W)`` probabilities in ``[0, 1]``.
        gt_heatmap: same shape (a ``(B, H, W)`` map also matches a ``(B, 1, H, W)`` prediction).

    Returns:
        Scalar tensor (float32).
    """
    pred, target = _match_maps(pred_score_map, gt_heatmap)
    pred, target = pred.float(), target.float()
    positive = target.eq(1).float()
    negative = target.lt(1).float()
    log_p = torch.log(pred.clamp(min=FOCAL_EPS))
    log_not_p = torch.log((1 - pred).clamp(min=FOCAL_EPS))
    positive_loss = (log_p * (1 - pred).pow(alpha) * positive).sum()
    negative_loss = (log_not_p * pred.pow(alpha) * (1 - target).pow(beta) * negative).sum()
    # Dividing by max(N_pos, 1) is OSTrack's "if N_pos == 0: unnormalised" without a host sync.
    return -(positive_loss + negative_loss) / positive.sum().clamp(min=1.0)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Element-wise GIoU and IoU of paired boxes, safe for degenerate boxes.

    OSTrack asserts ``x2 >= x1`` and lets zero-area boxes divide by zero; its actor then catches
    the exception and uses a loss of 0. Here an inverted box counts as zero area and both
    denominators (union, enclosing area) are floored at ``BOX_EPS``, so two zero-area boxes give
    IoU 0 and a finite GIoU with finite gradients instead of NaN.

    Args:
        boxes1, boxes2: ``(N, 4)`` ``(x1, y1, x2, y2)``, same units.

    Returns:
        ``(giou, iou)``, each ``(N,)``; ``giou`` in ``[-1, 1]``.
    """
    area1, area2 = _box_area(boxes1), _box_area(boxes2)
    inter_wh = (torch.minimum(boxes1[:, 2:], boxes2[:, 2:])
                - torch.maximum(boxes1[:, :2], boxes2[:, :2])).clamp(min=0)
    inter = inter_wh[:, 0] * inter_wh[:, 1]
    union = area1 + area2 - inter
    iou = inter / union.clamp(min=BOX_EPS)
    hull_wh = (torch.maximum(boxes1[:, 2:], boxes2[:, 2:])
               - torch.minimum(boxes1[:, :2], boxes2[:, :2])).clamp(min=0)
    hull = hull_wh[:, 0] * hull_wh[:, 1]
    giou = iou - (hull - union) / hull.clamp(min=BOX_EPS)
    return giou, iou


def giou_loss(pred_xyxy: Tensor, gt_xyxy: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``1 - GIoU`` over box pairs, and the per-pair IoU (for logging).

    Args:
        pred_xyxy, gt_xyxy: ``(N, 4)`` ``(x1, y1, x2, y2)``.

    Returns:
        ``(loss, iou)``: scalar, ``(N,)``.
    """
    giou, iou = generalized_box_iou(pred_xyxy, gt_xyxy)
    return (1 - giou).mean(), iou


def l1_loss(pred_xyxy: Tensor, gt_xyxy: Tensor) -> Tensor:
    """Mean absolute error over all ``N * 4`` coordinates (``nn.L1Loss()``, as OSTrack).

    OSTrack applies L1 to the corner form ``(x1, y1, x2, y2)``, not to ``(cx, cy, w, h)``; we do
    the same so the weight 5 means what it means there.
    """
    return F.l1_loss(pred_xyxy, gt_xyxy)


def soft_focal_loss(pred_logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """Focal loss with soft targets: the quality focal loss of Generalized Focal Loss (Li 2020).

    ``sum |y - p|^gamma * BCE(p, y) / max(sum y, 1)`` with ``p = sigmoid(logits)``.

    Why this form: the paper says "focal loss" (its ref. [13] is CornerNet), but CornerNet's form
    needs cells with target exactly 1, which a teacher's soft map never has. This form

    * equals CornerNet's (and Lin et al.'s focal loss with gamma 2, no alpha) for 0/1 targets:
      ``(1-p)^2 (-log p)`` at y = 1 and ``p^2 (-log(1-p))`` at y = 0;
    * is minimal, and zero, exactly where ``p == y`` (value and gradient vanish), so it pulls the
      student's map onto the teacher's rather than onto a sharpened version of it;
    * normalises by the target mass ``sum y`` (the soft number of positives), floored at 1, which
      is CornerNet's ``N_pos`` for 0/1 targets and its unnormalised sum when there is none.

    The BCE is computed from logits for numerical stability; the modulating factor keeps its
    gradient, as in the GFL reference implementation.

    Args:
        pred_logits: any shape, logits.
        target: same shape, values in ``[0, 1]`` (not back-propagated through by the caller's
            choice: detach it if it comes from a network).
        gamma: exponent of the modulating factor ``|y - p|``.

    Returns:
        Scalar tensor (float32).
    """
    logits, target = pred_logits.float(), target.float()
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = (target - prob).abs().pow(gamma) * bce
    return loss.sum() / target.sum().clamp(min=1.0)


def _match_maps(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Give a ``(B, H, W)`` map the channel axis of a ``(B, 1, H, W)`` partner; check shapes."""
    if pred.dim() == 4 and target.dim() == 3:
        target = target.unsqueeze(1)
    elif pred.dim() == 3 and target.dim() == 4:
        pred = pred.unsqueeze(1)
    if pred.shape != target.shape:
        raise ValueError(f"score maps differ in shape: {tuple(pred.shape)} vs "
                         f"{tuple(target.shape)}")
    return pred, target


# --------------------------------------------------------------------------------------------
# Tracking loss (paper eq. 20)
# --------------------------------------------------------------------------------------------

class TrackingLoss(nn.Module):
    """OSTrack's loss: ``focal_weight * focal + giou_weight * GIoU + l1_weight * L1``.

    Inputs (mappings, extra keys ignored):

    * ``outputs["score_map"]``: ``(B, 1, H, W)`` probabilities;
    * ``outputs["boxes"]``: ``(B, 4)`` (or ``(B, Q, 4)``) normalised ``(cx, cy, w, h)``, the box
      decoded at the predicted peak;
    * ``targets["search_box"]``: ``(B, 4)`` normalised ``(x, y, w, h)`` in the search crop;
    * ``targets["heatmap"]`` (optional): ``(B, 1, H, W)`` or ``(B, H, W)``; built with
      ``gaussian_heatmap`` at the score map's size when absent, which is how training runs
      (the loader does not draw it: one batched call here is cheaper than one per sample).

    Box terms use the corner form: predictions via ``box_cxcywh_to_xyxy`` (not clamped, as
    OSTrack), targets via ``box_xywh_to_xyxy`` then clamped to ``[0, 1]`` (as OSTrack: a target
    partly outside the crop is cut at the crop border).

    Non-finite predictions are not masked: they make the total non-finite, which the trainer
    detects (OSTrack raises; a mixed-precision step would rather skip it).

    Returns ``(total, terms)`` with ``terms`` keys ``total``, ``focal``, ``giou``, ``l1``
    (unweighted) and ``iou`` (mean IoU of the decoded boxes).
    """

    def __init__(self, focal_weight: float = 1.0, giou_weight: float = 2.0,
                 l1_weight: float = 5.0, focal_alpha: float = 2.0, focal_beta: float = 4.0,
                 heatmap_min_overlap: float = 0.7) -> None:
        super().__init__()
        self.focal_weight = focal_weight
        self.giou_weight = giou_weight
        self.l1_weight = l1_weight
        self.focal_alpha = focal_alpha
        self.focal_beta = focal_beta
        self.heatmap_min_overlap = heatmap_min_overlap

    def forward(self, outputs: Mapping[str, Tensor],
                targets: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        score_map = outputs["score_map"]
        gt_box = targets["search_box"].float()
        heatmap = targets.get("heatmap")
        if heatmap is None:
            if score_map.shape[-1] != score_map.shape[-2]:
                raise ValueError(f"square score maps only, got {tuple(score_map.shape[-2:])}")
            heatmap = gaussian_heatmap(gt_box, score_map.shape[-1],
                                       self.heatmap_min_overlap).unsqueeze(1)
        focal = focal_loss(score_map, heatmap.to(score_map.device), self.focal_alpha,
                           self.focal_beta)

        batch = gt_box.shape[0]
        pred_xyxy = box_cxcywh_to_xyxy(outputs["boxes"].float().reshape(batch, -1, 4))
        queries = pred_xyxy.shape[1]
        gt_xyxy = box_xywh_to_xyxy(gt_box).clamp(0.0, 1.0)[:, None, :].expand(-1, queries, -1)
        pred_xyxy, gt_xyxy = pred_xyxy.reshape(-1, 4), gt_xyxy.reshape(-1, 4)
        giou, iou = giou_loss(pred_xyxy, gt_xyxy)
        l1 = l1_loss(pred_xyxy, gt_xyxy)

        total = self.focal_weight * focal + self.giou_weight * giou + self.l1_weight * l1
        terms = {"total": total.item(), "focal": focal.item(), "giou": giou.item(),
                 "l1": l1.item(), "iou": iou.detach().mean().item()}
        return total, terms


# --------------------------------------------------------------------------------------------
# Feature distillation (paper eqs. 17-18)
# --------------------------------------------------------------------------------------------

class FeatureDistillLoss(nn.Module):
    """``weight * sum_l w_l * MSE(student_l, teacher_l)`` over the chosen 1-indexed blocks.

    Eq. 18 writes ``sum_{i=1}^{n} 2i * L2(H_t^i, H_s^i)`` with ``n`` half the depth, and the text
    explains it as "extracting intermediate layer features at intervals": we read ``2i`` as the
    index of the block (the even blocks 2, 4, ..., 12) and the sum as a plain sum over those
    blocks - ``weighting="uniform"``. Read literally, ``2i`` is also a factor that grows with the
    layer index - ``weighting="layer_index"``.

    Normalisation of the per-layer weights ``w_l``: they always average to 1 (sum to the number
    of chosen layers), i.e. ``w_l = 1`` (uniform) or ``w_l = L * l / sum(l)`` (layer_index). So
    the uniform default is exactly the paper's sum, and switching the weighting only moves
    emphasis between layers without changing the overall scale that ``weight`` (0.035) was tuned
    for. (The literal ``2i`` factors sum to 42 over the even layers, 7 times our 6: use
    ``weight=0.245`` with ``layer_index`` to reproduce that product exactly.) Adding layers (all
    12 rather than 6) adds terms, as in the paper's sum.

    ``L2`` is the mean squared error over tokens and channels (``nn.MSELoss()``), teacher detached.
    With a keep mask ``(B, N)`` (1 = kept) the mean runs over kept tokens only: tokens removed by
    candidate elimination are padded back by the student and must not be pulled anywhere.

    Call: ``loss(student_features, teacher_features, keep_mask=None) -> (total, terms)``.

    * ``student_features``: a list with one ``(B, N, D)`` tensor per block (position ``l - 1``
      is block ``l``), or a mapping ``{l: (B, N, D)}`` with 1-indexed keys;
    * ``teacher_features``: the same, in the student's token order; an entry may also be a pair
      ``(rgb, aux)`` of ``(B, N/2, D)`` stream tokens, concatenated here on the token axis
      (eq. 17: ``Concat(H_RGB, H_TIR, dim N)``);
    * ``keep_mask``: ``None``, one ``(B, N)`` mask for every layer, or a per-layer list / mapping
      indexed like the features (``None`` entries: no mask).

    ``terms``: ``feature`` (the unweighted ``sum_l w_l MSE_l``) and ``feature/layer{l}``
    (each ``MSE_l``).
    """

    def __init__(self, layers: Sequence[int] = (2, 4, 6, 8, 10, 12),
                 weighting: Literal["uniform", "layer_index"] = "uniform",
                 weight: float = 0.035) -> None:
        super().__init__()
        layers = [int(layer) for layer in layers]
        if not layers:
            raise ValueError("FeatureDistillLoss needs at least one layer")
        if any(layer < 1 for layer in layers):
            raise ValueError(f"layers are 1-indexed blocks, got {layers}")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers repeat: {layers}")
        if weighting not in ("uniform", "layer_index"):
            raise ValueError(f"weighting must be 'uniform' or 'layer_index', got {weighting!r}")
        self.layers = layers
        self.weighting = weighting
        self.weight = weight
        raw = [1.0 if weighting == "uniform" else float(layer) for layer in layers]
        self.layer_weights = [len(layers) * r / sum(raw) for r in raw]

    def forward(self, student_features: LayerTensors, teacher_features: TeacherLayerTensors,
                keep_mask: KeepMask = None) -> tuple[Tensor, dict[str, float]]:
        total_unweighted: Tensor | None = None
        terms: dict[str, float] = {}
        for layer, layer_weight in zip(self.layers, self.layer_weights):
            student = _pick_layer(student_features, layer, "student")
            teacher = _pick_layer(teacher_features, layer, "teacher")
            if not isinstance(teacher, Tensor):
                teacher = torch.cat(list(teacher), dim=1)
            mask = keep_mask if keep_mask is None or isinstance(keep_mask, Tensor) else \
                _pick_layer(keep_mask, layer, "keep_mask")
            mse = masked_mse(student, teacher.detach(), mask)
            terms[f"feature/layer{layer}"] = mse.item()
            term = layer_weight * mse
            total_unweighted = term if total_unweighted is None else total_unweighted + term
        assert total_unweighted is not None
        terms = {"feature": total_unweighted.item(), **terms}
        return self.weight * total_unweighted, terms


def masked_mse(student: Tensor, teacher: Tensor, keep_mask: Tensor | None = None) -> Tensor:
    """Mean squared error between ``(B, N, D)`` token sets over the kept tokens.

    Args:
        student, teacher: ``(B, N, D)``, same token order.
        keep_mask: ``(B, N)`` (bool or 0/1), 1 where a token counts; ``None``: all count.

    Returns:
        Scalar float32: ``sum(mask * (s - t)^2) / (sum(mask) * D)``; 0 (still attached to the
        graph) when nothing is kept.
    """
    if student.shape != teacher.shape:
        raise ValueError(f"student and teacher tokens differ in shape: {tuple(student.shape)} "
                         f"vs {tuple(teacher.shape)}")
    sq = (student.float() - teacher.float()).pow(2)
    if keep_mask is None:
        return sq.mean()
    if keep_mask.shape != student.shape[:2]:
        raise ValueError(f"keep_mask {tuple(keep_mask.shape)} does not match tokens "
                         f"{tuple(student.shape[:2])}")
    mask = keep_mask.to(sq.dtype)
    kept = mask.sum() * student.shape[-1]
    return (sq * mask[..., None]).sum() / kept.clamp(min=1.0)


def _pick_layer(per_layer, layer: int, what: str):
    """Entry of block ``layer`` (1-indexed) from a list (position l - 1) or a mapping (key l)."""
    if isinstance(per_layer, Mapping):
        if layer not in per_layer:
            raise KeyError(f"{what} features have no block {layer} (have {sorted(per_layer)})")
        return per_layer[layer]
    if not 1 <= layer <= len(per_layer):
        raise IndexError(f"{what} features cover blocks 1..{len(per_layer)}, asked for {layer}")
    return per_layer[layer - 1]


# --------------------------------------------------------------------------------------------
# Response distillation (paper eq. 19)
# --------------------------------------------------------------------------------------------

class ResponseDistillLoss(nn.Module):
    """``weight * soft_focal(student_logits / T, sigmoid(teacher_logits / T))``.

    Eq. 19 divides both response maps by a temperature tau = 2 and compares them with "focal
    loss". We divide the score *logits* (a probability divided by 2 would no longer be one, and
    softening belongs before the sigmoid as in Hinton's distillation), take the teacher's
    sigmoid as a soft target (detached: the teacher is not trained by this term), and use the
    quality-focal form of ``soft_focal_loss`` - see its docstring for why, in short: it is
    CornerNet's form for 0/1 targets and is zero exactly when the two maps agree.

    ``T^2``: Hinton multiplies by ``T^2`` to keep gradient size independent of ``T``. Eq. 19 has
    no such factor and lambda_RM = 0.7 was tuned without it, so the default leaves it out;
    ``scale_by_t2=True`` puts it in.

    Call: ``loss(student_logits, teacher_logits) -> (total, {"response": unweighted})`` with
    both logits ``(B, 1, H, W)`` or ``(B, H, W)``.
    """

    def __init__(self, temperature: float = 2.0, weight: float = 0.7, gamma: float = 2.0,
                 scale_by_t2: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.weight = weight
        self.gamma = gamma
        self.scale_by_t2 = scale_by_t2

    def forward(self, student_logits: Tensor,
                teacher_logits: Tensor) -> tuple[Tensor, dict[str, float]]:
        student_logits, teacher_logits = _match_maps(student_logits, teacher_logits)
        temperature = self.temperature
        target = torch.sigmoid(teacher_logits.detach().float() / temperature)
        loss = soft_focal_loss(student_logits.float() / temperature, target, self.gamma)
        if self.scale_by_t2:
            loss = loss * temperature ** 2
        return self.weight * loss, {"response": loss.item()}


# --------------------------------------------------------------------------------------------
# Student objective (paper eq. 21) and FOST
# --------------------------------------------------------------------------------------------

class DistillationLoss(nn.Module):
    """Tracking loss + weighted feature and response distillation (eq. 21).

    A distillation term whose weight is 0 is not computed at all; with both at 0 (FOST, the
    paper's no-distillation control) no teacher output is read and ``teacher_output`` may be
    ``None``. ``uses_teacher`` tells the trainer whether to run the teacher at all.

    Components default to the paper's recipe: ``TrackingLoss()`` (1 / 2 / 5),
    ``FeatureDistillLoss()`` (even blocks, uniform, 0.035), ``ResponseDistillLoss()`` (T = 2,
    0.7).

    Call: ``loss(student_output, targets, teacher_output=None) -> (total, terms)``.

    * ``student_output``: ``score_map``, ``boxes``, plus ``features`` when the feature term is
      on, ``score_logits`` when the response term is on, and optionally ``keep_mask`` (see
      ``FeatureDistillLoss``);
    * ``teacher_output``: ``features`` / ``score_logits`` as needed;
    * ``targets``: as ``TrackingLoss``.

    ``terms`` keys: ``total``, ``tracking`` (weighted tracking sum), ``focal``, ``giou``, ``l1``,
    ``iou``, ``feature``, ``response`` (unweighted; 0.0 when off), and ``feature/layer{l}`` when
    the feature term is on.
    """

    def __init__(self, tracking: TrackingLoss | None = None,
                 feature: FeatureDistillLoss | None = None,
                 response: ResponseDistillLoss | None = None) -> None:
        super().__init__()
        self.tracking = tracking if tracking is not None else TrackingLoss()
        self.feature = feature if feature is not None else FeatureDistillLoss()
        self.response = response if response is not None else ResponseDistillLoss()

    @property
    def uses_teacher(self) -> bool:
        """False for FOST (both distillation weights 0): the teacher need not run."""
        return self.feature.weight != 0 or self.response.weight != 0

    def forward(self, student_output: Mapping[str, Tensor], targets: Mapping[str, Tensor],
                teacher_output: Mapping[str, Tensor] | None = None,
                ) -> tuple[Tensor, dict[str, float]]:
        total, tracking_terms = self.tracking(student_output, targets)
        terms: dict[str, float] = {"tracking": tracking_terms.pop("total"), **tracking_terms,
                                   "feature": 0.0, "response": 0.0}
        if self.uses_teacher and teacher_output is None:
            raise ValueError("distillation weights are non-zero but no teacher output was given "
                             "(set both weights to 0 for FOST)")
        if self.feature.weight != 0:
            feature_total, feature_terms = self.feature(
                student_output["features"], teacher_output["features"],
                student_output.get("keep_mask"))
            total = total + feature_total
            terms.update(feature_terms)
        if self.response.weight != 0:
            response_total, response_terms = self.response(
                student_output["score_logits"], teacher_output["score_logits"])
            total = total + response_total
            terms.update(response_terms)
        return total, {"total": total.item(), **terms}
