"""Each K-Net loss against a direct float64 formula (spec 4.3 / 4.4)."""

import math

import pytest
import torch
import torch.nn.functional as F

from knet.models.criterion import DetCriterion, SemanticCriterion, dice_loss, rank_target, sigmoid_focal_loss


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_sigmoid_focal_direct():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    t = torch.zeros(4, 3, dtype=torch.float64)
    t[0, 1] = t[2, 0] = 1
    w = torch.rand(4, 3, generator=g, dtype=torch.float64)
    want = 0.0
    for i in range(4):
        for k in range(3):
            p = _sig(x[i, k].item())
            if t[i, k] == 1:
                v = -0.25 * (1 - p) ** 2 * math.log(p)
            else:
                v = -0.75 * p**2 * math.log(1 - p)
            want += v * w[i, k].item()
    assert sigmoid_focal_loss(x, t, weight=w).item() == pytest.approx(want, rel=1e-10)


def test_dice_direct():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    t = torch.rand(3, 5, 4, generator=g, dtype=torch.float64)
    got = dice_loss(x, t)
    for i in range(3):
        p = [_sig(v) for v in x[i].flatten().tolist()]
        q = t[i].flatten().tolist()
        a = sum(u * v for u, v in zip(p, q))
        want = 1 - 2 * a / (sum(u * u for u in p) + 1e-3 + sum(v * v for v in q) + 1e-3)
        assert got[i].item() == pytest.approx(want, rel=1e-10)


def test_rank_target_later_kernels_overwrite():
    masks = torch.zeros(2, 3, 3)
    masks[0, :2] = 1
    masks[1, 1:] = 0.3
    t = rank_target(masks, torch.tensor([5, 2]), (3, 3))
    # index order: kernel 2 is written first, kernel 5 overwrites it on row 1
    assert t[0].tolist() == [5, 5, 5] and t[1].tolist() == [5, 5, 5] and t[2].tolist() == [2, 2, 2]


def _perfect_outputs(gt_masks_s8, labels, num_classes, n_kernels, stuff=0, cls_logit=4.0):
    """Outputs at stride 8 whose kernel j (j < #gt) predicts gt j; stages carry class logits."""
    b = 1
    h, w = gt_masks_s8.shape[-2:]
    n_all = n_kernels + stuff
    masks = torch.full((b, n_all, h, w), -6.0, dtype=torch.float64)
    for j in range(len(gt_masks_s8)):
        masks[0, j] = gt_masks_s8[j] * 12 - 6
    cls = torch.full((b, n_all, num_classes), -cls_logit, dtype=torch.float64)
    for j, lab in enumerate(labels):
        cls[0, j, lab] = cls_logit
    seg = torch.full((b, num_classes, h, w), -3.0, dtype=torch.float64)
    stage0 = {"mask_logits": masks.clone(), "cls_logits": None, "seg_logits": seg}
    stage1 = {"mask_logits": masks.clone(), "cls_logits": cls}
    return [stage0, stage1]


def test_det_stage_losses_direct():
    h8, w8 = 4, 4
    gt8 = torch.zeros(2, h8, w8, dtype=torch.float64)
    gt8[0, :2, :2] = 1
    gt8[1, 2:, 1:] = 1
    labels = torch.tensor([1, 0])
    crit = DetCriterion(num_thing_classes=3, num_stuff_classes=0, num_kernels=4)
    outs = _perfect_outputs(gt8, labels.tolist(), 3, 4)
    full = gt8.repeat_interleave(8, -2).repeat_interleave(8, -1) > 0  # [2, 32, 32] at the input size
    losses = crit(outs, thing_masks=[full], thing_labels=[labels])
    # direct: targets = full masks bilinearly at stride 4 (exact for 8x8 blocks); preds = x2 upsampled logits
    tgt = F.interpolate(full[None].double(), size=(8, 8), mode="bilinear", align_corners=False)[0]
    pred = F.interpolate(outs[1]["mask_logits"], scale_factor=2.0, mode="bilinear", align_corners=False)[0, :2]
    bce = sum(
        -(t * math.log(_sig(x)) + (1 - t) * math.log(1 - _sig(x)))
        for x, t in zip(pred.flatten().tolist(), tgt.flatten().tolist())
    ) / pred.numel()
    assert losses["s1_mask"].item() == pytest.approx(bce, rel=1e-5)
    assert losses["s1_dice"].item() == pytest.approx(4.0 * dice_loss(pred, tgt).mean().item(), rel=1e-5)
    # cls: kernels 0, 1 positive (labels 1, 0), kernels 2, 3 negative; avg over 2 positives, weight 2
    p, q = _sig(4.0), _sig(-4.0)
    pos_term = -0.25 * (1 - p) ** 2 * math.log(p)
    neg_term = -0.75 * q**2 * math.log(1 - q)  # a negative class with logit -4
    per_kernel_pos = pos_term + 2 * neg_term
    per_kernel_neg = 3 * neg_term
    want = 2.0 * (2 * per_kernel_pos + 2 * per_kernel_neg) / 2
    assert losses["s1_cls"].item() == pytest.approx(want, rel=1e-5)
    # rpn dense focal: seg logits all -3, targets = matched gt pixels (class labels), avg over fg pixels
    seg_t = torch.full((8, 8), 3)
    seg_t[tgt[0] > 0] = 1
    seg_t[tgt[1] > 0] = 0
    n_fg = int((seg_t < 3).sum())
    r = _sig(-3.0)
    dense = sum((-0.25 * (1 - r) ** 2 * math.log(r) + 2 * -0.75 * r**2 * math.log(1 - r)) if v < 3 else 3 * -0.75 * r**2 * math.log(1 - r)
                for v in seg_t.flatten().tolist()) / n_fg  # fmt: skip
    assert losses["rpn_seg"].item() == pytest.approx(dense, rel=1e-5)
    assert "s1_rank" not in losses


