"""The semantic-FPN localisation module of the kernel generator (spec 2.2).

Every FPN level is brought to one resolution (stride 8 in every release: P2 by a stride-2 conv,
P3 as is, P4 and P5 by conv + x2 bilinear upsampling steps), the four maps are summed, and two
parallel 1x1 conv-GN-ReLU heads give the localisation features (for the thing kernels) and the
semantic features (for the dense classifier and the stuff kernels). The coarsest level first gets
a sine positional encoding added (DETR style), which lets the kernels tell positions apart.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from knet.models.fpn import ConvBlock


def sine_positional_encoding(
    batch: int,
    height: int,
    width: int,
    *,
    num_feats: int,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
    eps: float = 1e-6,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """DETR sine encoding of an unpadded map: [B, 2*num_feats, H, W] = [pos_y ; pos_x].

    Each half interleaves sin (even dims) and cos (odd dims) of (normalised position * 2 pi) /
    temperature^(2 floor(d/2) / num_feats); positions are 1-based cumulative counts over an
    all-valid mask, normalised by the last one (+ eps).
    """
    y_embed = torch.arange(1, height + 1, dtype=torch.float32, device=device).view(1, height, 1).expand(batch, height, width)
    x_embed = torch.arange(1, width + 1, dtype=torch.float32, device=device).view(1, 1, width).expand(batch, height, width)
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos_x = x_embed[..., None] / dim_t  # [B, H, W, F]
    pos_y = y_embed[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)  # [B, 2F, H, W]


class LocalizationFPN(nn.Module):
    """[P2..P5] -> (loc_feats, sem_feats), both [B, out_channels, H/8, W/8]."""

    def __init__(
        self,
        *,
        in_channels: int = 256,
        feat_channels: int = 256,
        out_channels: int = 256,
        num_levels: int = 4,
        upsample_times: int = 2,
        gn_groups: int = 32,
        pe_num_feats: int = 128,
    ) -> None:
        super().__init__()
        end = num_levels - 1
        if upsample_times not in (end - 1, end):
            raise ValueError(f"upsample_times must be {end - 1} or {end} for {num_levels} levels, got {upsample_times}")
        if 2 * pe_num_feats != in_channels:
            raise ValueError(f"2 * pe_num_feats ({2 * pe_num_feats}) must equal in_channels ({in_channels})")
        self.pe_num_feats = pe_num_feats

        def block(cin: int, stride: int = 1, k: int = 3) -> ConvBlock:
            return ConvBlock(in_channels=cin, out_channels=feat_channels, kernel_size=k, stride=stride, gn_groups=gn_groups, relu=True)

        levels = []
        # level 0 (stride 4): one conv, stride 2 when the common resolution is stride 8
        levels.append(nn.Sequential(OrderedDict(conv0=block(in_channels, stride=2 if upsample_times == end - 1 else 1))))
        for i in range(1, num_levels):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            for j in range(i):
                layers[f"conv{j}"] = block(in_channels if j == 0 else feat_channels)
                if j < upsample_times - (end - i):
                    layers[f"upsample{j}"] = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            levels.append(nn.Sequential(layers))
        self.convs_all_levels = nn.ModuleList(levels)
        self.conv_pred = ConvBlock(in_channels=feat_channels, out_channels=out_channels, kernel_size=1, gn_groups=gn_groups, relu=True)
        self.aux_convs = nn.ModuleList(
            [ConvBlock(in_channels=feat_channels, out_channels=out_channels, kernel_size=1, gn_groups=gn_groups, relu=True)]
        )

    def init_weights(self) -> None:
        """Spec 2.8: convs ~ N(0, 0.01); GroupNorms keep their defaults."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                nn.init.normal_(m.weight, 0.0, 0.01)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        total = None
        last = len(self.convs_all_levels) - 1
        for i, convs in enumerate(self.convs_all_levels):
            x = feats[i]
            if i == last:  # coarsest level: add the positional encoding
                b, _, h, w = x.shape
                x = x + sine_positional_encoding(b, h, w, num_feats=self.pe_num_feats, device=x.device).to(x.dtype)
            y = convs(x)
            total = y if total is None else total + y  # sum of the levels
        loc_feats = self.conv_pred(total)  # [B, C, H/8, W/8]
        sem_feats = self.aux_convs[0](total)
        return loc_feats, sem_feats
