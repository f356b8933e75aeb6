"""WinogradConv2d: the NNPACK Winograd path equals the direct conv within a stated tolerance, and
every condition that keeps the plain nn.Conv2d path does keep it (bit-identical outputs)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from knet.models.fast_conv import WinogradConv2d, nnpack_available, set_winograd, winograd_conv3x3

pytestmark = pytest.mark.skipif(not nnpack_available(), reason="PyTorch built without NNPACK")

# Winograd F(6x6, 3x3) in float32 vs the float64 reference: measured <= ~2e-5 x max|out| at
# 256 channels; the direct conv stays below ~1e-6. Bound stated with ~5x headroom.
WINOGRAD_RTOL = 1e-4


def _conv(cin: int, cout: int, *, bias: bool = True, padding=1, stride: int = 1, dilation: int = 1) -> WinogradConv2d:
    torch.manual_seed(0)
    conv = WinogradConv2d(cin, cout, 3, padding=padding, stride=stride, dilation=dilation, bias=bias).eval()
    set_winograd(conv, enabled=True, min_channels=1, max_threads=1024)
    return conv


def _reference(conv: WinogradConv2d, x: torch.Tensor) -> torch.Tensor:
    b = None if conv.bias is None else conv.bias.double()
    return F.conv2d(x.double(), conv.weight.double(), b, padding=conv.padding)


@pytest.mark.parametrize(
    "shape, cout, padding, bias",
    [
        ((1, 3, 7, 5), 4, 1, True),  # tiny, odd sizes
        ((1, 64, 37, 53), 32, 1, False),
        ((3, 16, 19, 23), 8, 1, True),  # batch > 1 runs image by image
        ((1, 8, 11, 13), 8, 0, True),  # no padding
        ((2, 8, 11, 13), 8, (1, 0), True),  # padding only in H
        ((1, 256, 25, 38), 256, 1, True),  # a real width
    ],
)
@torch.inference_mode()
def test_winograd_close_to_float64(shape, cout, padding, bias):
    conv = _conv(shape[1], cout, bias=bias, padding=padding)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    assert conv.winograd_applies(x)
    out = conv(x)
    ref = _reference(conv, x)
    direct = F.conv2d(x, conv.weight, conv.bias, padding=conv.padding)
    assert out.shape == direct.shape and out.dtype == torch.float32 and out.is_contiguous()
    bound = WINOGRAD_RTOL * ref.abs().max().item()
    assert (out.double() - ref).abs().max().item() <= bound
    assert (direct.double() - ref).abs().max().item() <= bound
    # it really is the NNPACK path (same bits as the function), not the direct conv
    torch.testing.assert_close(out, winograd_conv3x3(x, conv.weight, conv.bias, padding=conv.padding), rtol=0, atol=0)


@torch.inference_mode()
def test_channels_last_input_gives_same_values():
    conv = _conv(16, 16)
    x = torch.randn(2, 16, 17, 21)
    out = conv(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, conv(x), rtol=0, atol=0)


def _plain_equal(conv: WinogradConv2d, x: torch.Tensor) -> bool:
    out = conv(x)
    direct = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return torch.equal(out, direct)


def test_conditions_keep_the_direct_conv():
    x = torch.randn(1, 8, 15, 17)
    conv = _conv(8, 8)
    with torch.inference_mode():
        assert conv.winograd_applies(x)
    # autograd on (training or not): plain conv, gradients flow
    assert not conv.winograd_applies(x)
    assert _plain_equal(conv, x)
    xg = x.clone().requires_grad_(True)
    conv(xg).sum().backward()
    assert xg.grad is not None and conv.weight.grad is not None
    with torch.inference_mode():
        conv.train()
        assert not conv.winograd_applies(x) and _plain_equal(conv, x)  # training mode
        conv.eval()
        assert not conv.winograd_applies(x.double())  # float64
        set_winograd(conv, enabled=False)
        assert not conv.winograd_applies(x) and _plain_equal(conv, x)  # switched off
        set_winograd(conv, enabled=True, min_channels=9, max_threads=1024)
        assert not conv.winograd_applies(x) and _plain_equal(conv, x)  # too narrow
        set_winograd(conv, enabled=True, min_channels=1, max_threads=torch.get_num_threads() - 1)
        assert not conv.winograd_applies(x)  # more threads than allowed
        for kwargs in (dict(stride=2), dict(dilation=2, padding=2), dict(padding=2)):
            other = _conv(8, 8, **kwargs)
            assert not other.winograd_applies(x) and _plain_equal(other, x), kwargs
        conv1x1 = WinogradConv2d(8, 8, 1).eval()
        set_winograd(conv1x1, enabled=True, min_channels=1, max_threads=1024)
        assert not conv1x1.winograd_applies(x)


def test_state_dict_is_that_of_conv2d():
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(8, 4, 3, padding=1)
    conv = WinogradConv2d(8, 4, 3, padding=1)
    assert list(conv.state_dict()) == list(plain.state_dict())
    conv.load_state_dict(plain.state_dict())
    x = torch.randn(1, 8, 9, 9)
    assert torch.equal(conv(x), plain(x))  # off by default: exactly nn.Conv2d
