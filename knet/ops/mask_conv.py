"""Dynamic mask convolution of K-Net (paper Eq. (1); spec 2.4 step 11).

Every kernel k_n (a C-vector) is convolved 1x1 with the shared feature map, without bias:

    M[b, n, h, w] = sum_c K[b, n, c] * X[b, c, h, w]          (einsum bnc,bchw->bnhw)

`mask_conv` chooses explicitly (knet.extension.use_compiled) between the compiled op
`knet::mask_conv` (C++ CPU / CUDA kernels in csrc/ops/mask_conv, with autograd, traceable by
torch.compile) and the PyTorch twin `mask_conv_twin` (the test oracle and the fallback).
"""

from __future__ import annotations

import torch
from torch import Tensor

from knet.extension import ext, use_compiled

__all__ = ["mask_conv", "mask_conv_twin"]


def mask_conv_twin(feats: Tensor, kernels: Tensor) -> Tensor:
    """PyTorch twin: feats [B, C, H, W], kernels [B, N, C] -> masks [B, N, H, W]."""
    return torch.einsum("bnc,bchw->bnhw", kernels, feats)


def _check(feats: Tensor, kernels: Tensor) -> None:
    if feats.dim() != 4 or kernels.dim() != 3:
        raise ValueError(f"mask_conv expects feats [B,C,H,W] and kernels [B,N,C], got {tuple(feats.shape)} and {tuple(kernels.shape)}")
    if feats.shape[0] != kernels.shape[0] or feats.shape[1] != kernels.shape[2]:
        raise ValueError(f"mask_conv: batch/channel mismatch between feats {tuple(feats.shape)} and kernels {tuple(kernels.shape)}")
    if feats.dtype != kernels.dtype or feats.device != kernels.device:
        raise ValueError(f"mask_conv: feats ({feats.dtype}, {feats.device}) and kernels ({kernels.dtype}, {kernels.device}) differ")


@torch.library.custom_op("knet::mask_conv", mutates_args=())
def _mask_conv_op(feats: Tensor, kernels: Tensor) -> Tensor:
    return ext().mask_conv_forward(feats, kernels)


@_mask_conv_op.register_fake
def _(feats: Tensor, kernels: Tensor) -> Tensor:
    b, _, h, w = feats.shape
    return feats.new_empty((b, kernels.shape[1], h, w))


@torch.library.custom_op("knet::mask_conv_backward", mutates_args=())
def _mask_conv_backward_op(grad: Tensor, feats: Tensor, kernels: Tensor) -> tuple[Tensor, Tensor]:
    grad_feats, grad_kernels = ext().mask_conv_backward(grad, feats, kernels)
    return grad_feats, grad_kernels


@_mask_conv_backward_op.register_fake
def _(grad: Tensor, feats: Tensor, kernels: Tensor) -> tuple[Tensor, Tensor]:
    return torch.empty_like(feats, memory_format=torch.contiguous_format), torch.empty_like(
        kernels, memory_format=torch.contiguous_format
    )


def _setup_context(ctx, inputs, output) -> None:
    feats, kernels = inputs
    ctx.save_for_backward(feats, kernels)


def _backward(ctx, grad: Tensor):
    feats, kernels = ctx.saved_tensors
    # dL/dX[b,c,p] = sum_n K[b,n,c] G[b,n,p];  dL/dK[b,n,c] = sum_p G[b,n,p] X[b,c,p]
    grad_feats, grad_kernels = torch.ops.knet.mask_conv_backward(grad, feats, kernels)
    return grad_feats, grad_kernels


_mask_conv_op.register_autograd(_backward, setup_context=_setup_context)


class _MaskConvEager(torch.autograd.Function):
    """Eager-mode path to the same kernels (an autograd.Function costs less per call than the
    torch.library op's Python dispatch, which torch.compile needs and gets)."""

    @staticmethod
    def forward(ctx, feats: Tensor, kernels: Tensor) -> Tensor:
        ctx.save_for_backward(feats, kernels)
        return ext().mask_conv_forward(feats, kernels)

    @staticmethod
    def backward(ctx, grad: Tensor):
        feats, kernels = ctx.saved_tensors
        grad_feats, grad_kernels = ext().mask_conv_backward(grad, feats, kernels)
        return grad_feats, grad_kernels


def mask_conv(feats: Tensor, kernels: Tensor) -> Tensor:
    """Dynamic 1x1 convolution: feats [B, C, H, W], kernels [B, N, C] -> masks [B, N, H, W]."""
    _check(feats, kernels)
    if use_compiled(feats, kernels):
        if torch.compiler.is_compiling():
            return torch.ops.knet.mask_conv(feats, kernels)
        return _MaskConvEager.apply(feats, kernels)
    return mask_conv_twin(feats, kernels)
