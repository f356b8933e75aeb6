"""knet._C: the compiled extension loads, registers the ops, and the twin fallback works."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from knet import extension


def test_extension_is_built_and_registers_the_ops():
    assert extension.has_ext(), extension.load_error()
    info = extension.build_info()
    assert info["loaded"] and info["load_error"] is None
    for name in ("bind_assemble", "bind_gating", "bind_mask_conv"):
        assert name in info["bindings"]
    C = extension.ext()
    for fn in ("mask_conv_forward", "mask_conv_backward", "assemble_forward", "assemble_grad_feats",
               "assemble_grad_masks", "adaptive_gate_forward", "adaptive_gate_backward"):
        assert callable(getattr(C, fn))
    assert isinstance(C.with_cuda, bool)
    assert isinstance(C.cuda_archs, str)
    if C.with_cuda:
        assert "8.0" in C.cuda_archs or C.cuda_archs


def test_custom_ops_are_registered():
    import knet.ops  # noqa: F401  (registers knet::*)

    for name in ("mask_conv", "mask_conv_backward", "assemble", "assemble_grad_feats", "assemble_grad_masks",
                 "adaptive_gate", "adaptive_gate_backward"):
        assert hasattr(torch.ops.knet, name)


def test_torch_compile_fullgraph_smoke():
    """The three ops trace into one graph (fake tensors + registered autograd), forward and backward."""
    from knet.ops import adaptive_gate, assemble, mask_conv

    def step(feats, kernels, params):
        masks = mask_conv(feats, kernels)  # [B, N, H, W]
        grouped = assemble(masks, feats, "softmax") + assemble(masks, feats, "binary")  # [B, N, C]
        rows = grouped.reshape(-1, grouped.shape[-1])
        k = kernels.reshape(-1, kernels.shape[-1])
        return adaptive_gate(rows, k, rows * 0.5, k * 2.0, *params)

    torch.manual_seed(0)
    feats = torch.randn(2, 8, 5, 6, requires_grad=True)
    kernels = torch.randn(2, 3, 8, requires_grad=True)
    params = [torch.randn(8, requires_grad=True) for _ in range(8)]
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    out = compiled(feats, kernels, params)
    ref = step(feats, kernels, params)
    torch.testing.assert_close(out, ref)
    g = torch.autograd.grad(out.sum(), [feats, kernels])
    g_ref = torch.autograd.grad(ref.sum(), [feats, kernels])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


_FALLBACK_SCRIPT = r"""
import json, warnings
import torch
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from knet import extension
    from knet.ops import (adaptive_gate, adaptive_gate_twin, assemble, assemble_twin, mask_conv,
                          mask_conv_twin)
    torch.manual_seed(0)
    f = torch.randn(2, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    m = mask_conv(f, k)
    ok = [torch.equal(m, mask_conv_twin(f, k))]
    for mode in ("binary", "softmax", "sigmoid"):
        ok.append(torch.equal(assemble(m, f, mode), assemble_twin(m, f, mode)))
    acts = [torch.randn(4, 6) for _ in range(4)]
    params = [torch.randn(6) for _ in range(8)]
    ok.append(torch.equal(adaptive_gate(*acts, *params), adaptive_gate_twin(*acts, *params)))
    m.sum().backward()
    ok.append(f.grad is not None)
msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning) and "twins" in str(w.message)]
print(json.dumps({"has_ext": extension.has_ext(), "ok": ok, "warnings": msgs}))
"""


def test_fallback_to_twins_with_one_warning():
    env = dict(os.environ, KNET_DISABLE_EXT="1")
    res = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["has_ext"] is False
    assert all(report["ok"]), report
    assert len(report["warnings"]) == 1, report["warnings"]
    assert "KNET_DISABLE_EXT=1" in report["warnings"][0]
