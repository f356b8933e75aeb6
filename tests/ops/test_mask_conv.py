"""knet.ops.mask_conv: compiled kernel against its PyTorch twin (forward, gradients, layouts, dtypes)."""

from __future__ import annotations

import pytest
import torch

from knet.ops import mask_conv, mask_conv_twin

# (B, C, N, H, W): awkward sizes included (C=71, N=1, N=0, 1x1 and 3x517 maps)
SHAPES = [(2, 16, 5, 8, 9), (1, 71, 1, 1, 1), (2, 71, 0, 3, 517), (1, 3, 4, 3, 517), (3, 8, 2, 1, 1), (1, 0, 3, 2, 2)]


def _inputs(b, c, n, h, w, dtype=torch.float32, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, c, h, w, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    kernels = torch.randn(b, n, c, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    return feats, kernels


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_twin_fp32(shape):
    feats, kernels = _inputs(*shape)
    kernels = kernels / max(1, shape[1]) ** 0.5  # O(1) outputs: atol 1e-5 is meaningful in fp32
    out = torch.ops.knet.mask_conv(feats, kernels)
    assert out.shape == (shape[0], shape[2], shape[3], shape[4])
    torch.testing.assert_close(out, mask_conv_twin(feats, kernels), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_twin_fp64(shape):
    feats, kernels = _inputs(*shape, dtype=torch.float64)
    torch.testing.assert_close(mask_conv(feats, kernels), mask_conv_twin(feats, kernels), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradcheck_fp64(seed):
    feats, kernels = _inputs(2, 5, 3, 4, 3, dtype=torch.float64, seed=seed)
    feats.requires_grad_(True)
    kernels.requires_grad_(True)
    assert torch.autograd.gradcheck(mask_conv, (feats, kernels))


def test_backward_matches_twin_with_empty_n():
    for shape in [(2, 6, 0, 3, 5), (1, 71, 4, 3, 517)]:
        feats, kernels = _inputs(*shape, dtype=torch.float64)
        feats.requires_grad_(True)
        kernels.requires_grad_(True)
        grads = torch.autograd.grad(mask_conv(feats, kernels).square().sum(), (feats, kernels))
        ref = torch.autograd.grad(mask_conv_twin(feats, kernels).square().sum(), (feats, kernels))
        for a, b in zip(grads, ref):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_non_contiguous_inputs():
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(2, 9, 7, 13, generator=g).permute(0, 3, 1, 2)  # [2, 13, 9, 7], channels-last
    kernels = torch.randn(2, 13, 10, generator=g).transpose(1, 2)[:, ::2]  # [2, 5, 13], strided
    assert not feats.is_contiguous() and not kernels.is_contiguous()
    torch.testing.assert_close(mask_conv(feats, kernels), mask_conv_twin(feats, kernels), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_error_at_most_twice_the_twin(dtype):
    feats, kernels = _inputs(2, 71, 6, 5, 7, dtype=dtype)
    ref = mask_conv_twin(feats.double(), kernels.double())
    err_twin = (mask_conv_twin(feats, kernels).double() - ref).abs().max().item()
    out = mask_conv(feats, kernels)
    assert out.dtype == dtype
    err_ext = (out.double() - ref).abs().max().item()
    assert err_ext <= 2 * err_twin + 1e-6


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="mask_conv"):
        mask_conv(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 4))


def test_opcheck():
    feats, kernels = _inputs(2, 5, 3, 4, 3)
    feats.requires_grad_(True)
    kernels.requires_grad_(True)
    torch.library.opcheck(torch.ops.knet.mask_conv.default, (feats, kernels))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("shape", SHAPES)
def test_cuda_matches_twin(shape):
    feats, kernels = _inputs(*shape, dtype=torch.float64, device="cuda")
    feats.requires_grad_(True)
    kernels.requires_grad_(True)
    out = mask_conv(feats, kernels)
    torch.testing.assert_close(out, mask_conv_twin(feats, kernels), atol=1e-10, rtol=1e-10)
    grads = torch.autograd.grad(out.sum(), (feats, kernels))
    ref = torch.autograd.grad(mask_conv_twin(feats, kernels).sum(), (feats, kernels))
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
