"""knet.ops.assemble: compiled kernel against its PyTorch twin, all three gate modes."""

from __future__ import annotations

import pytest
import torch

from knet.ops import assemble, assemble_twin

MODES = ["binary", "softmax", "sigmoid"]
# (B, C, N, H, W): awkward sizes included (C=71, N=1, N=0, 1x1 and 3x517 maps, N not a multiple of 4)
SHAPES = [(2, 16, 5, 8, 9), (1, 71, 1, 1, 1), (2, 71, 0, 3, 517), (1, 130, 7, 3, 517), (3, 8, 2, 1, 1), (1, 0, 3, 2, 2)]


def _inputs(b, c, n, h, w, dtype=torch.float32, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    masks = torch.randn(b, n, h, w, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    feats = torch.randn(b, c, h, w, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    return masks, feats


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_twin_fp32(shape, mode):
    masks, feats = _inputs(*shape)
    feats = feats / max(1, shape[3] * shape[4]) ** 0.5  # O(1) sums: atol 1e-5 is meaningful in fp32
    out = torch.ops.knet.assemble(masks, feats, mode)
    assert out.shape == (shape[0], shape[2], shape[1])
    torch.testing.assert_close(out, assemble_twin(masks, feats, mode), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_twin_fp64(shape, mode):
    masks, feats = _inputs(*shape, dtype=torch.float64)
    torch.testing.assert_close(assemble(masks, feats, mode), assemble_twin(masks, feats, mode), atol=1e-11, rtol=1e-11)


def test_binary_gate_is_positive_logit():
    masks = torch.tensor([[[[0.0, -0.0, 1e-30, -1e-30, float("nan"), 3.0]]]])
    feats = torch.arange(1.0, 7.0).reshape(1, 1, 1, 6)
    assert assemble(masks, feats, "binary").item() == 3.0 + 6.0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradcheck_fp64(mode, seed):
    masks, feats = _inputs(2, 5, 6, 3, 4, dtype=torch.float64, seed=seed)
    feats.requires_grad_(True)
    masks.requires_grad_(mode != "binary")
    assert torch.autograd.gradcheck(lambda m, f: assemble(m, f, mode), (masks, feats))


@pytest.mark.parametrize("mode", MODES)
def test_backward_matches_twin(mode):
    for shape in [(2, 71, 9, 3, 517), (1, 6, 0, 2, 3), (2, 4, 1, 1, 1)]:
        masks, feats = _inputs(*shape, dtype=torch.float64, seed=5)
        masks.requires_grad_(True)
        feats.requires_grad_(True)
        w = torch.randn(shape[0], shape[2], shape[1], dtype=torch.float64)
        got = torch.autograd.grad((assemble(masks, feats, mode) * w).sum(), (masks, feats), allow_unused=True)
        ref = torch.autograd.grad((assemble_twin(masks, feats, mode) * w).sum(), (masks, feats), allow_unused=True)
        if mode == "binary":
            assert got[0] is None
        else:
            torch.testing.assert_close(got[0], ref[0], atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(got[1], ref[1], atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous_inputs(mode):
    g = torch.Generator().manual_seed(4)
    masks = torch.randn(2, 10, 9, 7, generator=g)[:, ::2]  # [2, 5, 9, 7], strided over N
    feats = torch.randn(2, 9, 7, 13, generator=g).permute(0, 3, 1, 2)  # [2, 13, 9, 7], channels-last
    assert not masks.is_contiguous() and not feats.is_contiguous()
    torch.testing.assert_close(assemble(masks, feats, mode), assemble_twin(masks, feats, mode), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_error_at_most_twice_the_twin(mode, dtype):
    masks, feats = _inputs(2, 71, 6, 5, 7, dtype=dtype)
    ref = assemble_twin(masks.double(), feats.double(), mode)
    err_twin = (assemble_twin(masks, feats, mode).double() - ref).abs().max().item()
    out = assemble(masks, feats, mode)
    assert out.dtype == dtype
    err_ext = (out.double() - ref).abs().max().item()
    assert err_ext <= 2 * err_twin + 1e-6


def test_bad_mode_and_shapes_raise():
    masks, feats = _inputs(1, 3, 2, 4, 4)
    with pytest.raises(ValueError, match="mode"):
        assemble(masks, feats, "hard")
    with pytest.raises(ValueError, match="assemble"):
        assemble(masks, feats[:, :, :3], "binary")


@pytest.mark.parametrize("mode", MODES)
def test_opcheck(mode):
    masks, feats = _inputs(2, 5, 3, 4, 3)
    masks.requires_grad_(mode != "binary")
    feats.requires_grad_(True)
    torch.library.opcheck(torch.ops.knet.assemble.default, (masks, feats, mode))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cuda_matches_twin(shape, mode):
    masks, feats = _inputs(*shape, dtype=torch.float64, device="cuda")
    masks.requires_grad_(mode != "binary")
    feats.requires_grad_(True)
    out = assemble(masks, feats, mode)
    torch.testing.assert_close(out, assemble_twin(masks, feats, mode), atol=1e-10, rtol=1e-10)
    inputs = (masks, feats) if mode != "binary" else (feats,)
    got = torch.autograd.grad(out.square().sum(), inputs)
    ref = torch.autograd.grad(assemble_twin(masks, feats, mode).square().sum(), inputs)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