def test_panoptic_rank_and_stuff():
    gt8 = torch.zeros(1, 4, 4, dtype=torch.float64)
    gt8[0, :2, :2] = 1
    full = gt8.repeat_interleave(8, -2).repeat_interleave(8, -1) > 0
    sem = torch.full((32, 32), 255)
    sem[full[0]] = 0
    sem[16:, :] = 3  # stuff class 3 = first stuff (num_things = 3)
    crit = DetCriterion(num_thing_classes=3, num_stuff_classes=2, num_kernels=3)
    outs = _perfect_outputs(gt8, [0], 5, 3, stuff=2)
    losses = crit(outs, thing_masks=[full], thing_labels=[torch.tensor([0])], sem_seg=sem[None])
    assert {"rpn_rank", "s1_rank", "s1_cls", "s1_mask", "s1_dice"} <= set(losses)
    # rank: CE over the 5 stage-1 kernels on pixels of the positive targets, / all pixels, x 0.1
    logits = F.interpolate(outs[1]["mask_logits"], scale_factor=2.0, mode="bilinear", align_corners=False)[0]
    t_thing = F.interpolate(full[None].double(), size=(8, 8), mode="bilinear", align_corners=False)[0, 0]
    t_stuff = F.interpolate((sem == 3)[None, None].double(), size=(8, 8), mode="bilinear", align_corners=False)[0, 0]
    target = torch.full((8, 8), -1)
    target[t_thing > 0] = 0
    target[t_stuff > 0] = 3 + 0  # stuff kernel index = num_kernels + 0
    total = 0.0
    for y in range(8):
        for x in range(8):
            if target[y, x] >= 0:
                col = logits[:, y, x]
                total += -(col[target[y, x]] - torch.logsumexp(col, 0)).item()
    assert losses["s1_rank"].item() == pytest.approx(0.1 * total / 64, rel=1e-5)


def test_semantic_ce_direct():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 3, 2, 2, generator=g, dtype=torch.float64)
    label = torch.tensor([[[0, 2, 255, 1], [1, 1, 0, 255], [2, 2, 2, 0], [0, 1, 255, 255]]])
    outs = [{"mask_logits": logits, "aux_logits": logits * 2}, {"mask_logits": logits * 0.5}]
    losses = SemanticCriterion()(outs, sem_seg=label)
    up = F.interpolate(logits, size=(4, 4), mode="bilinear", align_corners=False)[0]

    def ce(scale):
        s = 0.0
        for y in range(4):
            for x in range(4):
                if label[0, y, x] != 255:
                    col = up[:, y, x] * scale
                    s += -(col[label[0, y, x]] - torch.logsumexp(col, 0)).item()
        return s / 16  # averaged over all pixels (mmseg 0.x)

    assert losses["s0_ce"].item() == pytest.approx(ce(1.0), rel=1e-5)
    assert losses["s1_ce"].item() == pytest.approx(ce(0.5), rel=1e-5)
    assert losses["aux_ce"].item() == pytest.approx(0.4 * ce(2.0), rel=1e-5)
