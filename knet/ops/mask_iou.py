"""Mask IoU between detections and ground truths, exactly as pycocotools' maskUtils.iou.

    mask_iou(dt_rles, gt_rles, iscrowd)        # lists of COCO RLE dicts -> np.float64 [M, N]
    mask_iou(dt_masks, gt_masks, iscrowd)      # [M, H, W] / [N, H, W] bool/uint8 (numpy or torch)
    mask_iou_packed(pack_masks(dt), pack_masks(gt), iscrowd)   # bit-packed int64 words

IoU = |d & g| / |d | g|; for a crowd ground truth the denominator is the detection's own area
(|d & g| / |d|); 0 when the intersection is empty. RLE rows whose size differs from the ground
truth's get -1, like pycocotools. Compiled paths: RLE run walk (CPU, threaded), popcount over
bit-packed masks (CPU; CUDA kernel in CUDA builds). `mask_iou_twin` is the PyTorch oracle.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from knet.errors import KnetError
from knet.extension import ext, use_compiled


def _crowd_tensor(iscrowd, n: int, device) -> torch.Tensor:
    if iscrowd is None:
        return torch.zeros(n, dtype=torch.uint8, device=device)
    c = torch.as_tensor(np.asarray(iscrowd, dtype=bool) if not torch.is_tensor(iscrowd) else iscrowd)
    if c.numel() != n:
        raise KnetError(f"iscrowd has {c.numel()} entries for {n} ground truths")
    return c.reshape(-1).to(device=device, dtype=torch.uint8)


def mask_iou_twin(dt: torch.Tensor, gt: torch.Tensor, iscrowd=None) -> torch.Tensor:
    """PyTorch oracle on dense masks [M, H, W], [N, H, W] -> float64 [M, N]."""
    d = dt.reshape(dt.shape[0], -1).to(torch.float64)  # [M, P]
    g = gt.reshape(gt.shape[0], -1).to(torch.float64)  # [N, P]
    d = (d != 0).to(torch.float64)
    g = (g != 0).to(torch.float64)
    inter = d @ g.T  # [M, N], exact integers in float64
    da = d.sum(1)[:, None]
    ga = g.sum(1)[None, :]
    crowd = _crowd_tensor(iscrowd, g.shape[0], dt.device).bool()[None, :]
    union = torch.where(crowd, da.expand_as(inter), da + ga - inter)
    return torch.where(inter == 0, torch.zeros_like(inter), inter / union)


def pack_masks(masks: torch.Tensor | np.ndarray) -> torch.Tensor:
    """[N, H, W] binary masks -> [N, ceil(H*W/64)] int64 words (bit b of word k = pixel 64k+b)."""
    m = torch.as_tensor(masks) if not torch.is_tensor(masks) else masks
    if m.dim() != 3:
        raise KnetError(f"pack_masks expects [N, H, W] masks, got shape {tuple(m.shape)}")
    if use_compiled(m):
        return ext().mask_pack(m)
    return _pack_twin(m)


def _pack_twin(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    flat = (m.reshape(n, -1) != 0).to(torch.int64)
    npix = flat.shape[1]
    nwords = (npix + 63) // 64
    flat = torch.nn.functional.pad(flat, (0, nwords * 64 - npix)).reshape(n, nwords, 64)
    weights = torch.ones(64, dtype=torch.int64, device=m.device) << torch.arange(64, device=m.device)
    return (flat * weights).sum(-1)  # distinct powers of two: wraps to the int64 bit pattern


def mask_iou_packed(dt_bits: torch.Tensor, gt_bits: torch.Tensor, iscrowd=None) -> torch.Tensor:
    """IoU [M, N] float64 of bit-packed masks (see pack_masks)."""
    crowd = _crowd_tensor(iscrowd, gt_bits.shape[0], gt_bits.device)
    if dt_bits.shape[1:] != gt_bits.shape[1:]:
        raise KnetError("packed detections and ground truths have different mask sizes")
    if use_compiled(dt_bits, gt_bits):
        return ext().mask_iou_packed(dt_bits, gt_bits, crowd)
    raise RuntimeError("mask_iou_packed needs knet._C; use mask_iou_twin on dense masks")


def _is_rle_list(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and (len(x) == 0 or isinstance(x[0], dict))


def mask_iou(dt: Sequence[dict] | np.ndarray | torch.Tensor, gt: Sequence[dict] | np.ndarray | torch.Tensor, iscrowd=None):
    """IoU matrix [M, N] (detections x ground truths), pycocotools semantics.

    RLE lists -> numpy float64. Dense numpy -> numpy float64. Dense torch -> torch float64 on
    the masks' device.
    """
    if _is_rle_list(dt) and _is_rle_list(gt):
        crowd = None if iscrowd is None else [bool(c) for c in iscrowd]
        if crowd is not None and len(crowd) != len(gt):
            raise KnetError(f"iscrowd has {len(crowd)} entries for {len(gt)} ground truths")
        try:
            return ext().mask_iou_rle(list(dt), list(gt), crowd)
        except ValueError as exc:
            raise KnetError(f"invalid RLE: {exc}") from None
    as_numpy = isinstance(dt, np.ndarray) or isinstance(gt, np.ndarray)
    d = torch.as_tensor(dt) if not torch.is_tensor(dt) else dt
    g = torch.as_tensor(gt) if not torch.is_tensor(gt) else gt
    if d.dim() != 3 or g.dim() != 3 or d.shape[1:] != g.shape[1:]:
        raise KnetError(f"mask_iou expects [M, H, W] and [N, H, W] masks of one size, got {tuple(d.shape)} and {tuple(g.shape)}")
    if use_compiled(d, g):
        out = ext().mask_iou_packed(ext().mask_pack(d), ext().mask_pack(g), _crowd_tensor(iscrowd, g.shape[0], g.device))
    else:
        out = mask_iou_twin(d, g, iscrowd)
    return out.cpu().numpy() if as_numpy else out
