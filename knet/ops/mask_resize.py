"""Masks to the original image, thresholded: the resize chain of the det post-processing (spec 2.7).

The original code brings each kept mask from its stride-4 probabilities to the original image as

    probs [h4, w4] -> bilinear to the padded batch shape -> crop to img_shape (top-left)
                   -> bilinear to ori_shape -> (> threshold)             (align_corners=False)

`resize_probs` is that chain on float maps (also used by the panoptic merge, which needs the
probabilities themselves). `mask_resize_threshold` returns only the thresholded masks and
chooses explicitly between:

* the compiled CPU op `knet._C.mask_resize_threshold` (csrc/ops/mask_resize): the two bilinear
  steps compose into one separable map whose output pixel is a convex combination of at most
  3x3 stride-4 probabilities; where that whole window lies on one side of the threshold (by
  1e-5, far above float rounding) the answer is known without interpolating, and only the
  pixels near a mask boundary are interpolated (in double). It equals the twin except at pixels
  whose probability is within float rounding (~1e-6) of the threshold. Each distinct map of
  `index` is resized once.
* the PyTorch twin `mask_resize_threshold_twin`: the float chain above, in chunks of a few
  masks (the test oracle; and the path for CUDA tensors, or without knet._C). This op has no
  CUDA kernel: on the GPU the twin's interpolations are already fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from knet.extension import ext, use_compiled

__all__ = ["mask_resize_threshold", "mask_resize_threshold_twin", "resize_probs"]

Shape = Sequence[int]

# masks per chunk of the twin: about 32 MB of float32 at the padded batch size (8 masks at
# 800x1216); larger chunks stream through more memory and were measured slower at 1 thread
CHUNK_FLOATS = 1 << 23


def resize_probs(probs: Tensor, *, batch_shape: Shape, img_shape: Shape, ori_shape: Shape) -> Tensor:
    """[N, h4, w4] probabilities -> [N, H, W]: to the padded batch shape, crop, to ori_shape."""
    m = F.interpolate(probs.unsqueeze(0), size=tuple(batch_shape[:2]), mode="bilinear", align_corners=False)
    m = m[:, :, : img_shape[0], : img_shape[1]]
    m = F.interpolate(m, size=tuple(ori_shape[:2]), mode="bilinear", align_corners=False)
    return m[0]


def chunks(n: int, batch_shape: Shape):
    """(start, end) ranges of a few masks each, so that only a few full-size float maps exist."""
    size = max(4, min(32, CHUNK_FLOATS // (int(batch_shape[0]) * int(batch_shape[1]))))
    for start in range(0, n, size):
        yield start, min(start + size, n)


def mask_resize_threshold_twin(
    probs: Tensor, index: Tensor, *, batch_shape: Shape, img_shape: Shape, ori_shape: Shape, threshold: float
) -> Tensor:
    """PyTorch twin: out[i] = resize_probs(probs[index[i]]) > threshold, bool [K, H, W]."""
    uniq, inverse = torch.unique(index, return_inverse=True)
    oh, ow = int(ori_shape[0]), int(ori_shape[1])
    binary = torch.empty((uniq.numel(), oh, ow), dtype=torch.bool, device=probs.device)
    for s, e in chunks(uniq.numel(), batch_shape):
        resized = resize_probs(probs[uniq[s:e]].float(), batch_shape=batch_shape, img_shape=img_shape, ori_shape=ori_shape)
        torch.gt(resized, threshold, out=binary[s:e])
    return binary[inverse]


def _check(probs: Tensor, index: Tensor, batch_shape: Shape, img_shape: Shape, ori_shape: Shape) -> None:
    if probs.dim() != 3:
        raise ValueError(f"mask_resize_threshold expects probabilities [N, h, w], got {tuple(probs.shape)}")
    if index.dim() != 1 or index.dtype != torch.int64:
        raise ValueError(f"mask_resize_threshold expects a 1-D int64 index, got {index.dtype} {tuple(index.shape)}")
    for name, s in (("batch_shape", batch_shape), ("img_shape", img_shape), ("ori_shape", ori_shape)):
        if len(s) < 2 or int(s[0]) < 1 or int(s[1]) < 1:
            raise ValueError(f"mask_resize_threshold: {name} must be two positive sizes, got {tuple(s)}")
    if int(img_shape[0]) > int(batch_shape[0]) or int(img_shape[1]) > int(batch_shape[1]):
        raise ValueError(f"mask_resize_threshold: img_shape {tuple(img_shape)} exceeds batch_shape {tuple(batch_shape)}")


def mask_resize_threshold(
    probs: Tensor,
    index: Tensor | None = None,
    *,
    batch_shape: Shape,
    img_shape: Shape,
    ori_shape: Shape,
    threshold: float = 0.5,
) -> Tensor:
    """probs [N, h4, w4] in [0, 1] -> bool [K, H, W] at ori_shape: map index[i] (default: all N),
    resized as the original code does and thresholded (> threshold). See the module docstring."""
    if index is None:
        index = torch.arange(probs.shape[0], device=probs.device)
    _check(probs, index, batch_shape, img_shape, ori_shape)
    shapes = dict(batch_shape=batch_shape, img_shape=img_shape, ori_shape=ori_shape)
    if probs.device.type == "cpu" and use_compiled(probs):  # CPU-only op; other devices: the twin
        size = lambda s: [int(s[0]), int(s[1])]  # noqa: E731
        return ext().mask_resize_threshold(
            probs, index.cpu(), size(batch_shape), size(img_shape), size(ori_shape), float(threshold)
        )
    return mask_resize_threshold_twin(probs, index, threshold=threshold, **shapes)
