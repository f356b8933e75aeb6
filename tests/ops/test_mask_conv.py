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


# ---- the CPU float32 GEMM (csrc/ops/mask_conv/cpu/mask_conv_gemm_avx512.cpp) and the at::bmm path ----
# Its micro-tile is 6 kernels x 32 pixels, its pixel blocks are up to 512 wide (K * block * 4 bytes
# <= 512 KB), threads take runs of 32-pixel units when a run has >= 4M multiply-adds: the shapes
# below leave a tail in every one of them.
# (B, C, N, H, W)
GEMM_SHAPES = [
    (1, 71, 1, 1, 1),  # one kernel, one pixel
    (2, 71, 0, 3, 517),  # no kernels
    (3, 71, 5, 3, 517),  # N < 6; 1551 pixels: three blocks, the last one partial, a 15-pixel tail
    (1, 1, 7, 1, 33),  # C = 1; N = 6 + 1; 33 = 32 + 1 pixels
    (2, 8, 13, 1, 16),  # 16 pixels: the second vector of the micro-tile fully masked
    (1, 256, 153, 5, 121),  # the panoptic head's N and C; 605 pixels: blocks of 512, two threads
    (3, 256, 13, 7, 150),  # two threads split 99 units at 50: mid-image, and across images
    (2, 512, 12, 7, 37),  # C = 512: blocks of 256 pixels
    (3, 4100, 3, 2, 20),  # C = 4100: one 32-pixel block per 20-pixel image
]


def _scaled_inputs(shape, seed=0, dtype=torch.float32):
    feats, kernels = _inputs(*shape, dtype=dtype, seed=seed)
    return feats, kernels / max(1, shape[1]) ** 0.5  # O(1) outputs: atol 1e-5 is meaningful in fp32


def _float64_reference(feats, kernels):
    return mask_conv_twin(feats.double(), kernels.double())


@pytest.fixture(params=["avx512", "blas"])
def cpu_gemm(request):
    """Both CPU float32 paths: knet's AVX-512 GEMM (only where compiled and supported) and at::bmm."""
    from knet.extension import ext, has_ext

    if not has_ext():
        pytest.skip("knet._C not built")
    prev = ext().mask_conv_set_avx512(request.param == "avx512")
    if ext().mask_conv_cpu_isa() != request.param:
        ext().mask_conv_set_avx512(prev)
        pytest.skip("no AVX-512 build or CPU")
    yield request.param
    ext().mask_conv_set_avx512(prev)


@pytest.fixture(params=[1, 2])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_fp32_cpu_paths_match_twin_and_float64(cpu_gemm, threads, shape):
    feats, kernels = _scaled_inputs(shape, seed=5)
    out = mask_conv(feats, kernels)
    assert out.shape == (shape[0], shape[2], shape[3], shape[4]) and out.dtype == torch.float32
    torch.testing.assert_close(out, mask_conv_twin(feats, kernels), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.double(), _float64_reference(feats, kernels), atol=1e-5, rtol=1e-5)


def _grads(fn, feats, kernels, weight):
    """(dL/dfeats, dL/dkernels) of L = sum(fn(feats, kernels) * weight), on fresh leaves."""
    f, k = feats.detach().clone().requires_grad_(True), kernels.detach().clone().requires_grad_(True)
    return torch.autograd.grad((fn(f, k) * weight).sum(), (f, k))


@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_fp32_cpu_paths_backward_match_twin_and_float64(cpu_gemm, threads, shape):
    feats, kernels = _scaled_inputs(shape, seed=6)
    weight = torch.randn(shape[0], shape[2], shape[3], shape[4], generator=torch.Generator().manual_seed(7))
    grads = _grads(mask_conv, feats, kernels, weight)
    twin = _grads(mask_conv_twin, feats, kernels, weight)
    ref = _grads(mask_conv_twin, feats.double(), kernels.double(), weight.double())
    # dX sums N products, dK sums H*W products (up to 1551): the tolerance grows with that
    for got, exp, exp64, terms in zip(grads, twin, ref, (shape[2], shape[3] * shape[4])):
        tol = 1e-5 * max(1.0, terms**0.5)
        torch.testing.assert_close(got, exp, atol=tol, rtol=1e-5)
        torch.testing.assert_close(got.double(), exp64, atol=tol, rtol=1e-5)


def test_fp32_cpu_paths_non_contiguous_inputs(cpu_gemm, threads):
    g = torch.Generator().manual_seed(8)
    # kernels: a transposed view [B, N, C] of [B, C, N]; feats: channels-last, and a strided slice
    kernels = (torch.randn(3, 71, 13, generator=g) / 71**0.5).transpose(1, 2)
    feats_cl = torch.randn(3, 71, 9, 37, generator=g).to(memory_format=torch.channels_last)
    feats_sliced = torch.randn(3, 80, 10, 80, generator=g)[:, 4:75, 1:, ::2]
    assert not kernels.is_contiguous() and not feats_cl.is_contiguous() and not feats_sliced.is_contiguous()
    for feats in (feats_cl, feats_sliced):
        out = mask_conv(feats, kernels)
        torch.testing.assert_close(out, mask_conv_twin(feats, kernels), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.double(), _float64_reference(feats, kernels), atol=1e-5, rtol=1e-5)
        weight = torch.ones(out.shape)
        ref = _grads(mask_conv_twin, feats.double(), kernels.double(), weight.double())
        for got, exp in zip(_grads(mask_conv, feats, kernels, weight), ref):
            torch.testing.assert_close(got.double(), exp, atol=1e-4, rtol=1e-5)


def test_fp32_cpu_paths_through_torch_compile_op(cpu_gemm):
    feats, kernels = _scaled_inputs((2, 71, 13, 3, 517), seed=9)
    torch.testing.assert_close(
        torch.ops.knet.mask_conv(feats, kernels), mask_conv_twin(feats, kernels), atol=1e-5, rtol=1e-5
    )


def test_cpu_isa_setter_round_trips():
    from knet.extension import ext, has_ext

    if not has_ext():
        pytest.skip("knet._C not built")
    before = ext().mask_conv_cpu_isa()
    assert before in ("avx512", "blas")
    prev = ext().mask_conv_set_avx512(False)
    try:
        assert ext().mask_conv_cpu_isa() == "blas"
    finally:
        ext().mask_conv_set_avx512(prev)
    assert ext().mask_conv_cpu_isa() == before


def test_no_avx512_environment_variable_selects_blas():
    import os
    import subprocess
    import sys

    from knet.extension import has_ext

    if not has_ext():
        pytest.skip("knet._C not built")
    code = (
        "import torch; from knet.extension import ext; from knet.ops import mask_conv, mask_conv_twin; "
        "f = torch.randn(2, 71, 3, 517); k = torch.randn(2, 13, 71) / 71 ** 0.5; "
        "torch.testing.assert_close(mask_conv(f, k), mask_conv_twin(f, k), atol=1e-5, rtol=1e-5); "
        "print(ext().mask_conv_cpu_isa())"
    )
    env = dict(os.environ, KNET_NO_AVX512="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "blas"
