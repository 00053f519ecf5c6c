"""Losses: the heat-map target against OSTrack's, hand-computed values, gradients, degenerate
boxes, distillation and the FOST path."""

import math

import numpy as np
import pytest
import torch

from mmtrack_kd.engine.losses import (
    DistillationLoss,
    FeatureDistillLoss,
    ResponseDistillLoss,
    TrackingLoss,
    box_cxcywh_to_xyxy,
    focal_loss,
    gaussian_heatmap,
    gaussian_radius,
    generalized_box_iou,
    giou_loss,
    masked_mse,
    soft_focal_loss,
)


# --------------------------------------------------------------------------- heat map


def ostrack_heatmap(box: np.ndarray, feat: int) -> np.ndarray:
    """OSTrack's generate_heatmap / CenterNetHeatMap.draw_gaussian, loop form, one box."""
    b = torch.tensor(box, dtype=torch.float32) * feat
    wh = b[2:]
    centre = (b[:2] + wh / 2).round()
    radius = int(gaussian_radius(wh, 0.7).clamp_min(0).to(torch.int))
    diameter = 2 * radius + 1
    sigma = diameter / 6
    m = np.arange(-radius, radius + 1)
    gauss = np.exp(-(m[None, :] ** 2 + m[:, None] ** 2) / (2 * sigma * sigma))
    gauss[gauss < np.finfo(gauss.dtype).eps * gauss.max()] = 0
    fmap = np.zeros((feat, feat))
    x, y = int(centre[0]), int(centre[1])
    left, right = min(x, radius), min(feat - x, radius + 1)
    top, bottom = min(y, radius), min(feat - y, radius + 1)
    part = fmap[y - top : y + bottom, x - left : x + right]
    g = gauss[radius - top : radius + bottom, radius - left : radius + right]
    fmap[y - top : y + bottom, x - left : x + right] = np.maximum(part, g)
    return fmap


def test_radius_matches_cornernet_as_shipped_by_ostrack():
    # w = h = 4 cells: the third root is the smallest, (b3 + sqrt(b3^2 - 4 a3 c3)) / 2
    a3, b3, c3 = 4 * 0.7, -2 * 0.7 * 8, (0.7 - 1) * 16
    expected = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    assert float(gaussian_radius(torch.tensor([4.0, 4.0]))) == pytest.approx(expected, rel=1e-6)


def test_heatmap_peak_at_box_centre_and_matches_ostrack():
    rng = np.random.default_rng(0)
    feat = 16
    boxes = np.concatenate([rng.uniform(0.2, 0.6, (40, 2)), rng.uniform(0.05, 0.4, (40, 2))], 1)
    maps = gaussian_heatmap(torch.tensor(boxes), feat)
    assert maps.shape == (40, feat, feat) and maps.dtype == torch.float32
    for box, heat in zip(boxes, maps):
        centre = box[:2] + box[2:] / 2
        row, col = divmod(int(heat.argmax()), feat)
        assert (col, row) == tuple(np.round(centre * feat).astype(int))
        assert float(heat.max()) == pytest.approx(1.0)
        np.testing.assert_allclose(heat.numpy(), ostrack_heatmap(box, feat), atol=1e-6)


def test_heatmap_of_a_single_box_and_a_tiny_box():
    heat = gaussian_heatmap(torch.tensor([0.4, 0.4, 0.2, 0.2]), 16)
    assert heat.shape == (16, 16)
    tiny = gaussian_heatmap(np.array([0.5, 0.5, 0.001, 0.001]), 16)
    assert float(tiny.sum()) == pytest.approx(1.0)  # radius 0: a single cell


# --------------------------------------------------------------------------- losses


def _loop_focal(pred, target, alpha=2.0, beta=4.0):
    """CornerNet focal loss written element by element, as an independent reference."""
    total, positives = 0.0, 0
    for p, y in zip(pred.flatten().tolist(), target.flatten().tolist()):
        if y == 1:
            total += (1 - p) ** alpha * math.log(p)
            positives += 1
        else:
            total += (1 - y) ** beta * p ** alpha * math.log(1 - p)
    return -total / max(positives, 1)


# ------------------------------------------------------------------ focal loss and heat map

