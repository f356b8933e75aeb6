"""Group feature assembling of K-Net (paper Eq. (3); spec 2.4 steps 3-4, 3.2, pitfall 1).

Each kernel gathers the features of "its" pixels, weighted by a gate on its mask logits, as an
unnormalised sum over pixels (not divided by the mask area):

    F_K[b, n, c] = sum_{h,w} gate(M)[b, n, h, w] * X[b, c, h, w]     (einsum bnhw,bchw->bnc)

gate (`mode`):
  - "binary":  sigmoid(M) > 0.5, i.e. M > 0, as 0/1 (instance / panoptic). No gradient flows
               into the masks; the features get their gradient.
  - "softmax": softmax of M over the kernel dimension N (semantic). Gradient into masks and feats.
  - "sigmoid": sigmoid(M). Gradient into masks and feats.

`assemble` chooses explicitly (knet.extension.use_compiled) between the compiled op
`knet::assemble` (csrc/ops/assemble; the binary CPU kernel works on bit-packed masks and never
builds a float [B, N, H, W] gate) and the PyTorch twin `assemble_twin`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from knet.extension import ext, use_compiled

__all__ = ["MODES", "assemble", "assemble_twin"]

MODES = ("binary", "softmax", "sigmoid")


def _gate_twin(mask_logits: Tensor, mode: str, dtype: torch.dtype) -> Tensor:
    if mode == "binary":
        return (mask_logits.detach() > 0).to(dtype)  # sigmoid(M) > 0.5, no gradient
    if mode == "softmax":
        return mask_logits.softmax(dim=1)
    return mask_logits.sigmoid()


def assemble_twin(mask_logits: Tensor, feats: Tensor, mode: str) -> Tensor:
    """PyTorch twin: mask_logits [B, N, H, W], feats [B, C, H, W] -> [B, N, C]."""
    _check(mask_logits, feats, mode)
    gate = _gate_twin(mask_logits, mode, feats.dtype)  # [B, N, H, W]
    return torch.einsum("bnhw,bchw->bnc", gate, feats)


def _check(mask_logits: Tensor, feats: Tensor, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"assemble: mode must be one of {MODES}, got {mode!r}")
    if mask_logits.dim() != 4 or feats.dim() != 4:
        raise ValueError(
            f"assemble expects mask_logits [B,N,H,W] and feats [B,C,H,W], got {tuple(mask_logits.shape)} and {tuple(feats.shape)}"
        )
    if mask_logits.shape[0] != feats.shape[0] or mask_logits.shape[2:] != feats.shape[2:]:
        raise ValueError(f"assemble: mask_logits {tuple(mask_logits.shape)} and feats {tuple(feats.shape)} do not match")
    if mask_logits.dtype != feats.dtype or mask_logits.device != feats.device:
        raise ValueError(
            f"assemble: mask_logits ({mask_logits.dtype}, {mask_logits.device}) and feats ({feats.dtype}, {feats.device}) differ"
        )


@torch.library.custom_op("knet::assemble", mutates_args=())
def _assemble_op(mask_logits: Tensor, feats: Tensor, mode: str) -> Tensor:
    return ext().assemble_forward(mask_logits, feats, mode)


@_assemble_op.register_fake
def _(mask_logits: Tensor, feats: Tensor, mode: str) -> Tensor:
    return feats.new_empty((feats.shape[0], mask_logits.shape[1], feats.shape[1]))


@torch.library.custom_op("knet::assemble_grad_feats", mutates_args=())
def _assemble_grad_feats_op(grad: Tensor, mask_logits: Tensor, feats: Tensor, mode: str) -> Tensor:
    return ext().assemble_grad_feats(grad, mask_logits, feats, mode)


@_assemble_grad_feats_op.register_fake
def _(grad: Tensor, mask_logits: Tensor, feats: Tensor, mode: str) -> Tensor:
    return torch.empty_like(feats, memory_format=torch.contiguous_format)


@torch.library.custom_op("knet::assemble_grad_masks", mutates_args=())
def _assemble_grad_masks_op(grad: Tensor, mask_logits: Tensor, feats: Tensor, mode: str) -> Tensor:
    return ext().assemble_grad_masks(grad, mask_logits, feats, mode)


@_assemble_grad_masks_op.register_fake
def _(grad: Tensor, mask_logits: Tensor, feats: Tensor, mode: str) -> Tensor:
    return torch.empty_like(mask_logits, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output) -> None:
    mask_logits, feats, mode = inputs
    ctx.mode = mode
    ctx.save_for_backward(mask_logits, feats)


def _backward(ctx, grad: Tensor):
    mask_logits, feats = ctx.saved_tensors
    grad_masks = grad_feats = None
    if ctx.needs_input_grad[1]:
        # dL/dX[b,c,p] = sum_n gate[b,n,p] * G[b,n,c]
        grad_feats = torch.ops.knet.assemble_grad_feats(grad, mask_logits, feats, ctx.mode)
    if ctx.needs_input_grad[0] and ctx.mode != "binary":
        # dL/dgate[b,n,p] = sum_c G[b,n,c] X[b,c,p], then through sigmoid / softmax over N
        grad_masks = torch.ops.knet.assemble_grad_masks(grad, mask_logits, feats, ctx.mode)
    return grad_masks, grad_feats, None


_assemble_op.register_autograd(_backward, setup_context=_setup_context)


class _AssembleEager(torch.autograd.Function):
    """Eager-mode path to the same kernels (an autograd.Function costs less per call than the
    torch.library op's Python dispatch, which torch.compile needs and gets)."""

    @staticmethod
    def forward(ctx, mask_logits: Tensor, feats: Tensor, mode: str) -> Tensor:
        ctx.mode = mode
        ctx.save_for_backward(mask_logits, feats)
        return ext().assemble_forward(mask_logits, feats, mode)

    @staticmethod
    def backward(ctx, grad: Tensor):
        mask_logits, feats = ctx.saved_tensors
        grad_masks = grad_feats = None
        if ctx.needs_input_grad[1]:
            grad_feats = ext().assemble_grad_feats(grad, mask_logits, feats, ctx.mode)
        if ctx.needs_input_grad[0] and ctx.mode != "binary":
            grad_masks = ext().assemble_grad_masks(grad, mask_logits, feats, ctx.mode)
        return grad_masks, grad_feats, None


def assemble(mask_logits: Tensor, feats: Tensor, mode: str) -> Tensor:
    """Unnormalised gated sum over pixels: [B, N, H, W] x [B, C, H, W] -> [B, N, C]."""
    _check(mask_logits, feats, mode)
    if use_compiled(mask_logits, feats):
        if torch.compiler.is_compiling():
            return torch.ops.knet.assemble(mask_logits, feats, mode)
        return _AssembleEager.apply(mask_logits, feats, mode)
    return assemble_twin(mask_logits, feats, mode)
