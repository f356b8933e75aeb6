"""One kernel update stage of K-Net (paper Sec. 3.2, Fig. 2; spec 2.4 det, 3.2 semantic).

    x    = feat_transform(F)                         1x1 conv with bias, stage specific
    F_K  = sum_{h,w} gather(M)[n,h,w] * x[:,h,w]     group feature assembling, Eq. (3)
    K'   = KernelUpdator(F_K, K)                     adaptive kernel update, Eqs. (4)-(7)
    K'   = LN(K' + MHA(K'))                          kernel interaction (post-norm)
    K'   = LN(K' + FFN(K'))
    cls  = fc_cls(ReLU(LN(W_c K')))                  det only
    M'   = (fc_mask(ReLU(LN(W_m K')))) (*) x         dynamic 1x1 conv, Eq. (8)

`gather` is the hard binary mask sigmoid(M) > 0.5 for instance / panoptic and the softmax over
kernels for semantic segmentation. The carried kernel is K' (post-FFN), not the fc_mask output.

Inference fold (eval mode, `fold_feat_transform=True`): x = W F + b is used only linearly, so the
full-resolution 1x1 conv (C*C multiply-adds per pixel) is never computed:

    F_K = (sum_{h,w} gather(M) F) W^T + (sum_{h,w} gather(M)) b      assemble on the raw F
    M'  = (k W) (*) F + (k . b)                                       k = fc_mask output

The gate total sum_{h,w} gather(M) is the mask area (binary) or the summed softmax (semantic).
Equal to the unfolded path up to float rounding (tests/models/test_kernel_update_head_fold.py);
training always runs the unfolded path.

Parameter names follow the official checkpoints (`attention.attn`, `attention_norm`,
`kernel_update_conv`, `feat_transform.conv`, `ffn.layers.0.0`, `ffn.layers.1`, `ffn_norm`,
`cls_fcs.{0,1}`, `fc_cls`, `mask_fcs.{0,1}`, `fc_mask`), so converted state dicts load directly.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from knet.models.kernel_updator import KernelUpdator
from knet.ops import assemble, mask_conv


# pixels per softmax chunk when summing the semantic gate (150 kernels x 1024 px = 600 KB float32)
_GATE_CHUNK = 1024


class FeatTransform(nn.Module):
    """The stage's 1x1 conv on the shared feature map (with bias, no norm, no activation)."""

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class KernelAttention(nn.Module):
    """Self-attention among the kernels with its residual: K + MHA(K) (norm applied by the caller)."""

    def __init__(self, *, channels: int, num_heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(channels, num_heads, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, B, C] (sequence = kernels)
        out = self.attn(x, x, x, need_weights=False)[0]
        return x + out


class FFN(nn.Module):
    """Linear -> ReLU -> Linear with the identity residual (dropout is 0 in every release)."""

    def __init__(self, *, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(channels, hidden_channels), nn.ReLU(inplace=True)),
            nn.Linear(hidden_channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def _fc_ln_relu(channels: int, num_layers: int) -> nn.Sequential:
    """[Linear(no bias) -> LN -> ReLU] x num_layers, flattened (keys 0, 1, 2, 3, ...)."""
    layers: list[nn.Module] = []
    for _ in range(num_layers):
        layers += [nn.Linear(channels, channels, bias=False), nn.LayerNorm(channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def prior_bias(prob: float) -> float:
    """Bias so that sigmoid(bias) = prob (focal-loss prior initialisation)."""
    return float(-math.log((1 - prob) / prob))


class KernelUpdateHead(nn.Module):
    """One stage: (feats, kernels, masks) -> (class logits or None, new masks, new kernels)."""

    def __init__(
        self,
        *,
        channels: int = 256,
        num_classes: int | None = 80,
        num_heads: int = 8,
        feedforward_channels: int = 2048,
        updator_channels: int = 256,
        num_cls_fcs: int = 1,
        num_mask_fcs: int = 1,
        gather: Literal["binary", "softmax"] = "binary",
        conv_kernel_size: int = 1,
        fold_feat_transform: bool = True,
    ) -> None:
        super().__init__()
        if conv_kernel_size != 1:
            raise ValueError(f"only conv_kernel_size=1 is supported (every released K-Net), got {conv_kernel_size}")
        if channels % updator_channels != 0:
            raise ValueError(f"channels ({channels}) must be a multiple of updator_channels ({updator_channels})")
        if gather not in ("binary", "softmax"):
            raise ValueError(f"gather must be 'binary' or 'softmax', got {gather!r}")
        self.channels = channels
        self.num_classes = num_classes
        self.gather = gather
        # eval mode only: fold feat_transform into the assembled features and the mask kernels
        self.fold_feat_transform = fold_feat_transform

        self.feat_transform = FeatTransform(channels=channels)
        self.kernel_update_conv = KernelUpdator(
            in_channels=updator_channels, feat_channels=updator_channels, out_channels=updator_channels
        )
        self.attention = KernelAttention(channels=channels, num_heads=num_heads)
        self.attention_norm = nn.LayerNorm(channels)
        self.ffn = FFN(channels=channels, hidden_channels=feedforward_channels)
        self.ffn_norm = nn.LayerNorm(channels)
        if num_classes is not None:
            self.cls_fcs = _fc_ln_relu(channels, num_cls_fcs)
            self.fc_cls = nn.Linear(channels, num_classes)
        self.mask_fcs = _fc_ln_relu(channels, num_mask_fcs)
        self.fc_mask = nn.Linear(channels, channels)
        self.init_weights()

    def init_weights(self) -> None:
        """Spec 2.8: xavier_uniform on every parameter with dim > 1, fc_cls bias = prior(0.01)."""
        for p in self.parameters():
            if p.dim() > 1 and not p.is_meta:
                nn.init.xavier_uniform_(p)
        if self.num_classes is not None and not self.fc_cls.bias.is_meta:
            nn.init.constant_(self.fc_cls.bias, prior_bias(0.01))

    def forward(
        self, feats: torch.Tensor, kernels: torch.Tensor, mask_logits: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """feats [B,C,H,W], kernels [B,N,C], mask_logits [B,N,h,w] (previous stage).

        Returns cls_logits [B,N,K] (None for the semantic variant), mask_logits [B,N,H,W] and
        the carried kernels [B,N,C].
        """
        b, n = kernels.shape[:2]
        fold = self.fold_feat_transform and not self.training
        x = feats if fold else self.feat_transform(feats)  # [B, C, H, W] raw (fold) or transformed
        h, w = x.shape[-2:]
        if mask_logits.shape[-2:] != (h, w):
            mask_logits = F.interpolate(mask_logits, (h, w), mode="bilinear", align_corners=False)

        # Eq. (3): F_K = sum over pixels of gather(M) * x (unnormalised)
        f_k = assemble(mask_logits, x, self.gather)  # [B, N, C]
        if fold:
            f_k = self._fold_assembled(f_k, mask_logits)

        k = self.kernel_update_conv(f_k, kernels.reshape(b, n, 1, self.channels))  # [B*N*chunks, 1, Cu]
        k = k.reshape(b, n, self.channels).permute(1, 0, 2)  # [N, B, C]
        k = self.attention_norm(self.attention(k))  # kernel interaction
        k = k.permute(1, 0, 2)  # [B, N, C]
        k = self.ffn_norm(self.ffn(k))  # K' carried to the next stage

        cls_logits = self.fc_cls(self.cls_fcs(k)) if self.num_classes is not None else None  # [B, N, K]
        mask_kernels = self.fc_mask(self.mask_fcs(k))  # [B, N, C]
        if fold:
            new_masks = self._folded_mask_conv(feats, mask_kernels)  # [B, N, H, W]
        else:
            new_masks = mask_conv(x, mask_kernels)  # Eq. (8)  [B, N, H, W]
        return cls_logits, new_masks, k

    def _transform_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        conv = self.feat_transform.conv
        return conv.weight.view(self.channels, self.channels), conv.bias  # W [C_out, C_in], b [C_out]

    def _gate_total(self, mask_logits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """sum_{h,w} gather(M)[b, n, h, w] -> [B, N]: the mask area, or the summed softmax."""
        if self.gather == "binary":
            # sigmoid(M) > 0.5 <=> M > 0, the same test as assemble; counted exactly in int64
            return (mask_logits > 0).sum((2, 3)).to(dtype)
        # softmax over the kernels in pixel chunks that stay in cache: no float [B, N, H, W] tensor
        flat = mask_logits.flatten(2)  # [B, N, H*W]
        total = flat.new_zeros(flat.shape[:2])  # [B, N]
        for chunk in flat.split(_GATE_CHUNK, dim=-1):
            total += chunk.softmax(dim=1).sum(-1)
        return total

    def _fold_assembled(self, f_raw: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        """sum G (W F + b) = (sum G F) W^T + (sum G) b: [B, N, C] on raw feats -> transformed."""
        weight, bias = self._transform_params()
        total = self._gate_total(mask_logits, f_raw.dtype)  # [B, N]
        return f_raw @ weight.t() + total.unsqueeze(-1) * bias  # [B, N, C]

    def _folded_mask_conv(self, feats: torch.Tensor, mask_kernels: torch.Tensor) -> torch.Tensor:
        """k (*) (W F + b) = (k W) (*) F + k . b, per kernel; feats [B,C,H,W] raw -> [B,N,H,W]."""
        weight, bias = self._transform_params()
        masks = mask_conv(feats, mask_kernels @ weight)  # [B, N, H, W]
        offset = (mask_kernels @ bias)[:, :, None, None]  # [B, N, 1, 1]
        if torch.is_grad_enabled():
            return masks + offset
        return masks.add_(offset)
