"""ResNet-50/101 with Bottleneck blocks (He et al., 2016), in the layouts K-Net checkpoints use.

Two stems, one body:

* the torchvision / mmdet stem (`conv1` 7x7 stride 2 + `bn1`), used by instance and panoptic K-Net;
* the V1c deep stem (`stem.{0,1,3,4,6,7}`: three 3x3 convs with BN + ReLU, widths
  stem/2, stem/2, stem), used by the MMSegmentation semantic K-Net.

'pytorch' style: the stride sits in the 3x3 conv of a bottleneck. The dilated D8 variant uses
strides (1, 2, 1, 1) and dilations (1, 1, 2, 4); with `contract_dilation` the first block of a
dilated stage uses half the dilation (as MMSegmentation's ResLayer). Parameter names follow the
checkpoints: `layer{1..4}.{i}.conv{1,2,3}`, `bn{1,2,3}`, `downsample.{0,1}`.

The forward returns the four stage outputs C2..C5 (strides 4/8/16/32, or 4/8/8/8 for D8).

The convs are `OneDnnConv2d` (knet.models.onednn_conv: plain nn.Conv2d unless a model switches
on the oneDNN path of its 1x1 convs for single-thread inference, as the det models do).

`ResNet.folded_copy()` is the inference copy with every BatchNorm folded into the conv before
it (DetKNet's opt-in fused inference). With autograd off the stem's 3x3 / stride-2 max pool runs
as two separable passes of strided element-wise maxima (`max_pool3x3s2`): the same values (max is
exact) in ~1/4 of max_pool2d_with_indices' time.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from knet.errors import KnetError
from knet.models.onednn_conv import OneDnnConv2d

# Blocks per stage for the supported depths.
RESNET_STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
}

BOTTLENECK_EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride, dilation) -> 1x1 expand, plus the identity / projection shortcut."""

    def __init__(
        self,
        *,
        in_channels: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        out_channels = planes * BOTTLENECK_EXPANSION
        self.conv1 = OneDnnConv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = OneDnnConv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = OneDnnConv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + identity)
        # autograd off: the BatchNorms, the residual add and the ReLUs write into the conv outputs
        # (the same kernels and values, no new full-size tensor per step)
        identity = x if self.downsample is None else batch_norm_(self.downsample[1], self.downsample[0](x))
        out = self.relu(batch_norm_(self.bn1, self.conv1(x)))
        out = self.relu(batch_norm_(self.bn2, self.conv2(out)))
        out = batch_norm_(self.bn3, self.conv3(out))
        return self.relu(out.add_(identity))


