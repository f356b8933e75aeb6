"""Adaptive feature gating of K-Net's kernel update (paper Eqs. (5)-(6); spec 2.5 steps 5-7).

After the linear layers of the KernelUpdator, everything is one fused element-wise/row op:

    G_F = sigmoid(LN_norm_in(gate_up))              gate on the assembled feature   Eq. (5)
    G_K = sigmoid(LN_input_norm_in(gate_in))        gate on the old kernel          Eq. (5)
    K~  = G_F * LN_norm_out(feat_out) + G_K * LN_input_norm_out(kernel_out)         Eq. (6)

All four activations are [M, Cf] (M rows = B * N * chunks: the model reshapes the two-half
chunking of the semantic checkpoints into rows), the eight LayerNorm parameters are [Cf].
`adaptive_gate` chooses explicitly (knet.extension.use_compiled) between the compiled op
`knet::adaptive_gate` (fused forward and backward in csrc/ops/gating) and the twin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from knet.extension import ext, use_compiled

__all__ = ["adaptive_gate", "adaptive_gate_twin"]


def adaptive_gate_twin(
    gate_in: Tensor,
    gate_up: Tensor,
    feat_out: Tensor,
    kernel_out: Tensor,
    input_norm_in_weight: Tensor,
    input_norm_in_bias: Tensor,
    norm_in_weight: Tensor,
    norm_in_bias: Tensor,
    norm_out_weight: Tensor,
    norm_out_bias: Tensor,
    input_norm_out_weight: Tensor,
    input_norm_out_bias: Tensor,
    eps: float = 1e-5,
) -> Tensor:
    """PyTorch twin of the fused gate-and-mix: four [M, Cf] activations -> [M, Cf]."""
    cf = (gate_in.shape[-1],)
    g_k = torch.sigmoid(F.layer_norm(gate_in, cf, input_norm_in_weight, input_norm_in_bias, eps))
    g_f = torch.sigmoid(F.layer_norm(gate_up, cf, norm_in_weight, norm_in_bias, eps))
    p_out = F.layer_norm(feat_out, cf, norm_out_weight, norm_out_bias, eps)
    q_out = F.layer_norm(kernel_out, cf, input_norm_out_weight, input_norm_out_bias, eps)
    return g_f * p_out + g_k * q_out


def _check(acts: tuple[Tensor, ...], params: tuple[Tensor, ...]) -> None:
    shape = acts[0].shape
    if len(shape) != 2:
        raise ValueError(f"adaptive_gate expects [M, Cf] activations, got {tuple(shape)}")
    if not (acts[1].shape == shape and acts[2].shape == shape and acts[3].shape == shape):
        raise ValueError(f"adaptive_gate: activation shapes differ: {[tuple(t.shape) for t in acts]}")
    cf = shape[1:]
    for p in params:  # plain comparisons only: this runs on every call of a sub-millisecond op
        if p.shape != cf:
            raise ValueError(f"adaptive_gate: LayerNorm parameters must be [{shape[1]}], got {tuple(p.shape)}")
    # devices: checked by the compiled op (one TORCH_CHECK per tensor) and by the twin's ops


@torch.library.custom_op("knet::adaptive_gate", mutates_args=())
def _adaptive_gate_op(
    gate_in: Tensor,
    gate_up: Tensor,
    feat_out: Tensor,
    kernel_out: Tensor,
    input_norm_in_weight: Tensor,
    input_norm_in_bias: Tensor,
    norm_in_weight: Tensor,
    norm_in_bias: Tensor,
    norm_out_weight: Tensor,
    norm_out_bias: Tensor,
    input_norm_out_weight: Tensor,
    input_norm_out_bias: Tensor,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    out, stats, gates = ext().adaptive_gate_forward(
        [gate_in, gate_up, feat_out, kernel_out],
        [
            input_norm_in_weight,
            input_norm_in_bias,
            norm_in_weight,
            norm_in_bias,
            norm_out_weight,
            norm_out_bias,
            input_norm_out_weight,
            input_norm_out_bias,
        ],
        eps,
    )
    return out, stats, gates


def _stats_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@_adaptive_gate_op.register_fake
def _(gate_in, gate_up, feat_out, kernel_out, *rest):
    m = gate_in.shape[0]
    out = gate_in.new_empty(gate_in.shape)
    # per row and LayerNorm: (mean, rstd) of the 4 inputs in the accumulation dtype
    stats = gate_in.new_empty((4, m, 2), dtype=_stats_dtype(gate_in.dtype))
    # the two sigmoid gates, saved for the backward by the CPU kernel (CUDA recomputes them)
    gate_shape = (0,) if gate_in.device.type == "cuda" else (2, m, gate_in.shape[1])
    gates = gate_in.new_empty(gate_shape, dtype=_stats_dtype(gate_in.dtype))
    return out, stats, gates


@torch.library.custom_op("knet::adaptive_gate_backward", mutates_args=())
def _adaptive_gate_backward_op(
    grad: Tensor, acts: list[Tensor], params: list[Tensor], stats: Tensor, gates: Tensor, eps: float
) -> list[Tensor]:
    return list(ext().adaptive_gate_backward(grad, acts, params, stats, gates, eps))


@_adaptive_gate_backward_op.register_fake
def _(grad, acts, params, stats, gates, eps):
    return [torch.empty_like(t, memory_format=torch.contiguous_format) for t in list(acts) + list(params)]


def _setup_context(ctx, inputs, output) -> None:
    *tensors, eps = inputs
    _, stats, gates = output
    ctx.eps = eps
    ctx.mark_non_differentiable(stats, gates)
    ctx.save_for_backward(*tensors, stats, gates)


def _backward(ctx, grad_out: Tensor, _grad_stats, _grad_gates):
    *tensors, stats, gates = ctx.saved_tensors
    grads = torch.ops.knet.adaptive_gate_backward(grad_out, tensors[:4], tensors[4:], stats, gates, ctx.eps)
    return (*grads, None)


_adaptive_gate_op.register_autograd(_backward, setup_context=_setup_context)


def adaptive_gate(
    gate_in: Tensor,
    gate_up: Tensor,
    feat_out: Tensor,
    kernel_out: Tensor,
    input_norm_in_weight: Tensor,
    input_norm_in_bias: Tensor,
    norm_in_weight: Tensor,
    norm_in_bias: Tensor,
    norm_out_weight: Tensor,
    norm_out_bias: Tensor,
    input_norm_out_weight: Tensor,
    input_norm_out_bias: Tensor,
    eps: float = 1e-5,
) -> Tensor:
    """sigmoid(LN(gate_up)) * LN(feat_out) + sigmoid(LN(gate_in)) * LN(kernel_out), [M, Cf].

    gate_in -> input_norm_in (G_K, gates kernel_out through input_norm_out);
    gate_up -> norm_in (G_F, gates feat_out through norm_out).
    """
    acts = (gate_in, gate_up, feat_out, kernel_out)
    params = (
        input_norm_in_weight,
        input_norm_in_bias,
        norm_in_weight,
        norm_in_bias,
        norm_out_weight,
        norm_out_bias,
        input_norm_out_weight,
        input_norm_out_bias,
    )
    _check(acts, params)
    if use_compiled(gate_in):  # _check: every tensor is on its device
        if torch.compiler.is_compiling():
            out, _, _ = torch.ops.knet.adaptive_gate(*acts, *params, float(eps))
            return out
        # eager: the C++ autograd node of csrc/ops/gating/gating_bind.cpp (no Python per call)
        return ext().adaptive_gate_autograd(*acts, *params, float(eps))
    return adaptive_gate_twin(*acts, *params, eps=eps)
