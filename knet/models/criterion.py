"""Training losses of K-Net (spec 4.1, 4.3, 4.4).

    crit = DetCriterion(num_thing_classes=80, num_stuff_classes=53, num_kernels=100)
    losses = crit(model.forward_stages(images), thing_masks=[...], thing_labels=[...], sem_seg=sem)
    loss = sum(losses.values())

Det (instance / panoptic), with predictions and targets at stride 4 of the padded batch:
  initial kernels ("rpn"):  BCE 1.0 + dice 4.0 on matched thing masks, dense sigmoid focal 1.0 on
                            the conv_seg logits, rank CE 0.1 over the thing masks (panoptic)
  stage s = 1..S:           sigmoid focal cls 2.0 (avg over #positives), BCE 1.0, dice 4.0 on
                            positive kernels, rank CE 0.1 over all kernels (panoptic); stage s is
                            matched on stage s-1's predictions (no class cost for s = 1)
Semantic: CE (ignore 255) on the stage-0 and every stage's logits, + 0.4 CE on the auxiliary head.

Every normaliser is the count over the whole (possibly distributed) batch divided by the world
size (mmdet reduce_mean), so DDP with batch b per process equals one process with batch b * world.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from knet.models.matcher import MaskHungarianMatcher

IGNORE = 255


def global_count(count: torch.Tensor | float, device: torch.device) -> torch.Tensor:
    """mean over processes of a local count (identity without torch.distributed)."""
    count = torch.as_tensor(count, dtype=torch.float32, device=device).clone()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        if world > 1:
            torch.distributed.all_reduce(count)
            count = count / world
    return count


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, *, weight: torch.Tensor | None = None,
                       alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:  # fmt: skip
    """Elementwise focal loss (Lin et al. eq. 5) for one-hot float targets; returns the SUM."""
    p = logits.sigmoid()
    pt = (1 - p) * targets + p * (1 - targets)
    focal_weight = (alpha * targets + (1 - alpha) * (1 - targets)) * pt.pow(gamma)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * focal_weight
    if weight is not None:
        loss = loss * weight
    return loss.sum()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, *, eps: float = 1e-3) -> torch.Tensor:
    """Per-mask V-Net dice, 1 - 2 sum(pt) / (sum p^2 + eps + sum t^2 + eps): [P, ...] -> [P]."""
    p = logits.sigmoid().flatten(1)
    t = targets.flatten(1).to(p.dtype)
    a = (p * t).sum(1)
    b = (p * p).sum(1) + eps
    c = (t * t).sum(1) + eps
    return 1 - 2 * a / (b + c)


def rank_target(masks: torch.Tensor, kernel_idx: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """[H, W] long map: 255, then kernel j on the non-zero pixels of its target (later overwrite)."""
    target = torch.full(shape, IGNORE, dtype=torch.long, device=masks.device)
    order = torch.argsort(kernel_idx)
    for j in order.tolist():
        target[masks[j] > 0] = kernel_idx[j]
    return target


def upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class DetCriterion(nn.Module):
    def __init__(self, *, num_thing_classes: int, num_stuff_classes: int = 0, num_kernels: int = 100,
                 matcher: MaskHungarianMatcher | None = None, cls_weight: float = 2.0, mask_weight: float = 1.0,
                 dice_weight: float = 4.0, seg_weight: float = 1.0, rank_weight: float = 0.1,
                 mask_stride: int = 4) -> None:  # fmt: skip
        super().__init__()
        self.num_thing_classes, self.num_stuff_classes = num_thing_classes, num_stuff_classes
        self.num_classes = num_thing_classes + num_stuff_classes
        self.num_kernels = num_kernels
        self.panoptic = num_stuff_classes > 0
        self.matcher = matcher or MaskHungarianMatcher()
        self.cls_weight, self.mask_weight, self.dice_weight = cls_weight, mask_weight, dice_weight
        self.seg_weight, self.rank_weight = seg_weight, rank_weight
        self.mask_stride = mask_stride

    # ---- targets (spec 4.1) ----------------------------------------------------------------------
    def prepare_targets(self, thing_masks: list[torch.Tensor], thing_labels: list[torch.Tensor],
                        sem_seg: torch.Tensor | None, pad_shape: tuple[int, int]) -> list[dict]:  # fmt: skip
        """Per image: soft thing masks [n, h4, w4], labels [n], and (panoptic) stuff masks [S, h4, w4]
        with a presence flag [S]; all bilinearly resized to 1/4 of the padded size."""
        h4, w4 = pad_shape[0] // self.mask_stride, pad_shape[1] // self.mask_stride
        out = []
        for i, (m, lab) in enumerate(zip(thing_masks, thing_labels)):
            m = m.float()
            soft = F.interpolate(m[None], size=(h4, w4), mode="bilinear", align_corners=False)[0] if len(m) else m.new_zeros(0, h4, w4)
            t = {"masks": soft, "labels": lab.long()}
            if self.panoptic:
                assert sem_seg is not None, "panoptic training needs sem_seg"
                sem = sem_seg[i]
                cls = torch.arange(self.num_thing_classes, self.num_classes, device=sem.device)
                stuff = (sem[None] == cls[:, None, None]).float()  # [S, H, W]
                t["stuff_masks"] = F.interpolate(stuff[None], size=(h4, w4), mode="bilinear", align_corners=False)[0]
                t["stuff_present"] = stuff.flatten(1).any(1)
            out.append(t)
        return out

    # ---- initial kernels -------------------------------------------------------------------------
    def _rpn_losses(self, out0: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        thing_logits = upsample2(out0["mask_logits"][:, : self.num_kernels])  # [B, N, h4, w4]
        seg_logits = upsample2(out0["seg_logits"])  # [B, K, h4, w4]
        device = thing_logits.device
        b, n, h, w = thing_logits.shape
        pos_pred, pos_gt, seg_targets, ranks = [], [], [], []
        for i, t in enumerate(targets):
            pi, gi = self.matcher(thing_logits[i], t["masks"])
            pos_pred.append(thing_logits[i][pi])
            pos_gt.append(t["masks"][gi])
            seg_t = torch.full((h, w), self.num_classes, dtype=torch.long, device=device)
            if self.panoptic:
                for s in torch.nonzero(t["stuff_present"]).flatten().tolist():
                    seg_t[t["stuff_masks"][s] > 0] = self.num_thing_classes + s
            for k in range(len(gi)):
                seg_t[t["masks"][gi[k]] > 0] = t["labels"][gi[k]]
            seg_targets.append(seg_t)
            if self.panoptic:
                ranks.append(rank_target(t["masks"][gi], pi, (h, w)))
        losses = self._mask_losses(torch.cat(pos_pred), torch.cat(pos_gt), device, prefix="rpn")
        seg_t = torch.stack(seg_targets)  # [B, h, w]
        onehot = F.one_hot(seg_t, self.num_classes + 1)[..., : self.num_classes].float()  # bg -> zeros
        num_fg = global_count((seg_t < self.num_classes).sum(), device).clamp(min=1.0)
        losses["rpn_seg"] = self.seg_weight * sigmoid_focal_loss(seg_logits.permute(0, 2, 3, 1), onehot) / num_fg
        if self.panoptic and self.rank_weight:
            losses["rpn_rank"] = self.rank_weight * self._rank_loss(thing_logits, torch.stack(ranks))
        return losses

    # ---- one update stage ------------------------------------------------------------------------
    def _stage_losses(self, s: int, prev: dict, out: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        nk, t_cls = self.num_kernels, self.num_thing_classes
        prev_masks = upsample2(prev["mask_logits"][:, :nk]).detach()
        prev_cls = None if prev.get("cls_logits") is None else prev["cls_logits"][:, :nk, :t_cls].detach()
        mask_logits = upsample2(out["mask_logits"])  # [B, N(+S), h, w]
        cls_logits = out["cls_logits"]  # [B, N(+S), K]
        device = mask_logits.device
        b, n_all, h, w = mask_logits.shape
        labels = torch.zeros(b, n_all, self.num_classes, device=device)
        weights = torch.ones(b, n_all, self.num_classes, device=device)
        if self.panoptic:
            weights[:, :nk, t_cls:] = 0
            weights[:, nk:] = 0
            idx = torch.arange(self.num_stuff_classes, device=device)
            weights[:, nk + idx, t_cls + idx] = 1
        pos_pred, pos_gt, ranks = [], [], []
        num_pos = 0
        for i, t in enumerate(targets):
            pi, gi = self.matcher(
                prev_masks[i], t["masks"], cls_logits=None if prev_cls is None else prev_cls[i], gt_labels=t["labels"]
            )
            labels[i, pi, t["labels"][gi]] = 1.0
            kernel_idx, tgt = [pi], [t["masks"][gi]]
            if self.panoptic:
                present = torch.nonzero(t["stuff_present"]).flatten()
                labels[i, nk + present, t_cls + present] = 1.0
                kernel_idx.append(nk + present)
                tgt.append(t["stuff_masks"][present])
            kernel_idx, tgt = torch.cat(kernel_idx), torch.cat(tgt)
            num_pos += len(kernel_idx)
            pos_pred.append(mask_logits[i][kernel_idx])
            pos_gt.append(tgt)
            if self.panoptic:
                ranks.append(rank_target(tgt, kernel_idx, (h, w)))
        avg = global_count(float(num_pos), device).clamp(min=1.0)
        losses = {f"s{s}_cls": self.cls_weight * sigmoid_focal_loss(cls_logits.float(), labels, weight=weights) / avg}
        losses.update(self._mask_losses(torch.cat(pos_pred), torch.cat(pos_gt), device, prefix=f"s{s}"))
        if self.panoptic and self.rank_weight:
            losses[f"s{s}_rank"] = self.rank_weight * self._rank_loss(mask_logits, torch.stack(ranks))
        return losses

    def _mask_losses(self, pred: torch.Tensor, gt: torch.Tensor, device, *, prefix: str) -> dict[str, torch.Tensor]:
        """BCE averaged over all pixels of the positive masks, dice averaged over the masks."""
        pred = pred.float()
        n_pix = global_count(float(pred.numel()), device).clamp(min=1.0)
        n_mask = global_count(float(pred.shape[0]), device).clamp(min=1.0)
        if pred.shape[0] == 0:  # keep the graph connected (DDP needs every parameter used)
            zero = pred.sum() * 0.0
            return {f"{prefix}_mask": zero, f"{prefix}_dice": zero.clone()}
        bce = F.binary_cross_entropy_with_logits(pred, gt, reduction="sum") / n_pix
        dice = dice_loss(pred, gt).sum() / n_mask
        return {f"{prefix}_mask": self.mask_weight * bce, f"{prefix}_dice": self.dice_weight * dice}

    def _rank_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """CE over the kernel axis, ignore 255, averaged over ALL pixels (mmdet 2.17 behaviour)."""
        ce = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="sum")
        return ce / global_count(float(target.numel()), logits.device)

    def forward(self, outputs: list[dict], *, thing_masks: list[torch.Tensor], thing_labels: list[torch.Tensor],
                sem_seg: torch.Tensor | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
        h8, w8 = outputs[0]["mask_logits"].shape[-2:]
        pad_shape = (h8 * 8, w8 * 8)
        targets = self.prepare_targets(thing_masks, thing_labels, sem_seg, pad_shape)
        losses = self._rpn_losses(outputs[0], targets)
        for s in range(1, len(outputs)):
            losses.update(self._stage_losses(s, outputs[s - 1], outputs[s], targets))
        return losses


class SemanticCriterion(nn.Module):
    """CE on every stage's logits (weight 1) + auxiliary CE (0.4), ignore 255 (spec 4.4).

    Averaged over all label pixels, ignored ones included (mmseg 0.x `avg_non_ignore=False`)."""

    def __init__(self, *, ce_weight: float = 1.0, aux_weight: float = 0.4) -> None:
        super().__init__()
        self.ce_weight, self.aux_weight = ce_weight, aux_weight

    def _ce(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        logits = F.interpolate(logits.float(), size=label.shape[-2:], mode="bilinear", align_corners=False)
        ce = F.cross_entropy(logits, label, ignore_index=IGNORE, reduction="sum")
        return ce / global_count(float(label.numel()), logits.device)

    def forward(self, outputs: list[dict], *, sem_seg: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = {}
        for s, out in enumerate(outputs):
            losses[f"s{s}_ce"] = self.ce_weight * self._ce(out["mask_logits"], sem_seg)
            if out.get("aux_logits") is not None:
                losses["aux_ce"] = self.aux_weight * self._ce(out["aux_logits"], sem_seg)
        return losses
