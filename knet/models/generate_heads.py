"""Kernel generate heads of semantic K-Net (spec 3.1): FCN, PSP, ASPP and UPerNet.

Each head maps backbone features to one feature map `feats` [B, C, h, w] (the last map before the
classifier); semantic K-Net then takes `conv_seg(feats)` as the stage-0 logits and `conv_seg.weight`
as the initial kernels (paper Sec. 3.3: "the kernels of a semantic segmentation head are
naturally the initial class kernels"). The classifier lives in `SemanticKernelGenerator`, which
wraps one of these heads.

Module structure and parameter names follow MMSegmentation (ConvModule = `conv` without bias +
`bn` + ReLU; PPM = `psp_modules.{k}.1`; every resize bilinear with align_corners=False), so the
released checkpoints load after removing their prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BatchNorm -> ReLU, with MMSegmentation's ConvModule key names."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        padding = 0 if kernel_size == 1 else (kernel_size // 2) * dilation
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)
        # MMCV ConvModule init: Kaiming normal (fan_out, ReLU); BN weight 1, bias 0 (defaults)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))

    def forward_upsampled_concat(
        self, parts: Sequence[torch.Tensor], size: Sequence[int]
    ) -> torch.Tensor:
        """Same as `self(cat([resize(p, size) for p in parts], 1))`, cheaper for low-res parts.

        The conv has no bias, so it is a sum over its k*k taps t = (ky, kx) of a channel mixing
        W_t applied to the input shifted by (dy, dx) = (ky - k//2, kx - k//2). Bilinear resizing
        is U p = A p B^T (A: [H, h], B: [W, w] interpolation matrices) and acts on space only, so
            conv(U p) = sum_t S_dy A (W_t p) B^T S_dx^T = A_cat [ (W_t p) B_cat^T ]_stacked
        where S_d shifts with zero fill (the conv's zero padding), A_d = S_d A and A_cat / B_cat
        put the k shifted matrices side by side. The k*k channel mixings run at p's own (low)
        resolution; the two resize+shift contractions are plain GEMMs. For UPerNet's fused map
        (three of four parts upsampled x2, x4, x8) this removes ~60% of the head's work.
        Used when no gradient is recorded (inference); training keeps the plain concatenation
        (less activation memory). Agrees with the plain form to float32 rounding.
        """
        size = tuple(size)
        k = self.conv.kernel_size[0]
        if torch.is_grad_enabled() or self.conv.dilation != (1, 1) or k % 2 == 0:
            return self(torch.cat([_resize(p, size) for p in parts], dim=1))
        h_out, w_out = size
        r = k // 2
        weight = self.conv.weight  # [O, sum(C_p), k, k]
        o = weight.shape[0]
        out = None
        offset = 0
        for part in parts:
            b, c, h, w = part.shape
            wp = weight[:, offset : offset + c]  # [O, C_p, k, k]
            offset += c
            if (h, w) == size:
                y = F.conv2d(part, wp, padding=r)
                out = y if out is None else out.add_(y)
                continue
            # W_t p for every tap in one 1x1 conv at low resolution: [B, ky, kx, O, h, w]
            taps = F.conv2d(part, wp.permute(2, 3, 0, 1).reshape(k * k * o, c, 1, 1))
            taps = taps.reshape(b, k, k, o, h, w)
            a_cat = _shifted_interp_matrices(h_out, h, k, part)  # [H, k*h]
            b_cat = _shifted_interp_matrices(w_out, w, k, part)  # [W, k*w]
            # columns: sum over kx of (W_t p) B_dx^T -> [B, O, ky, h, W]
            cols = taps.permute(0, 3, 1, 4, 2, 5).reshape(b, o, k, h, k * w) @ b_cat.T
            # rows: sum over ky of A_dy (.) -> [B, O, H, W]
            y = a_cat @ cols.reshape(b, o, k * h, w_out)
            out = y if out is None else out.add_(y)
        return self.activate(self.bn(out))


def _shifted_interp_matrices(out_size: int, in_size: int, k: int, like: torch.Tensor) -> torch.Tensor:
    """[out, k*in]: the k bilinear resize matrices (align_corners=False) with rows shifted by
    d = -k//2 .. k//2 (row y reads row y + d of the resized map; zero outside)."""
    scale = in_size / out_size
    dst = torch.arange(out_size, dtype=torch.float64)
    src = ((dst + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    l1 = src - i0
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    rows = torch.arange(out_size)
    m.index_put_((rows, i0), 1.0 - l1, accumulate=True)
    m.index_put_((rows, i1), l1, accumulate=True)
    r = k // 2
    shifted = torch.zeros(out_size, k, in_size, dtype=torch.float64)
    for j in range(k):
        d = j - r
        lo, hi = max(0, -d), out_size - max(0, d)
        shifted[lo:hi, j] = m[lo + d : hi + d]
    return shifted.reshape(out_size, k * in_size).to(device=like.device, dtype=like.dtype)


class FCNHead(nn.Module):
    """`num_convs` 3x3 convs on one backbone level; with `concat_input`, conv_cat([x, convs(x)]).

    Also the auxiliary head of every semantic K-Net (on C4, 1 conv, no concat).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        channels: int,
        num_convs: int = 2,
        concat_input: bool = True,
        in_index: int = 3,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        convs = [
            ConvBNReLU(
                in_channels=in_channels if i == 0 else channels,
                out_channels=channels,
                kernel_size=kernel_size,
            )
            for i in range(num_convs)
        ]
        self.convs = nn.Sequential(*convs) if convs else nn.Identity()
        self.concat_input = concat_input
        if concat_input:
            self.conv_cat = ConvBNReLU(
                in_channels=in_channels + channels, out_channels=channels, kernel_size=kernel_size
            )

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        x = inputs[self.in_index]  # [B, Cin, h, w]
        feats = self.convs(x)  # [B, C, h, w]
        if self.concat_input:
            feats = self.conv_cat(torch.cat([x, feats], dim=1))
        return feats


class PyramidPooling(nn.ModuleList):
    """PPM (Zhao et al., PSPNet): adaptive average pool to s x s, 1x1 conv, resize back, per scale.

    Branch k is `{k}.0` (pool, no parameters) and `{k}.1` (ConvBNReLU), as in the checkpoints.
    """

    def __init__(self, *, in_channels: int, channels: int, pool_scales: Sequence[int]) -> None:
        super().__init__(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(scale),
                ConvBNReLU(in_channels=in_channels, out_channels=channels, kernel_size=1),
            )
            for scale in pool_scales
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [_resize(branch(x), x.shape[2:]) for branch in self]


class PSPHead(nn.Module):
    """bottleneck(cat([x, PPM(x)])) on C5."""

    def __init__(
        self,
        *,
        in_channels: int,
        channels: int,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        in_index: int = 3,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.psp_modules = PyramidPooling(
            in_channels=in_channels, channels=channels, pool_scales=pool_scales
        )
        self.bottleneck = ConvBNReLU(
            in_channels=in_channels + len(pool_scales) * channels, out_channels=channels, kernel_size=3
        )

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        x = inputs[self.in_index]
        pooled = [branch(x) for branch in self.psp_modules]  # [B, C, s, s] each
        return self.bottleneck.forward_upsampled_concat([x, *pooled], x.shape[2:])


class ASPPHead(nn.Module):
    """DeepLabV3: image pooling + parallel atrous convs (1x1 for dilation 1), concat, bottleneck."""

    def __init__(
        self,
        *,
        in_channels: int,
        channels: int,
        dilations: Sequence[int] = (1, 12, 24, 36),
        in_index: int = 3,
    ) -> None:
        super().__init__()
        self.in_index = in_index
        self.channels = channels
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            ConvBNReLU(in_channels=in_channels, out_channels=channels, kernel_size=1),
        )
        self.aspp_modules = nn.ModuleList(
            ConvBNReLU(
                in_channels=in_channels,
                out_channels=channels,
                kernel_size=1 if d == 1 else 3,
                dilation=d,
            )
            for d in dilations
        )
        self.bottleneck = ConvBNReLU(
            in_channels=(len(dilations) + 1) * channels, out_channels=channels, kernel_size=3
        )

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        x = inputs[self.in_index]
        pooled = self.image_pool(x)  # [B, C, 1, 1], broadcast by a bilinear resize
        outs = [pooled] + [branch(x) for branch in self.aspp_modules]
        return self.bottleneck.forward_upsampled_concat(outs, x.shape[2:])


class UPerHead(nn.Module):
    """UPerNet (Xiao et al., 2018): PPM on C5 + top-down FPN, all levels fused at stride 4."""

    def __init__(
        self,
        *,
        in_channels: Sequence[int],
        channels: int,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
    ) -> None:
        super().__init__()
        self.channels = channels
        self.psp_modules = PyramidPooling(
            in_channels=in_channels[-1], channels=channels, pool_scales=pool_scales
        )
        self.bottleneck = ConvBNReLU(
            in_channels=in_channels[-1] + len(pool_scales) * channels,
            out_channels=channels,
            kernel_size=3,
        )
        self.lateral_convs = nn.ModuleList(
            ConvBNReLU(in_channels=c, out_channels=channels, kernel_size=1) for c in in_channels[:-1]
        )
        self.fpn_convs = nn.ModuleList(
            ConvBNReLU(in_channels=channels, out_channels=channels, kernel_size=3)
            for _ in in_channels[:-1]
        )
        self.fpn_bottleneck = ConvBNReLU(
            in_channels=len(in_channels) * channels, out_channels=channels, kernel_size=3
        )

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        top = inputs[-1]
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        pooled = [branch(top) for branch in self.psp_modules]  # pyramid pooling on C5
        laterals.append(self.bottleneck.forward_upsampled_concat([top, *pooled], top.shape[2:]))
        # top-down pathway
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(laterals[i]) for i, conv in enumerate(self.fpn_convs)]
        outs.append(laterals[-1])
        # fpn_bottleneck(cat([P2, up(P3), up(P4), up(P5)])), the upsampling folded into the conv
        return self.fpn_bottleneck.forward_upsampled_concat(outs, outs[0].shape[2:])  # [B, C, H/4, W/4]


def _init_classifier(conv: nn.Conv2d) -> None:
    """MMSegmentation decode heads: conv_seg ~ N(0, 0.01), bias 0."""
    nn.init.normal_(conv.weight, mean=0.0, std=0.01)
    nn.init.zeros_(conv.bias)


GenerateHead = FCNHead | PSPHead | ASPPHead | UPerHead


class SemanticKernelGenerator(nn.Module):
    """A generate head plus its classifier: feats, stage-0 logits and the initial class kernels.

    conv_seg is a 1x1 conv with bias; its weight [K, C, 1, 1] gives the K initial kernels. The
    0.1 Dropout2d before it only acts in training.
    """

    def __init__(
        self, *, head: GenerateHead, num_classes: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.head = head
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(head.channels, num_classes, 1)
        _init_classifier(self.conv_seg)

    def forward(
        self, inputs: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.head(inputs)  # [B, C, h, w]
        logits = self.conv_seg(self.dropout(feats))  # [B, K, h, w]
        b = feats.shape[0]
        kernels = self.conv_seg.weight.reshape(1, *self.conv_seg.weight.shape[:2]).expand(b, -1, -1)
        return feats, logits, kernels  # kernels [B, K, C]


class AuxiliaryFCNHead(nn.Module):
    """Training-only auxiliary FCN head on C4 (one 3x3 conv, dropout, 1x1 classifier)."""

    def __init__(
        self, *, in_channels: int, channels: int, num_classes: int, num_convs: int = 1, in_index: int = 2
    ) -> None:
        super().__init__()
        self.head = FCNHead(
            in_channels=in_channels,
            channels=channels,
            num_convs=num_convs,
            concat_input=False,
            in_index=in_index,
        )
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        _init_classifier(self.conv_seg)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.conv_seg(self.dropout(self.head(inputs)))  # [B, K, h, w]
