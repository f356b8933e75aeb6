"""The test-time input pipeline shared by the models: keep-ratio resize, normalise, pad, batch.

Mirrors mmdet / mmseg `Resize(keep_ratio=True)` + `Normalize` + `Pad(size_divisor)`: the image is
scaled by min(long_max / long_side, short_max / short_side), sizes rounded with int(x + 0.5),
resized bilinearly (half-pixel centres, no antialiasing, rounded back to uint8 like an image
library would), normalised with the RGB mean / std and zero-padded at the bottom / right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from knet.errors import KnetError

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass
class ImageMeta:
    ori_shape: tuple[int, int]  # original H, W
    img_shape: tuple[int, int]  # resized H, W (top-left of the padded batch)
    batch_shape: tuple[int, int]  # padded H, W of the whole batch


def keep_ratio_size(height: int, width: int, scale: Sequence[int]) -> tuple[int, int]:
    """(new_h, new_w) fitting the long side into max(scale) and the short side into min(scale)."""
    long_max, short_max = max(scale), min(scale)
    factor = min(long_max / max(height, width), short_max / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def _check_image(image: np.ndarray, index: int) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        raise KnetError(f"image {index} must be an HxWx3 uint8 RGB array, got {type(image).__name__} {shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise KnetError(f"image {index} is empty ({image.shape})")


def prepare_batch(
    images: Sequence[np.ndarray],
    *,
    scale: Sequence[int] | None,
    size_divisor: int = 32,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, list[ImageMeta]]:
    """HxWx3 uint8 RGB images -> normalised padded batch [B, 3, H, W] and per-image metas.

    `scale=None` keeps the original size (no resize).
    """
    tensors, sizes = [], []
    for i, image in enumerate(images):
        _check_image(image, i)
        h, w = image.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float()  # [3, h, w]
        nh, nw = keep_ratio_size(h, w, scale) if scale is not None else (h, w)
        if (nh, nw) != (h, w):
            x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
            x = x.round_().clamp_(0, 255)
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(3, 1, 1)
        tensors.append((x - m) / s)
        sizes.append(((h, w), (nh, nw)))
    if not tensors:
        raise KnetError("no images given")
    bh = max(t.shape[1] for t in tensors)
    bw = max(t.shape[2] for t in tensors)
    if size_divisor > 1:
        bh = -(-bh // size_divisor) * size_divisor
        bw = -(-bw // size_divisor) * size_divisor
    batch = torch.zeros((len(tensors), 3, bh, bw), dtype=torch.float32, device=device)
    for i, t in enumerate(tensors):
        batch[i, :, : t.shape[1], : t.shape[2]] = t
    metas = [ImageMeta(ori_shape=o, img_shape=r, batch_shape=(bh, bw)) for o, r in sizes]
    return batch, metas
