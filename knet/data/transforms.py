"""Training augmentations of the K-Net recipes; every transform moves the masks with the image.

    semantic (ADE20K):  RandomRatioResize((2048, 512), (0.5, 2.0)) -> RandomCrop(512, cat_max_ratio=0.75)
                        -> RandomFlip(0.5) -> PhotoMetricDistortion() -> Pad(to=(512, 512), seg 255)
    COCO 1x:            KeepRatioResize((1333, 800)) -> RandomFlip(0.5) -> Pad(divisor=32)
    COCO ms-3x:         ShorterSideRange((640, 800), max_long=1333) -> RandomFlip(0.5) -> Pad(divisor=32)

Each transform is `t(sample, rng) -> sample` with an explicit `np.random.Generator`, so the
augmentation of image i in epoch e depends only on (seed, e, i): the same on one process or
many, before and after a resume. Images resize bilinearly, masks and label maps by nearest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from PIL import Image

from knet.data.sample import IGNORE, Sample


def _resize_image(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def _resize_nearest(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest resize of [H, W] or [n, H, W] (pixel centres, as cv2 INTER_NEAREST / PIL NEAREST)."""
    src_h, src_w = arr.shape[-2:]
    if (src_h, src_w) == (h, w):
        return arr
    ys = np.minimum((np.arange(h) * src_h / h).astype(np.int64), src_h - 1)
    xs = np.minimum((np.arange(w) * src_w / w).astype(np.int64), src_w - 1)
    return arr[..., ys[:, None], xs[None, :]]


def resize_sample(s: Sample, h: int, w: int) -> Sample:
    return replace(
        s,
        image=_resize_image(s.image, h, w),
        thing_masks=None if s.thing_masks is None else _resize_nearest(s.thing_masks, h, w),
        sem_seg=None if s.sem_seg is None else _resize_nearest(s.sem_seg, h, w),
        ignore_mask=None if s.ignore_mask is None else _resize_nearest(s.ignore_mask, h, w),
    )


