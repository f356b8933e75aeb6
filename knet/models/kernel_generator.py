"""The kernel generator: initial kernels and masks for instance / panoptic K-Net (spec 2.3).

From the localisation FPN outputs:

    loc  = ConvGNReLU(loc_feats), sem = ConvGNReLU(sem_feats)
    M0   = K_init (*) loc                         100 learned thing kernels, 1x1 conv, no bias
    seg  = conv_seg(sem)                          dense per-class logits (with bias)
    x    = sem + loc                              the feature map every update stage uses
    K0   = K_init + sum_{h,w} [sigmoid(M0) > 0.5] x   (object feature, unnormalised sum)

Panoptic: the stuff part is appended: masks [M0 ; seg[:, things:]], kernels
[K0 ; conv_seg.weight[things:]] (the conv_seg bias is not carried; stuff kernels get no
object feature).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from knet.models.fpn import ConvBlock
from knet.models.kernel_update_head import prior_bias
from knet.models.localization_fpn import LocalizationFPN
from knet.models.onednn_conv import OneDnnConv2d
from knet.ops import assemble, mask_conv


@dataclass
class InitialKernels:
    feats: torch.Tensor  # x_feats [B, C, h, w]
    kernels: torch.Tensor  # K0 [B, N, C] (N = things (+ stuff))
    mask_logits: torch.Tensor  # M0 [B, N, h, w]
    seg_logits: torch.Tensor  # dense conv_seg output [B, K, h, w]


class KernelGenerator(nn.Module):
    """[P2..P5] -> InitialKernels (thing kernels with object features, plus stuff kernels)."""

    def __init__(
        self,
        *,
        localization_fpn: LocalizationFPN,
        channels: int = 256,
        num_kernels: int = 100,
        num_thing_classes: int = 80,
        num_stuff_classes: int = 0,
        gn_groups: int = 32,
    ) -> None:
        super().__init__()
        self.num_kernels = num_kernels
        self.num_thing_classes = num_thing_classes
        self.num_stuff_classes = num_stuff_classes
        self.localization_fpn = localization_fpn
        self.loc_convs = nn.ModuleList(
            [ConvBlock(in_channels=channels, out_channels=channels, kernel_size=1, gn_groups=gn_groups, relu=True)]
        )
        self.seg_convs = nn.ModuleList(
            [ConvBlock(in_channels=channels, out_channels=channels, kernel_size=1, gn_groups=gn_groups, relu=True)]
        )
        self.init_kernels = nn.Conv2d(channels, num_kernels, 1, bias=False)
        self.conv_seg = OneDnnConv2d(channels, num_thing_classes + num_stuff_classes, 1)
        self.init_weights()

    def init_weights(self) -> None:
        """Spec 2.8: init_kernels ~ N(0, 1); 1x1 convs and conv_seg ~ N(0, 0.01); conv_seg bias = prior(0.01)."""
        if self.init_kernels.weight.is_meta:
            return
        self.localization_fpn.init_weights()
        for conv in (*self.loc_convs, *self.seg_convs):
            nn.init.normal_(conv.conv.weight, 0.0, 0.01)
        nn.init.normal_(self.init_kernels.weight, 0.0, 1.0)
        nn.init.normal_(self.conv_seg.weight, 0.0, 0.01)
        nn.init.constant_(self.conv_seg.bias, prior_bias(0.01))

    def forward(self, pyramid: list[torch.Tensor]) -> InitialKernels:
        loc_feats, sem_feats = self.localization_fpn(pyramid)
        loc_feats = self.loc_convs[0](loc_feats)  # [B, C, h, w]
        sem_feats = self.seg_convs[0](sem_feats)
        b = loc_feats.shape[0]
        thing_kernels = self.init_kernels.weight.flatten(1).unsqueeze(0).expand(b, -1, -1)  # [B, N, C]
        mask_logits = mask_conv(loc_feats, thing_kernels)  # M0  [B, N, h, w]
        seg_logits = self.conv_seg(sem_feats)  # [B, K, h, w]
        x_feats = sem_feats + loc_feats

        # object feature: sum of x over the pixels of each hard initial mask
        kernels = thing_kernels + assemble(mask_logits, x_feats, "binary")  # K0  [B, N, C]
        if self.num_stuff_classes > 0:
            t = self.num_thing_classes
            mask_logits = torch.cat([mask_logits, seg_logits[:, t:]], dim=1)  # [B, N + S, h, w]
            stuff_kernels = self.conv_seg.weight[t:].flatten(1).unsqueeze(0).expand(b, -1, -1)
            kernels = torch.cat([kernels, stuff_kernels], dim=1)  # [B, N + S, C]
        return InitialKernels(feats=x_feats, kernels=kernels, mask_logits=mask_logits, seg_logits=seg_logits)