def test_focal_loss_hand_computed():
    pred = torch.tensor([[[[0.5, 0.2]]]])
    target = torch.tensor([[[[1.0, 0.5]]]])
    expected = -(0.5 ** 2 * math.log(0.5) + 0.5 ** 4 * 0.2 ** 2 * math.log(0.8))
    assert focal_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_without_positive_is_unnormalised_sum():
    pred = torch.tensor([[[[0.3, 0.1]]]])
    target = torch.tensor([[[[0.0, 0.5]]]])
    expected = -(0.3 ** 2 * math.log(0.7) + 0.5 ** 4 * 0.1 ** 2 * math.log(0.9))
    assert focal_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_matches_loop_and_normalises_over_batch():
    torch.manual_seed(0)
    pred = torch.rand(3, 1, 5, 5).clamp(1e-4, 1 - 1e-4)
    target = torch.rand(3, 1, 5, 5) * 0.9
    target[0, 0, 2, 2] = 1.0
    target[2, 0, 1, 3] = 1.0
    assert focal_loss(pred, target).item() == pytest.approx(_loop_focal(pred, target), rel=1e-5)
    # A (B, H, W) target matches a (B, 1, H, W) prediction.
    assert focal_loss(pred, target[:, 0]).item() == pytest.approx(_loop_focal(pred, target),
                                                                  rel=1e-5)


def test_focal_loss_finite_at_saturated_prediction():
    # Certain and wrong on both cells: p = 0 on the positive, p = 1 on a negative.
    pred = torch.tensor([[[[0.0, 1.0]]]], requires_grad=True)
    loss = focal_loss(pred, torch.tensor([[[[1.0, 0.0]]]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()


# ------------------------------------------------------------------ box terms

def test_giou_hand_computed():
    pred = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    gt = torch.tensor([[0.5, 0.5, 1.5, 1.5], [2.0, 0.0, 3.0, 1.0]])
    giou, iou = generalized_box_iou(pred, gt)
    torch.testing.assert_close(iou, torch.tensor([0.25 / 1.75, 0.0]))
    torch.testing.assert_close(giou, torch.tensor([0.25 / 1.75 - 0.5 / 2.25, -1 / 3]))
    loss, _ = giou_loss(pred, gt)
    assert loss.item() == pytest.approx(1 - (0.25 / 1.75 - 0.5 / 2.25 - 1 / 3) / 2, rel=1e-6)


@pytest.mark.parametrize("pred_cxcywh, gt_xywh", [
    ([0.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]),    # two points, same place
    ([0.5, 0.5, 0.0, 0.0], [0.1, 0.1, 0.2, 0.2]),    # point vs box
    ([0.5, 0.5, 0.3, 0.0], [0.4, 0.5, 0.3, 0.0]),    # two segments, overlapping
    ([0.5, 0.5, -0.1, 0.2], [0.1, 0.1, 0.2, 0.2]),   # inverted prediction
    ([0.5, 0.5, 0.2, 0.2], [1.5, 1.5, 0.3, 0.3]),    # target outside the crop: clamped to a point
])
def test_tracking_loss_is_finite_for_degenerate_boxes(pred_cxcywh, gt_xywh):
    boxes = torch.tensor([pred_cxcywh], requires_grad=True)
    score = torch.full((1, 1, 4, 4), 0.3, requires_grad=True)
    outputs = {"score_map": score, "boxes": boxes}
    targets = {"search_box": torch.tensor([gt_xywh])}
    total, terms = TrackingLoss()(outputs, targets)
    total.backward()
    assert torch.isfinite(total)
    assert all(math.isfinite(v) for v in terms.values())
    assert torch.isfinite(boxes.grad).all() and torch.isfinite(score.grad).all()


# ------------------------------------------------------------------ tracking loss

def _score_and_heat():
    score = torch.tensor([[[[0.1, 0.6], [0.2, 0.3]]]], requires_grad=True)
    heat = torch.tensor([[[[0.5, 1.0], [0.2, 0.0]]]])
    focal = _loop_focal(score.detach(), heat)
    return score, heat, focal


def test_tracking_loss_hand_computed():
    score, heat, focal = _score_and_heat()
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2]], requires_grad=True)   # xyxy 0.4 0.4 0.6 0.6
    targets = {"search_box": torch.tensor([[0.5, 0.4, 0.2, 0.2]]),      # xyxy 0.5 0.4 0.7 0.6
               "heatmap": heat[:, 0]}
    total, terms = TrackingLoss(focal_weight=1.0, giou_weight=2.0, l1_weight=5.0)(
        {"score_map": score, "boxes": boxes}, targets)
    # inter 0.1 x 0.2, union 0.06, hull 0.3 x 0.2 = union: GIoU = IoU = 1/3.
    assert terms["iou"] == pytest.approx(1 / 3, rel=1e-5)
    assert terms["giou"] == pytest.approx(2 / 3, rel=1e-5)
    assert terms["l1"] == pytest.approx(0.05, rel=1e-5)
    assert terms["focal"] == pytest.approx(focal, rel=1e-5)
    assert total.item() == pytest.approx(focal + 2 * 2 / 3 + 5 * 0.05, rel=1e-5)
    assert terms["total"] == pytest.approx(total.item())
    total.backward()
    assert score.grad.abs().sum() > 0 and boxes.grad.abs().sum() > 0


