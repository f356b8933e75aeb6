"""OneDnnConv2d: on one thread its 1x1 convs take oneDNN exactly where PyTorch's own rule does on
two threads, with the same values up to float rounding; every other case is plain nn.Conv2d."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from knet.models import build_model
from knet.models.presets import knet_instance_tiny
from knet.models.fast_conv import WinogradConv2d
from knet.models.onednn_conv import ONEDNN_MIN_NUMEL, OneDnnConv2d, onednn_available, set_onednn_1x1

pytestmark = pytest.mark.skipif(not onednn_available(), reason="PyTorch built without oneDNN")


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _conv(cin: int, cout: int, k: int = 1, **kwargs) -> OneDnnConv2d:
    torch.manual_seed(0)
    conv = OneDnnConv2d(cin, cout, k, **kwargs).eval()
    set_onednn_1x1(conv, enabled=True)
    return conv


@pytest.mark.parametrize("shape, cout, bias", [((1, 64, 40, 60), 256, False), ((1, 256, 25, 38), 80, True), ((2, 8, 5, 7), 16, True)])
@torch.inference_mode()
def test_one_thread_takes_onednn_with_the_multithread_values(shape, cout, bias):
    conv = _conv(shape[1], cout, bias=bias)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with threads(1):
        assert conv.onednn_1x1_applies(x)
        out = conv(x)
        gemm = F.conv2d(x, conv.weight, conv.bias)  # PyTorch's single-thread choice
    # it is the oneDNN kernel, the one PyTorch calls for this conv with 2+ threads
    expected = torch.mkldnn_convolution(x, conv.weight, conv.bias, [0, 0], [1, 1], [1, 1], 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    with threads(2):
        assert not conv.onednn_1x1_applies(x)  # PyTorch takes oneDNN itself
        torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias), rtol=0, atol=0)
    ref = F.conv2d(x.double(), conv.weight.double(), None if conv.bias is None else conv.bias.double())
    bound = 1e-5 * ref.abs().max().item()
    assert (out.double() - ref).abs().max().item() <= bound
    assert (gemm.double() - ref).abs().max().item() <= bound


def test_conditions_keep_the_plain_conv():
    x = torch.randn(1, 64, 20, 20)  # 25600 elements > ONEDNN_MIN_NUMEL
    assert x.numel() > ONEDNN_MIN_NUMEL
    conv = _conv(64, 32)
    with threads(1):
        assert not conv.onednn_1x1_applies(x)  # autograd on
        xg = x.clone().requires_grad_(True)
        conv(xg).sum().backward()
        assert xg.grad is not None and conv.weight.grad is not None
        with torch.inference_mode():
            assert conv.onednn_1x1_applies(x)
            small = torch.randn(1, 64, 16, 20)  # 20480 elements: PyTorch keeps the GEMM at any thread count
            assert not conv.onednn_1x1_applies(small)
            assert not conv.onednn_1x1_applies(x.double())
            assert not conv.onednn_1x1_applies(x.contiguous(memory_format=torch.channels_last))
            conv.train()
            assert not conv.onednn_1x1_applies(x)
            conv.eval()
            set_onednn_1x1(conv, enabled=False)
            assert not conv.onednn_1x1_applies(x)
            assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias))
            for other in (_conv(64, 32, 3, padding=1), _conv(64, 32, stride=2), _conv(64, 32, dilation=2)):
                assert not other.onednn_1x1_applies(x)


def test_state_dict_is_that_of_conv2d_and_off_by_default():
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(8, 4, 1)
    conv = OneDnnConv2d(8, 4, 1)
    assert list(conv.state_dict()) == list(plain.state_dict()) and not conv.onednn_1x1
    conv.load_state_dict(plain.state_dict())
    x = torch.randn(1, 8, 60, 60)
    with threads(1), torch.inference_mode():
        assert torch.equal(conv.eval()(x), plain(x))


def test_det_models_switch_it_on():
    model = build_model(knet_instance_tiny())
    convs = [m for m in model.modules() if isinstance(m, OneDnnConv2d)]
    assert all(m.onednn_1x1 for m in convs)
    one_by_one = [m for m in convs if m.kernel_size == (1, 1)]
    # 16 blocks x (conv1, conv3) + 4 downsample convs; 4 FPN laterals; 5 in the kernel generator
    assert len(one_by_one) == 36 + 4 + 5
    assert any(isinstance(m, WinogradConv2d) and m.kernel_size == (1, 1) for m in one_by_one)