def batch_norm_(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """bn(x), written into x when autograd is off and bn is an eval-mode BatchNorm2d with running
    statistics on a CPU float32 NCHW tensor: ATen's own kernel (native_batch_norm.out with
    out=x; the eval kernel is element-wise), so the same values without a new tensor and with
    half the memory traffic. Anything else (training, autograd, nn.Identity of the folded copy,
    other layouts or devices): bn(x)."""
    if (
        torch.is_grad_enabled()
        or not isinstance(bn, nn.BatchNorm2d)
        or bn.training
        or bn.running_mean is None
        or bn.running_var is None
        or x.device.type != "cpu"
        or x.dtype != torch.float32
        or not x.is_contiguous()
    ):
        return bn(x)
    stats = x.new_empty(0)  # eval mode: no batch statistics are saved
    torch.ops.aten.native_batch_norm.out(
        x, bn.weight, bn.bias, bn.running_mean, bn.running_var, False, 0.0, bn.eps, out=x, save_mean=stats, save_invstd=stats
    )
    return x


def _make_stage(
    *,
    in_channels: int,
    planes: int,
    num_blocks: int,
    stride: int,
    dilation: int,
    contract_dilation: bool,
) -> nn.Sequential:
    out_channels = planes * BOTTLENECK_EXPANSION
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            OneDnnConv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    first_dilation = dilation // 2 if (contract_dilation and dilation > 1) else dilation
    blocks = [
        Bottleneck(
            in_channels=in_channels,
            planes=planes,
            stride=stride,
            dilation=first_dilation,
            downsample=downsample,
        )
    ]
    for _ in range(1, num_blocks):
        blocks.append(Bottleneck(in_channels=out_channels, planes=planes, dilation=dilation))
    return nn.Sequential(*blocks)


class ResNet(nn.Module):
    """Bottleneck ResNet returning [C2, C3, C4, C5].

    Args (keyword-only):
        depth: 50 or 101.
        in_channels: image channels.
        stem_channels: stem output width (64 published; the V1c stem convs are stem/2, stem/2, stem).
        base_channels: planes of stage 1 (64 published); stage s has base * 2**s planes and
            4x that many output channels.
        deep_stem: True for the V1c stem (`stem.*` keys), False for `conv1` / `bn1`.
        strides, dilations: per stage; (1,2,1,1) / (1,1,2,4) is the D8 variant.
        contract_dilation: halve the dilation of the first block of a dilated stage.
        frozen_stages: -1 none; 0 freezes the stem; s >= 1 also freezes layer1..layer{s}.
        norm_eval: keep every BatchNorm in eval mode (running statistics) while training.
        with_dcn: deformable conv variants are not supported; True raises a KnetError.
    """

    def __init__(
        self,
        *,
        depth: int = 50,
        in_channels: int = 3,
        stem_channels: int = 64,
        base_channels: int = 64,
        deep_stem: bool = False,
        strides: Sequence[int] = (1, 2, 2, 2),
        dilations: Sequence[int] = (1, 1, 1, 1),
        contract_dilation: bool = False,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_dcn: bool = False,
    ) -> None:
        super().__init__()
        if depth not in RESNET_STAGE_BLOCKS:
            raise KnetError(f"ResNet depth {depth} is not supported (choose 50 or 101)")
        if with_dcn:
            raise KnetError("ResNet with deformable convolutions (DCN) is not supported yet")
        if len(strides) != 4 or len(dilations) != 4:
            raise KnetError("ResNet needs 4 strides and 4 dilations, one per stage")
        self.depth = depth
        self.deep_stem = deep_stem
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        if deep_stem:
            half = stem_channels // 2
            self.stem = nn.Sequential(
                OneDnnConv2d(in_channels, half, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
                OneDnnConv2d(half, half, 3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
                OneDnnConv2d(half, stem_channels, 3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(stem_channels),
                nn.ReLU(inplace=True),
            )
        else:
            self.conv1 = OneDnnConv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(stem_channels)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        channels = stem_channels
        self.out_channels: list[int] = []
        for s, num_blocks in enumerate(RESNET_STAGE_BLOCKS[depth]):
            planes = base_channels * 2**s
            stage = _make_stage(
                in_channels=channels,
                planes=planes,
                num_blocks=num_blocks,
                stride=strides[s],
                dilation=dilations[s],
                contract_dilation=contract_dilation,
            )
            self.add_module(f"layer{s + 1}", stage)
            channels = planes * BOTTLENECK_EXPANSION
            self.out_channels.append(channels)
        for m in self.modules():  # MMCV ResNet init: Kaiming normal convs (fan_out), BN 1 / 0
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self._freeze_stages()

    def _stem_modules(self) -> list[nn.Module]:
        return [self.stem] if self.deep_stem else [self.conv1, self.bn1]

    def _freeze_stages(self) -> None:
        frozen: list[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen += self._stem_modules()
        for s in range(1, self.frozen_stages + 1):
            frozen.append(getattr(self, f"layer{s}"))
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> "ResNet":
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # x: [B, 3, H, W]
        if self.deep_stem:
            x = self.stem(x)  # [B, stem, H/2, W/2]
        else:
            x = self.relu(batch_norm_(self.bn1, self.conv1(x)))
        if torch.is_grad_enabled() or not x.is_contiguous():
            x = self.maxpool(x)  # [B, stem, H/4, W/4]
        else:  # inference, NCHW: same values, no index bookkeeping
            x = max_pool3x3s2(x)
        outs = []
        for s in range(4):
            x = getattr(self, f"layer{s + 1}")(x)
            outs.append(x)
        return outs  # [C2, C3, C4, C5]

    def folded_copy(self) -> "ResNet":
        """Eval-mode copy with each BatchNorm folded into its conv (conv bias = BN shift).

        Same function up to float rounding (the folded weights round differently): ~1e-6
        relative on real widths, but NOT bit parity. The original is not modified.
        """
        net = copy.deepcopy(self).eval()
        pairs: list[tuple[nn.Module, str, str]] = []
        if net.deep_stem:
            pairs += [(net.stem, str(i), str(i + 1)) for i in (0, 3, 6)]
        else:
            pairs.append((net, "conv1", "bn1"))
        for s in range(4):
            for block in getattr(net, f"layer{s + 1}"):
                pairs += [(block, f"conv{i}", f"bn{i}") for i in (1, 2, 3)]
                if block.downsample is not None:
                    pairs.append((block.downsample, "0", "1"))
        for parent, conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
            setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))  # keeps the conv's class
            setattr(parent, bn_name, nn.Identity())
        return net


def max_pool3x3s2(x: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(x, 3, stride=2, padding=1) for [B, C, H, W] without indices: rows, then columns."""
    h, w = x.shape[-2:]
    oh, ow = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    p = nn.functional.pad(x, (1, 1, 1, 1), value=float("-inf"))  # [B, C, H+2, W+2]
    rows = torch.maximum(p[:, :, 0 : 2 * oh : 2], p[:, :, 1 : 2 * oh + 1 : 2])  # [B, C, oh, W+2]
    rows = torch.maximum(rows, p[:, :, 2 : 2 * oh + 2 : 2], out=rows)
    out = torch.maximum(rows[..., 0 : 2 * ow : 2], rows[..., 1 : 2 * ow + 1 : 2])  # [B, C, oh, ow]
    return torch.maximum(out, rows[..., 2 : 2 * ow + 2 : 2], out=out)


def resnet(
    *,
    depth: int = 50,
    base_channels: int = 64,
    frozen_stages: int = 1,
    norm_eval: bool = True,
) -> ResNet:
    """torchvision-style ResNet (7x7 stem) as the instance / panoptic K-Net uses it."""
    return ResNet(
        depth=depth,
        stem_channels=base_channels,
        base_channels=base_channels,
        deep_stem=False,
        frozen_stages=frozen_stages,
        norm_eval=norm_eval,
    )


def resnet_v1c(
    *,
    depth: int = 50,
    stem_channels: int = 64,
    base_channels: int = 64,
    dilated: bool = False,
    frozen_stages: int = -1,
    norm_eval: bool = False,
) -> ResNet:
    """ResNetV1c (deep stem); `dilated=True` is the D8 variant (strides 1,2,1,1, dilations 1,1,2,4)."""
    return ResNet(
        depth=depth,
        stem_channels=stem_channels,
        base_channels=base_channels,
        deep_stem=True,
        strides=(1, 2, 1, 1) if dilated else (1, 2, 2, 2),
        dilations=(1, 1, 2, 4) if dilated else (1, 1, 1, 1),
        contract_dilation=True,
        frozen_stages=frozen_stages,
        norm_eval=norm_eval,
    )