def test_tracking_loss_perfect_box_and_weights():
    score, heat, focal = _score_and_heat()
    outputs = {"score_map": score, "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}
    targets = {"search_box": torch.tensor([[0.4, 0.4, 0.2, 0.2]]), "heatmap": heat}
    total, terms = TrackingLoss(focal_weight=3.0)(outputs, targets)
    assert terms["giou"] == pytest.approx(0.0, abs=1e-6)
    assert terms["l1"] == pytest.approx(0.0, abs=1e-6)
    assert terms["iou"] == pytest.approx(1.0, abs=1e-6)
    assert total.item() == pytest.approx(3 * focal, rel=1e-5)


def test_tracking_loss_builds_heatmap_when_absent():
    torch.manual_seed(0)
    score = torch.rand(2, 1, 16, 16).clamp(1e-4, 1 - 1e-4)
    box = torch.tensor([[0.3, 0.35, 0.2, 0.25], [0.5, 0.4, 0.1, 0.3]])
    outputs = {"score_map": score, "boxes": torch.rand(2, 4)}
    # one map per sample (as a loader would draw them) against the loss's one batched call
    per_sample = torch.stack([gaussian_heatmap(row, 16) for row in box])
    assert torch.equal(per_sample, gaussian_heatmap(box, 16))
    given = TrackingLoss()(outputs, {"search_box": box, "heatmap": per_sample.unsqueeze(1)})
    built = TrackingLoss()(outputs, {"search_box": box})
    assert torch.equal(given[0], built[0]) and given[1] == built[1]


def test_box_conversion():
    torch.testing.assert_close(box_cxcywh_to_xyxy(torch.tensor([0.5, 0.4, 0.2, 0.4])),
                               torch.tensor([0.4, 0.2, 0.6, 0.6]))


# ------------------------------------------------------------------ feature distillation

def test_feature_loss_zero_when_student_equals_teacher():
    torch.manual_seed(0)
    feats = [torch.randn(2, 6, 4) for _ in range(4)]
    total, terms = FeatureDistillLoss(layers=[1, 2, 3, 4])(feats, [f.clone() for f in feats])
    assert total.item() == 0.0 and terms["feature"] == 0.0


def test_feature_loss_hand_computed_and_layer_weighting():
    student = [torch.zeros(1, 2, 3), torch.ones(1, 2, 3)]
    teacher = [2 * torch.ones(1, 2, 3), torch.zeros(1, 2, 3)]   # MSE: 4 at layer 1, 1 at layer 2
    uniform = FeatureDistillLoss(layers=[1, 2], weighting="uniform", weight=0.5)
    total, terms = uniform(student, teacher)
    assert uniform.layer_weights == [1.0, 1.0]
    assert terms["feature/layer1"] == 4.0 and terms["feature/layer2"] == 1.0
    assert terms["feature"] == pytest.approx(5.0) and total.item() == pytest.approx(2.5)
    by_index = FeatureDistillLoss(layers=[1, 2], weighting="layer_index", weight=1.0)
    assert by_index.layer_weights == pytest.approx([2 / 3, 4 / 3])
    assert by_index(student, teacher)[0].item() == pytest.approx(4 * 2 / 3 + 1 * 4 / 3)


@pytest.mark.parametrize("layers", [[2, 4, 6, 8, 10, 12], [1, 2, 3, 4, 5, 6], [7, 12]])
def test_layer_weights_average_to_one(layers):
    uniform = FeatureDistillLoss(layers=layers).layer_weights
    by_index = FeatureDistillLoss(layers=layers, weighting="layer_index").layer_weights
    assert uniform == [1.0] * len(layers)
    assert sum(by_index) == pytest.approx(len(layers))
    ratios = [w / layer for w, layer in zip(by_index, layers)]
    assert max(ratios) == pytest.approx(min(ratios))                  # proportional to index


def test_feature_loss_picks_the_listed_layers_and_accepts_mappings_and_pairs():
    torch.manual_seed(0)
    student = [torch.randn(1, 4, 2) for _ in range(3)]
    teacher = [torch.randn(1, 4, 2) for _ in range(3)]
    loss = FeatureDistillLoss(layers=[2], weight=1.0)
    expected = ((student[1] - teacher[1]) ** 2).mean().item()
    assert loss(student, teacher)[0].item() == pytest.approx(expected)
    as_map = loss({2: student[1]}, {2: (teacher[1][:, :2], teacher[1][:, 2:])})
    assert as_map[0].item() == pytest.approx(expected)
    with pytest.raises(IndexError):
        FeatureDistillLoss(layers=[4])(student, teacher)
    with pytest.raises(ValueError):
        FeatureDistillLoss(layers=[0])


def test_feature_loss_keep_mask():
    student = torch.zeros(2, 3, 2)
    teacher = torch.zeros(2, 3, 2)
    teacher[0, 2] = 100.0                 # a dropped token: must not count
    teacher[1, 0] = 3.0                   # a kept token: squared error 9 on both channels
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    # kept tokens: 5, channels 2 -> sum 18 / 10.
    assert masked_mse(student, teacher, mask).item() == pytest.approx(1.8)
    loss = FeatureDistillLoss(layers=[1, 2], weight=1.0)
    total, _ = loss([student, student], [teacher, teacher], keep_mask=mask)
    assert total.item() == pytest.approx(3.6)
    per_layer, terms = loss([student, student], [teacher, teacher], keep_mask=[None, mask])
    assert terms["feature/layer2"] == pytest.approx(1.8)
    assert terms["feature/layer1"] == pytest.approx((100 ** 2 * 2 + 18) / 12)
    nothing_kept = masked_mse(student.requires_grad_(), teacher, torch.zeros(2, 3))
    assert nothing_kept.item() == 0.0 and nothing_kept.requires_grad


def test_feature_loss_gradient_reaches_student_only():
    student = torch.randn(1, 4, 3, requires_grad=True)
    teacher = torch.randn(1, 4, 3, requires_grad=True)
    total, _ = FeatureDistillLoss(layers=[1])([student], [teacher])
    total.backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


# ------------------------------------------------------------------ response distillation

def test_soft_focal_reduces_to_cornernet_for_hard_targets():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 3, 3)
    target = torch.zeros(2, 1, 3, 3)
    target[0, 0, 1, 1] = 1.0
    target[1, 0, 2, 0] = 1.0
    expected = focal_loss(torch.sigmoid(logits), target)
    assert soft_focal_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_response_loss_hand_computed():
    student = torch.tensor([[[[2.0]]]])
    teacher = torch.tensor([[[[0.0]]]])
    p, q = 1 / (1 + math.exp(-1.0)), 0.5   # logits / T with T = 2
    bce = -(q * math.log(p) + (1 - q) * math.log(1 - p))
    raw = (q - p) ** 2 * bce / 1.0         # target mass 0.5, floored at 1
    total, terms = ResponseDistillLoss(temperature=2.0, weight=0.7)(student, teacher)
    assert terms["response"] == pytest.approx(raw, rel=1e-5)
    assert total.item() == pytest.approx(0.7 * raw, rel=1e-5)
    scaled, _ = ResponseDistillLoss(temperature=2.0, weight=0.7, scale_by_t2=True)(
        student, teacher)
    assert scaled.item() == pytest.approx(0.7 * 4 * raw, rel=1e-5)


