"""Feature pyramid network (Lin et al., 2017) as the instance / panoptic K-Net uses it (spec 2.1).

Lateral 1x1 convs bring C2..C5 to one width, a top-down pathway adds the nearest-upsampled
coarser level, and a 3x3 conv smooths each sum: P2..P5 at strides 4/8/16/32. The number of
outputs equals the number of inputs in every release, so no extra levels are built.

`ConvBlock` (conv, optional GroupNorm, optional ReLU) is the small unit shared by the neck and
the kernel generator; its attribute names (`conv`, `gn`) follow the checkpoints. Its conv is a
`WinogradConv2d`: a plain nn.Conv2d unless the model switches the Winograd inference path on
(DetKNetConfig.winograd_convs; only the stride-1 3x3 convs ever take it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from knet.models.fast_conv import WinogradConv2d


class ConvBlock(nn.Module):
    """conv -> [GroupNorm] -> [ReLU]; the conv has a bias only when there is no norm."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        gn_groups: int | None = None,
        relu: bool = False,
    ) -> None:
        super().__init__()
        self.conv = WinogradConv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=gn_groups is None
        )
        self.gn = nn.GroupNorm(gn_groups, out_channels) if gn_groups is not None else None
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.gn is not None:
            x = self.gn(x)
        if self.relu:
            x = F.relu(x, inplace=True)
        return x


class FPN(nn.Module):
    """[C2..C5] -> [P2..P5], all with `out_channels` channels."""

    def __init__(self, *, in_channels: Sequence[int], out_channels: int = 256) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(
            ConvBlock(in_channels=c, out_channels=out_channels, kernel_size=1) for c in in_channels
        )
        self.fpn_convs = nn.ModuleList(
            ConvBlock(in_channels=out_channels, out_channels=out_channels, kernel_size=3) for _ in in_channels
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]  # [B, C, H_l, W_l]
        for i in range(len(laterals) - 1, 0, -1):  # top-down pathway
            up = F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest")
            # autograd off: added into the lateral conv's own output (same values, no new tensor)
            laterals[i - 1] = laterals[i - 1] + up if torch.is_grad_enabled() else laterals[i - 1].add_(up)
        return [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)]

    def init_weights(self) -> None:
        """mmdet FPN default: xavier_uniform convs, zero bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
