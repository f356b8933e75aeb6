"""knet.ops.adaptive_gate: fused kernel against its PyTorch twin (forward and all 12 gradients)."""

from __future__ import annotations

import pytest
import torch

from knet.ops import adaptive_gate, adaptive_gate_twin

# (M, Cf): awkward sizes included (odd Cf, one row, no rows, Cf not a multiple of 16)
SHAPES = [(6, 16), (1, 71), (0, 32), (153, 256), (5, 7), (3, 1)]


def _inputs(m, cf, dtype=torch.float32, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    acts = [(torch.randn(m, cf, generator=g, dtype=torch.float64) * 2 + 0.5).to(device=device, dtype=dtype) for _ in range(4)]
    params = []
    for _ in range(4):
        params.append((1 + 0.5 * torch.randn(cf, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype))
        params.append((0.3 * torch.randn(cf, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype))
    return acts, params


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_twin_fp32(shape):
    acts, params = _inputs(*shape)
    out, stats, gates = torch.ops.knet.adaptive_gate(*acts, *params, 1e-5)
    assert out.shape == shape and stats.shape == (4, shape[0], 2) and gates.shape == (2, *shape)
    if shape[0]:  # the saved gates are sigmoid(LN(gate_in)), sigmoid(LN(gate_up))
        cf = (shape[1],)
        ref_k = torch.sigmoid(torch.nn.functional.layer_norm(acts[0], cf, params[0], params[1], 1e-5))
        ref_f = torch.sigmoid(torch.nn.functional.layer_norm(acts[1], cf, params[2], params[3], 1e-5))
        torch.testing.assert_close(gates[0], ref_k, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(gates[1], ref_f, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out, adaptive_gate_twin(*acts, *params), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_twin_fp64(shape):
    acts, params = _inputs(*shape, dtype=torch.float64)
    torch.testing.assert_close(adaptive_gate(*acts, *params), adaptive_gate_twin(*acts, *params), atol=1e-12, rtol=1e-12)


def test_eps_is_used():
    acts, params = _inputs(4, 8, dtype=torch.float64)
    acts = [a * 1e-3 for a in acts]  # variance ~ 4e-6: eps matters
    for eps in (1e-5, 1e-2):
        torch.testing.assert_close(
            adaptive_gate(*acts, *params, eps=eps), adaptive_gate_twin(*acts, *params, eps=eps), atol=1e-12, rtol=1e-12
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradcheck_fp64(seed):
    acts, params = _inputs(5, 7, dtype=torch.float64, seed=seed)
    tensors = [t.requires_grad_(True) for t in acts + params]
    assert torch.autograd.gradcheck(adaptive_gate, tuple(tensors))


# (1100, 64) is large enough to be split over threads (per-chunk parameter-gradient sums)
@pytest.mark.parametrize("shape", [(153, 256), (0, 8), (3, 71), (1100, 64)])
def test_backward_matches_twin(shape):
    acts, params = _inputs(*shape, dtype=torch.float64, seed=7)
    tensors = [t.requires_grad_(True) for t in acts + params]
    w = torch.randn(*shape, dtype=torch.float64)
    got = torch.autograd.grad((adaptive_gate(*tensors) * w).sum(), tensors)
    ref = torch.autograd.grad((adaptive_gate_twin(*tensors) * w).sum(), tensors)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_fp32_backward_matches_twin():
    acts, params = _inputs(153, 256, seed=8)
    tensors = [t.requires_grad_(True) for t in acts + params]
    got = torch.autograd.grad(adaptive_gate(*tensors).square().sum(), tensors)
    ref = torch.autograd.grad(adaptive_gate_twin(*tensors).square().sum(), tensors)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_non_contiguous_inputs():
    """Slices of the linear layers' outputs (strided rows) and transposed tensors."""
    g = torch.Generator().manual_seed(9)
    linear_out = torch.randn(12, 2 * 40, generator=g)
    acts = [linear_out[:, :40], linear_out[:, 40:], torch.randn(40, 12, generator=g).t(), torch.randn(12, 40, generator=g)[:, :]]
    params = [torch.randn(80, generator=g)[::2] for _ in range(8)]
    assert not acts[0].is_contiguous() and not acts[2].is_contiguous() and not params[0].is_contiguous()
    tensors = [t.clone().requires_grad_(True) if i == 2 else t for i, t in enumerate(acts + params)]
    torch.testing.assert_close(adaptive_gate(*tensors), adaptive_gate_twin(*tensors), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_error_at_most_twice_the_twin(dtype):
    acts, params = _inputs(16, 71, dtype=dtype)
    ref = adaptive_gate_twin(*[t.double() for t in acts + params])
    err_twin = (adaptive_gate_twin(*acts, *params).double() - ref).abs().max().item()
    out = adaptive_gate(*acts, *params)
    assert out.dtype == dtype
    err_ext = (out.double() - ref).abs().max().item()
    assert err_ext <= 2 * err_twin + 1e-6


def test_bad_shapes_raise():
    acts, params = _inputs(4, 8)
    with pytest.raises(ValueError, match="adaptive_gate"):
        adaptive_gate(acts[0], acts[1], acts[2], acts[3][:, :7], *params)
    with pytest.raises(ValueError, match="LayerNorm"):
        adaptive_gate(*acts, *params[:7], params[7][:5])


def test_opcheck():
    acts, params = _inputs(5, 7)
    tensors = [t.requires_grad_(True) for t in acts + params]
    torch.library.opcheck(torch.ops.knet.adaptive_gate.default, (*tensors, 1e-5))


def test_kernel_updator_uses_the_fused_op(monkeypatch):
    """The model's KernelUpdator (two-half chunking: C=2*Cf head) gives the twin path's result."""
    import knet.models.kernel_updator as mod

    torch.manual_seed(0)
    upd = mod.KernelUpdator(in_channels=32, feat_channels=32).double()
    for p in upd.parameters():
        torch.nn.init.normal_(p, std=0.3)
    feats = torch.randn(2, 5, 64, dtype=torch.float64)  # head C = 64 = 2 chunks of 32
    kernels = torch.randn(2, 5, 1, 64, dtype=torch.float64)
    out = upd(feats, kernels)
    monkeypatch.setattr(mod, "adaptive_gate", adaptive_gate_twin)
    ref = upd(feats, kernels)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("shape", SHAPES)
def test_cuda_matches_twin(shape):
    acts, params = _inputs(*shape, dtype=torch.float64, device="cuda")
    tensors = [t.requires_grad_(True) for t in acts + params]
    out = adaptive_gate(*tensors)
    torch.testing.assert_close(out, adaptive_gate_twin(*tensors), atol=1e-10, rtol=1e-10)
    got = torch.autograd.grad(out.square().sum(), tensors)
    ref = torch.autograd.grad(adaptive_gate_twin(*tensors).square().sum(), tensors)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_saturated_gates_fp32():
    """Gate pre-activations far outside [-88, 88] (the exp clamps) and around 0: forward and
    backward equal the twin (the CPU sigmoid uses a refined reciprocal estimate)."""
    acts, params = _inputs(33, 67, seed=11)
    params[0] = params[0] * 60  # input_norm_in weight: |LN(gate_in)| up to ~200
    params[2] = params[2] * 0.01  # norm_in weight: gates near 1/2
    tensors = [t.requires_grad_(True) for t in acts + params]
    out = adaptive_gate(*tensors)
    ref = adaptive_gate_twin(*tensors)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    w = torch.randn(33, 67)
    got = torch.autograd.grad((out * w).sum(), tensors)
    exp = torch.autograd.grad((ref * w).sum(), tensors)
    for a, b in zip(got, exp):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_counts_give_the_twin_result(threads):
    """153 rows are split over two threads (separate parameter-gradient partial sums)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        acts, params = _inputs(153, 256, dtype=torch.float64, seed=12)
        tensors = [t.requires_grad_(True) for t in acts + params]
        got = torch.autograd.grad(adaptive_gate(*tensors).square().sum(), tensors)
        ref = torch.autograd.grad(adaptive_gate_twin(*tensors).square().sum(), tensors)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_eager_path_records_a_cpp_autograd_node():
    from knet.extension import has_ext

    if not has_ext():
        pytest.skip("knet._C not built")
    acts, params = _inputs(4, 8)
    tensors = [t.requires_grad_(True) for t in acts + params]
    out = adaptive_gate(*tensors)
    assert "AdaptiveGateFunction" in out.grad_fn.name()
    with torch.no_grad():
        assert adaptive_gate(*tensors).grad_fn is None


@pytest.fixture(params=["avx512", "avx2"])
def cpu_isa(request):
    """Both CPU builds of the float32 kernels (AVX-512 only where compiled and supported)."""
    from knet.extension import ext, has_ext

    if not has_ext():
        pytest.skip("knet._C not built")
    if request.param == "avx512":
        prev = ext().gating_set_avx512(True)
        if ext().gating_cpu_isa() != "avx512":
            ext().gating_set_avx512(prev)
            pytest.skip("no AVX-512 build or CPU")
    else:
        prev = ext().gating_set_avx512(False)
    yield request.param
    ext().gating_set_avx512(prev)


@pytest.mark.parametrize("shape", [(153, 256), (600, 256), (7, 71), (1, 1), (3, 17), (0, 16)])
def test_fp32_each_cpu_build_matches_twin(cpu_isa, shape):
    acts, params = _inputs(*shape, seed=13)
    tensors = [t.requires_grad_(True) for t in acts + params]
    out = adaptive_gate(*tensors)
    ref = adaptive_gate_twin(*tensors)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    w = torch.randn(*shape)
    got = torch.autograd.grad((out * w).sum(), tensors)
    exp = torch.autograd.grad((ref * w).sum(), tensors)
    for a, b in zip(got, exp):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_no_avx512_environment_variable():
    import os
    import subprocess
    import sys

    from knet.extension import has_ext

    if not has_ext():
        pytest.skip("knet._C not built")
    code = "import torch; from knet.extension import ext; print(ext().gating_cpu_isa())"
    env = dict(os.environ, KNET_NO_AVX512="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "avx2/generic"
