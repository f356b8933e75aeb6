"""Generate heads: the folded upsample+conv inference path equals the plain concatenation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from knet.models.generate_heads import ASPPHead, ConvBNReLU, FCNHead, PSPHead, UPerHead


def _randomise_bn(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * float(b.abs().max()) + 1e-6)


@pytest.mark.parametrize(
    "size, low_sizes",
    [
        ((16, 24), [(8, 12), (4, 6), (2, 3), (1, 1)]),  # integer factors
        ((13, 19), [(7, 10), (4, 5), (1, 1), (3, 2)]),  # odd sizes, non-integer factors
        ((5, 3), [(6, 4)]),  # a part larger than the output (downsampling)
    ],
)
def test_forward_upsampled_concat_matches_plain(size, low_sizes):
    torch.manual_seed(0)
    parts = [torch.randn(2, 6, *size)] + [torch.randn(2, 3 + i, *s) for i, s in enumerate(low_sizes)]
    conv = ConvBNReLU(in_channels=sum(p.shape[1] for p in parts), out_channels=7, kernel_size=3).eval()
    _randomise_bn(conv)
    plain = conv(torch.cat([F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in parts], 1))
    with torch.no_grad():
        folded = conv.forward_upsampled_concat(parts, size)
    _close(folded, plain.detach())
    # without a full-resolution part, and with a non-contiguous part
    nc = parts[1].transpose(2, 3).contiguous().transpose(2, 3)
    plain2 = conv.__class__(in_channels=3 + 6, out_channels=7, kernel_size=3).eval()
    ref = plain2(torch.cat([F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in (nc, parts[0])], 1))
    with torch.no_grad():
        _close(plain2.forward_upsampled_concat([nc, parts[0]], size), ref.detach())


def test_heads_inference_equals_training_form():
    torch.manual_seed(0)
    feats = [torch.randn(1, 8, 21, 27), torch.randn(1, 16, 11, 14), torch.randn(1, 32, 6, 7), torch.randn(1, 64, 3, 4)]
    heads = [
        UPerHead(in_channels=[8, 16, 32, 64], channels=16),
        PSPHead(in_channels=64, channels=16),
        ASPPHead(in_channels=64, channels=16, dilations=(1, 2, 3, 4)),
        FCNHead(in_channels=64, channels=16),
    ]
    for head in heads:
        head.eval()
        _randomise_bn(head)
        plain = head(feats).detach()  # grad enabled: plain concatenation
        with torch.no_grad():
            fast = head(feats)
        assert fast.shape == plain.shape
        _close(fast, plain)
