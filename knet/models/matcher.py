"""Mask Hungarian matching of kernels to ground-truth masks (spec 4.2, official MaskHungarianAssigner).

    matcher = MaskHungarianMatcher()
    pred_idx, gt_idx = matcher(mask_logits, gt_masks, cls_logits=cls, gt_labels=labels)

Cost[n, m] = 2.0 * focal(cls_n, label_m) + 4.0 * dice(mask_n, gt_m) + 1.0 * pixel(mask_n, gt_m),
computed on detached predictions at the targets' resolution, minimised one-to-one with scipy's
`linear_sum_assignment` (every ground truth gets one kernel when N >= M; the rest are negatives).

    focal: p = sigmoid(logit at the gt class);
           alpha (1 - p)^gamma (-log(p + eps)) - (1 - alpha) p^gamma (-log(1 - p + eps))
    dice:  -2 sum(p t) / (sum p^2 + eps + sum t^2 + eps)            (the constant 1 is dropped)
    pixel: -(sum p t + sum (1 - p)(1 - t)) / (H W)                  (negative soft accuracy)

The focal term is skipped when there are no class logits (initial kernels, and the first update
stage, which is matched on the initial kernels' masks).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def focal_cost(cls_logits: torch.Tensor, gt_labels: torch.Tensor, *, alpha: float = 0.25, gamma: float = 2.0,
               eps: float = 1e-12) -> torch.Tensor:  # fmt: skip
    """[N, K] logits, [M] labels -> [N, M] (mmdet FocalLossCost)."""
    p = cls_logits.sigmoid()  # [N, K]
    neg = -(1 - p + eps).log() * (1 - alpha) * p.pow(gamma)
    pos = -(p + eps).log() * alpha * (1 - p).pow(gamma)
    return pos[:, gt_labels] - neg[:, gt_labels]


def dice_cost(mask_logits: torch.Tensor, gt_masks: torch.Tensor, *, eps: float = 1e-3) -> torch.Tensor:
    """[N, H, W] logits, [M, H, W] soft targets -> [N, M] (K-Net DiceCost, pred_act=True)."""
    p = mask_logits.sigmoid().flatten(1)  # [N, HW]
    t = gt_masks.flatten(1).to(p.dtype)  # [M, HW]
    numerator = 2 * p @ t.T  # [N, M]
    denominator = (p * p).sum(1)[:, None] + eps + (t * t).sum(1)[None, :] + eps
    return -numerator / denominator


def pixel_cost(mask_logits: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """[N, H, W] logits, [M, H, W] soft targets -> [N, M] (K-Net MaskCost, pred_act=True)."""
    p = mask_logits.sigmoid().flatten(1)  # [N, HW]
    t = gt_masks.flatten(1).to(p.dtype)  # [M, HW]
    hw = p.shape[1]
    return -(p @ t.T + (1 - p) @ (1 - t).T) / hw


class MaskHungarianMatcher:
    def __init__(self, *, cls_weight: float = 2.0, dice_weight: float = 4.0, mask_weight: float = 1.0,
                 alpha: float = 0.25, gamma: float = 2.0) -> None:  # fmt: skip
        self.cls_weight, self.dice_weight, self.mask_weight = cls_weight, dice_weight, mask_weight
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def cost(self, mask_logits: torch.Tensor, gt_masks: torch.Tensor, *, cls_logits: torch.Tensor | None = None,
             gt_labels: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """The [N, M] cost matrix (float32)."""
        mask_logits = mask_logits.detach().float()
        gt_masks = gt_masks.float()
        c = self.dice_weight * dice_cost(mask_logits, gt_masks) + self.mask_weight * pixel_cost(mask_logits, gt_masks)
        if cls_logits is not None and self.cls_weight != 0:
            if gt_labels is None:
                raise ValueError("gt_labels are needed with cls_logits")
            c = c + self.cls_weight * focal_cost(cls_logits.detach().float(), gt_labels, alpha=self.alpha, gamma=self.gamma)
        return c

    @torch.no_grad()
    def __call__(self, mask_logits: torch.Tensor, gt_masks: torch.Tensor, *, cls_logits: torch.Tensor | None = None,
                 gt_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Return (pred_idx [P], gt_idx [P]) int64 on the predictions' device, sorted by pred_idx."""
        device = mask_logits.device
        n, m = mask_logits.shape[0], gt_masks.shape[0]
        if n == 0 or m == 0:
            empty = torch.zeros(0, dtype=torch.int64, device=device)
            return empty, empty.clone()
        cost = self.cost(mask_logits, gt_masks, cls_logits=cls_logits, gt_labels=gt_labels).cpu().numpy()
        cost = np.nan_to_num(cost, nan=1e6, posinf=1e6, neginf=-1e6).astype(np.float64)
        rows, cols = linear_sum_assignment(cost)
        order = np.argsort(rows)
        return (
            torch.as_tensor(rows[order], dtype=torch.int64, device=device),
            torch.as_tensor(cols[order], dtype=torch.int64, device=device),
        )
