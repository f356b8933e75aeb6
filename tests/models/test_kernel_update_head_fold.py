"""KernelUpdateHead's inference fold of feat_transform equals the unfolded (training) path.

In eval mode the head never runs the full-resolution 1x1 feat_transform; it assembles on the raw
features and folds W, b into the [B, N, C] group features and the mask kernels:

    sum G (W F + b) = (sum G F) W^T + (sum G) b,      k (*) (W F + b) = (k W) (*) F + k . b

Reference = the same head with `fold_feat_transform=False` (the unfolded path, which training
always takes). Float64 must agree to rounding; float32 within 1e-5 of the output's magnitude.
"""

from __future__ import annotations

import pytest
import torch

from knet.models.kernel_update_head import KernelUpdateHead

CHANNELS, UPDATOR, HEADS, FFN = 64, 32, 4, 96
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _head(gather: str, dtype: torch.dtype) -> KernelUpdateHead:
    torch.manual_seed(0)
    head = KernelUpdateHead(
        channels=CHANNELS,
        num_classes=7 if gather == "binary" else None,
        num_heads=HEADS,
        feedforward_channels=FFN,
        updator_channels=UPDATOR,
        gather=gather,
    ).to(dtype)
    with torch.no_grad():  # a visible bias (default init is tiny), so its fold is exercised
        head.feat_transform.conv.bias.uniform_(-1.0, 1.0)
    return head.eval()


def _inputs(b: int, n: int, size: tuple[int, int], mask_size: tuple[int, int], dtype: torch.dtype):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(b, CHANNELS, *size, generator=g, dtype=dtype)
    kernels = torch.randn(b, n, CHANNELS, generator=g, dtype=dtype)
    masks = 2 * torch.randn(b, n, *mask_size, generator=g, dtype=dtype)
    return feats, kernels, masks


def _run(head: KernelUpdateHead, fold: bool, *args):
    head.fold_feat_transform = fold
    try:
        return head(*args)
    finally:
        head.fold_feat_transform = True


def _close(name: str, ours: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype, name
    tol = TOL[dtype] * float(ref.abs().max()) + TOL[dtype]
    diff = float((ours - ref).abs().max())
    assert diff <= tol, f"{name}: max |diff| {diff:.3g} > {tol:.3g}"


def _compare(head, args, dtype) -> None:
    ref = _run(head, False, *args)
    out = _run(head, True, *args)
    if head.num_classes is None:
        assert out[0] is None and ref[0] is None
    else:
        _close("cls_logits", out[0], ref[0], dtype)
    _close("mask_logits", out[1], ref[1], dtype)
    _close("kernels", out[2], ref[2], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("gather", ["binary", "softmax"])
@pytest.mark.parametrize(
    "b, n, size, mask_size",
    [
        (2, 9, (13, 19), (13, 19)),  # odd sizes
        (1, 1, (7, 5), (7, 5)),  # a single kernel (softmax over N=1 is all ones)
        (2, 5, (11, 9), (6, 5)),  # masks resized to the feature size first
        (1, 3, (1, 1), (1, 1)),  # one pixel
        (1, 4, (37, 41), (37, 41)),  # more pixels than one softmax chunk of the gate total
    ],
)
def test_fold_matches_unfolded(dtype, gather, b, n, size, mask_size):
    head = _head(gather, dtype)
    args = _inputs(b, n, size, mask_size, dtype)
    with torch.inference_mode():
        _compare(head, args, dtype)


@pytest.mark.parametrize("gather", ["binary", "softmax"])
def test_fold_empty_and_full_binary_masks(gather):
    """All-negative / all-positive logits: zero and full mask areas (the bias term's extremes)."""
    head = _head(gather, torch.float64)
    feats, kernels, masks = _inputs(2, 4, (9, 7), (9, 7), torch.float64)
    masks[0, 0] = -1.0
    masks[0, 1] = 3.0
    masks[1] = -5.0
    with torch.no_grad():
        _compare(head, (feats, kernels, masks), torch.float64)


@pytest.mark.parametrize("gather", ["binary", "softmax"])
def test_fold_non_contiguous_feats(gather):
    head = _head(gather, torch.float32)
    feats, kernels, masks = _inputs(2, 6, (10, 13), (10, 13), torch.float32)
    wide = torch.randn(2, CHANNELS, 10, 26)
    feats_nc = wide[..., ::2]  # strided view
    feats_cl = feats.to(memory_format=torch.channels_last)
    with torch.no_grad():
        for f in (feats_nc, feats_cl):
            _compare(head, (f, kernels, masks), torch.float32)
        ref = _run(head, False, feats_nc.contiguous(), kernels, masks)
        out = head(feats_nc, kernels, masks)
        _close("mask_logits (strided vs contiguous)", out[1], ref[1], torch.float32)


@pytest.mark.parametrize("gather", ["binary", "softmax"])
def test_fold_gradients_in_eval_mode(gather):
    """Eval mode with autograd on: the fold is differentiable and gives the same gradients."""
    head = _head(gather, torch.float64)
    feats, kernels, masks = _inputs(1, 4, (6, 7), (6, 7), torch.float64)
    grads = []
    for fold in (False, True):
        head.zero_grad()
        f = feats.clone().requires_grad_()
        out = _run(head, fold, f, kernels, masks)
        loss = out[1].square().sum() + out[2].sum() + (0 if out[0] is None else out[0].sum())
        loss.backward()
        tw = head.feat_transform.conv
        grads.append([f.grad, tw.weight.grad, tw.bias.grad, head.fc_mask.weight.grad])
    for name, g_fold, g_ref in zip(("feats", "W", "b", "fc_mask"), grads[1], grads[0]):
        _close(f"grad {name}", g_fold, g_ref, torch.float64)


def test_training_path_unchanged():
    """Training mode always runs feat_transform at full resolution (no fold), bit for bit."""
    head = _head("softmax", torch.float32)
    args = _inputs(2, 5, (9, 11), (9, 11), torch.float32)
    with torch.no_grad():
        ref = _run(head, False, *args)  # eval, unfolded
        head.train()
        calls = []
        hook = head.feat_transform.register_forward_hook(lambda *a: calls.append(1))
        out = head(*args)
        hook.remove()
        head.eval()
        head(*args)
    assert len(calls) == 1  # only the training call ran feat_transform
    assert torch.equal(out[1], ref[1]) and torch.equal(out[2], ref[2])


def test_stages_chain_softmax():
    """Three semantic stages chained (each stage's masks feed the next): fold vs unfolded."""
    heads = []
    for s in range(3):
        torch.manual_seed(s)
        head = KernelUpdateHead(
            channels=CHANNELS, num_classes=None, num_heads=HEADS, feedforward_channels=FFN,
            updator_channels=UPDATOR, gather="softmax",
        ).double().eval()
        heads.append(head)
    feats, kernels, masks = _inputs(1, 11, (15, 17), (15, 17), torch.float64)
    with torch.inference_mode():
        results = []
        for fold in (False, True):
            k, m = kernels, masks
            for head in heads:
                _, m, k = _run(head, fold, feats, k, m)
            results.append((m, k))
    _close("chained masks", results[1][0], results[0][0], torch.float64)
    _close("chained kernels", results[1][1], results[0][1], torch.float64)