def keep_ratio_size(h: int, w: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv `rescale_size`: the largest size fitting (long, short) = scale, keeping the ratio."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


class KeepRatioResize:
    """Resize to fit `scale` = (long, short) keeping the aspect ratio (COCO (1333, 800))."""

    def __init__(self, scale: tuple[int, int]) -> None:
        self.scale = tuple(scale)

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        return resize_sample(s, *keep_ratio_size(*s.image.shape[:2], self.scale))


class ShorterSideRange:
    """Multi-scale training: shorter side uniform in [lo, hi] (integer), long side <= max_long."""

    def __init__(self, shorter: tuple[int, int], *, max_long: int) -> None:
        self.shorter, self.max_long = tuple(shorter), max_long

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        short = int(rng.integers(self.shorter[0], self.shorter[1] + 1))
        return resize_sample(s, *keep_ratio_size(*s.image.shape[:2], (self.max_long, short)))


class RandomRatioResize:
    """mmseg `Resize(img_scale, ratio_range)`: scale * uniform(ratio), then keep-ratio resize."""

    def __init__(self, scale: tuple[int, int], ratio_range: tuple[float, float]) -> None:
        self.scale, self.ratio_range = tuple(scale), tuple(ratio_range)

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        ratio = rng.uniform(*self.ratio_range)
        target = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        return resize_sample(s, *keep_ratio_size(*s.image.shape[:2], target))


class RandomCrop:
    """mmseg `RandomCrop`: up to 10 tries for a crop whose largest class covers < cat_max_ratio."""

    def __init__(self, size: tuple[int, int], *, cat_max_ratio: float = 1.0, ignore_index: int = IGNORE) -> None:
        self.size, self.cat_max_ratio, self.ignore_index = tuple(size), cat_max_ratio, ignore_index

    def _box(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        ch, cw = min(self.size[0], h), min(self.size[1], w)
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        return y0, y0 + ch, x0, x0 + cw

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        h, w = s.image.shape[:2]
        box = self._box(h, w, rng)
        if self.cat_max_ratio < 1.0 and s.sem_seg is not None:
            for _ in range(10):
                y0, y1, x0, x1 = box
                labels, cnt = np.unique(s.sem_seg[y0:y1, x0:x1], return_counts=True)
                cnt = cnt[labels != self.ignore_index]
                if len(cnt) > 1 and cnt.max() / cnt.sum() < self.cat_max_ratio:
                    break
                box = self._box(h, w, rng)
        y0, y1, x0, x1 = box
        return replace(
            s,
            image=s.image[y0:y1, x0:x1],
            thing_masks=None if s.thing_masks is None else s.thing_masks[:, y0:y1, x0:x1],
            sem_seg=None if s.sem_seg is None else s.sem_seg[y0:y1, x0:x1],
            ignore_mask=None if s.ignore_mask is None else s.ignore_mask[y0:y1, x0:x1],
        )


class RandomFlip:
    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.prob:
            return s
        return replace(
            s,
            image=s.image[:, ::-1],
            thing_masks=None if s.thing_masks is None else s.thing_masks[:, :, ::-1],
            sem_seg=None if s.sem_seg is None else s.sem_seg[:, ::-1],
            ignore_mask=None if s.ignore_mask is None else s.ignore_mask[:, ::-1],
            meta={**s.meta, "flipped": not s.meta.get("flipped", False)},
        )


class PhotoMetricDistortion:
    """mmseg `PhotoMetricDistortion`: brightness (+-32), contrast (0.5-1.5), saturation
    (0.5-1.5), hue (+-18 on OpenCV's 0-180 scale), each with probability 0.5; contrast before or
    after the colour changes (probability 0.5). Image only."""

    def __init__(self, brightness: int = 32, contrast: tuple[float, float] = (0.5, 1.5),
                 saturation: tuple[float, float] = (0.5, 1.5), hue: int = 18) -> None:  # fmt: skip
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        img = s.image.astype(np.float32)
        if rng.integers(2):
            img = np.clip(img + rng.uniform(-self.brightness, self.brightness), 0, 255)
        contrast_first = bool(rng.integers(2))
        if contrast_first and rng.integers(2):
            img = np.clip(img * rng.uniform(*self.contrast), 0, 255)
        sat = rng.uniform(*self.saturation) if rng.integers(2) else None
        hue = int(rng.integers(-self.hue, self.hue + 1)) if rng.integers(2) else None
        if sat is not None or hue is not None:
            hsv = np.asarray(Image.fromarray(img.astype(np.uint8)).convert("HSV")).astype(np.float32)
            if sat is not None:
                hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
            if hue is not None:  # PIL hue is 0-255 for 360 degrees; OpenCV's is 0-180
                hsv[..., 0] = (hsv[..., 0] + hue * 256.0 / 180.0) % 256
            img = np.asarray(Image.fromarray(hsv.astype(np.uint8), mode="HSV").convert("RGB")).astype(np.float32)
        if not contrast_first and rng.integers(2):
            img = np.clip(img * rng.uniform(*self.contrast), 0, 255)
        return replace(s, image=img.astype(np.uint8))


class Compose:
    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        for t in self.transforms:
            s = t(s, rng)
        return s


def semantic_train_transforms(*, scale: tuple[int, int] = (2048, 512), ratio_range=(0.5, 2.0),
                              crop: tuple[int, int] = (512, 512), cat_max_ratio: float = 0.75,
                              photometric: bool = True) -> Compose:  # fmt: skip
    ts = [RandomRatioResize(scale, ratio_range), RandomCrop(crop, cat_max_ratio=cat_max_ratio), RandomFlip(0.5)]
    if photometric:
        ts.append(PhotoMetricDistortion())
    return Compose(ts)


def coco_train_transforms(*, scale: tuple[int, int] = (1333, 800), multiscale: tuple[int, int] | None = None) -> Compose:
    resize = ShorterSideRange(multiscale, max_long=max(scale)) if multiscale else KeepRatioResize(scale)
    return Compose([resize, RandomFlip(0.5)])


def test_transforms(*, scale: tuple[int, int]) -> Compose:
    return Compose([KeepRatioResize(scale)])