def test_response_loss_minimal_when_maps_agree():
    torch.manual_seed(0)
    teacher = torch.randn(2, 1, 4, 4) * 3
    loss = ResponseDistillLoss(temperature=2.0, weight=1.0)
    student = teacher.clone().requires_grad_()
    at_teacher, _ = loss(student, teacher)
    at_teacher.backward()
    assert at_teacher.item() == pytest.approx(0.0, abs=1e-7)
    assert student.grad.abs().max() < 1e-6
    for scale in (0.1, 1.0):
        moved, _ = loss(teacher + scale * torch.randn_like(teacher), teacher)
        assert moved.item() > at_teacher.item()


def test_response_loss_gradient_reaches_student_only():
    student = torch.randn(1, 1, 3, 3, requires_grad=True)
    teacher = torch.randn(1, 1, 3, 3, requires_grad=True)
    total, _ = ResponseDistillLoss()(student, teacher[:, 0])   # (B, H, W) accepted
    total.backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


# ------------------------------------------------------------------ student objective

def _outputs(seed, depth=4, tokens=6, dim=8, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    out = {
        "score_logits": torch.randn(2, 1, 4, 4, generator=gen),
        "boxes": torch.rand(2, 4, generator=gen) * 0.5 + 0.25,
        "features": [torch.randn(2, tokens, dim, generator=gen) for _ in range(depth)],
    }
    if requires_grad:
        out = {k: ([f.requires_grad_() for f in v] if isinstance(v, list) else v.requires_grad_())
               for k, v in out.items()}
    out["score_map"] = torch.sigmoid(out["score_logits"]).clamp(1e-4, 1 - 1e-4)
    return out


TARGETS = {"search_box": torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.4, 0.2, 0.2, 0.4]])}


def test_distillation_loss_sums_the_three_parts():
    student, teacher = _outputs(0, requires_grad=True), _outputs(1)
    tracking = TrackingLoss()
    feature = FeatureDistillLoss(layers=[2, 4], weight=0.035)
    response = ResponseDistillLoss(temperature=2.0, weight=0.7)
    total, terms = DistillationLoss(tracking, feature, response)(student, TARGETS, teacher)
    expected = (tracking(student, TARGETS)[0]
                + feature(student["features"], teacher["features"])[0]
                + response(student["score_logits"], teacher["score_logits"])[0])
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert {"total", "tracking", "focal", "giou", "l1", "iou", "feature", "response",
            "feature/layer2", "feature/layer4"} <= set(terms)
    total.backward()
    assert student["features"][1].grad.abs().sum() > 0
    assert student["features"][0].grad is None          # block 1 is not distilled
    assert student["score_logits"].grad.abs().sum() > 0


def test_distillation_defaults_follow_the_recipe():
    loss = DistillationLoss()
    assert (loss.tracking.focal_weight, loss.tracking.giou_weight, loss.tracking.l1_weight) == \
        (1.0, 2.0, 5.0)
    assert loss.feature.weight == 0.035 and loss.feature.layers == [2, 4, 6, 8, 10, 12]
    assert loss.response.weight == 0.7 and loss.response.temperature == 2.0
    assert loss.uses_teacher


def test_fost_needs_no_teacher():
    student = _outputs(0)
    fost = DistillationLoss(feature=FeatureDistillLoss(weight=0.0),
                            response=ResponseDistillLoss(weight=0.0))
    assert not fost.uses_teacher
    # The default feature layers reach block 12 but the student has 4 blocks, and there is no
    # teacher: either would fail if anything teacher-dependent were computed.
    total, terms = fost(student, TARGETS, None)
    tracking_total, _ = TrackingLoss()(student, TARGETS)
    assert total.item() == pytest.approx(tracking_total.item())
    assert terms["feature"] == 0.0 and terms["response"] == 0.0


def test_one_term_off_does_not_read_its_inputs():
    student, teacher = _outputs(0), _outputs(1)
    del teacher["score_logits"]
    loss = DistillationLoss(feature=FeatureDistillLoss(layers=[1]),
                            response=ResponseDistillLoss(weight=0.0))
    _, terms = loss(student, TARGETS, teacher)
    assert terms["feature"] > 0 and terms["response"] == 0.0


def test_missing_teacher_with_distillation_on_is_an_error():
    with pytest.raises(ValueError, match="FOST"):
        DistillationLoss()(_outputs(0), TARGETS, None)
