"""knet.ops.mask_resize: the compiled thresholded resize against the float chain of the original.

The compiled op interpolates only near mask boundaries (in double); it must agree with the twin
(F.interpolate to the batch shape, crop, F.interpolate to ori_shape, > threshold) at every pixel
whose float probability is not within rounding (1e-6) of the threshold.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from knet.extension import has_ext
from knet.ops.mask_resize import mask_resize_threshold, mask_resize_threshold_twin, resize_probs

needs_ext = pytest.mark.skipif(not has_ext(), reason="knet._C not built")

SHAPES = [
    dict(batch_shape=(800, 1216), img_shape=(800, 1200), ori_shape=(640, 960)),  # the bench's det image
    dict(batch_shape=(64, 96), img_shape=(61, 90), ori_shape=(97, 141)),  # upscale, odd sizes
    dict(batch_shape=(64, 96), img_shape=(64, 83), ori_shape=(33, 47)),  # downscale
    dict(batch_shape=(32, 48), img_shape=(32, 48), ori_shape=(32, 48)),  # identity last step
    dict(batch_shape=(8, 12), img_shape=(5, 7), ori_shape=(300, 400)),  # batch smaller than stride 4: wide windows
    dict(batch_shape=(1, 1), img_shape=(1, 1), ori_shape=(3, 2)),  # single pixel
]


def _maps(kind: str, n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "noise":  # every window straddles the threshold somewhere: the exact path everywhere
        logits = torch.randn(n, h, w, generator=g) * 3
    else:  # blobs with ragged borders: long sure runs on both sides
        yy, xx = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
        cy, cx = torch.rand(n, 1, 1, generator=g) * h, torch.rand(n, 1, 1, generator=g) * w
        r = torch.rand(n, 1, 1, generator=g) * max(h, w) / 2 + 1
        logits = (1 - ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt() / r) * 6 + torch.randn(n, h, w, generator=g) * 0.5
        logits[0] = 5.0  # everything above
        logits[1] = -5.0  # everything below
    return logits.sigmoid()


def _check_against_twin(probs, index, shapes, threshold, *, rare: bool = True):
    ours = mask_resize_threshold(probs, index, threshold=threshold, **shapes)
    ref = mask_resize_threshold_twin(probs, index, threshold=threshold, **shapes)
    assert ours.dtype == torch.bool and ours.shape == ref.shape == (index.numel(), *shapes["ori_shape"])
    values = resize_probs(probs[index].float(), **shapes)  # the twin's float probabilities
    near = (values - threshold).abs() <= 1e-6
    assert not ((ours != ref) & ~near).any()
    if rare:  # the exception stays rare on maps without plateaus at the threshold
        assert int(near.sum()) <= max(2, ref.numel() // 10000)
    return ours, ref


@needs_ext
@pytest.mark.parametrize("kind", ["blobs", "noise"])
@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: "x".join(map(str, s["ori_shape"])))
def test_matches_twin(kind, shapes):
    bh, bw = shapes["batch_shape"]
    h4, w4 = (max(1, bh // 4), max(1, bw // 4)) if bh >= 8 else (5, 6)
    probs = _maps(kind, 6, h4, w4, seed=bh + bw)
    index = torch.tensor([3, 0, 3, 5, 1, 2, 4, 3])  # duplicates: resized once, copied
    ours, _ = _check_against_twin(probs, index, shapes, 0.5)
    assert torch.equal(ours[0], ours[2]) and torch.equal(ours[0], ours[7])


@needs_ext
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.9])
def test_thresholds_and_boundaries(threshold):
    probs = _maps("blobs", 5, 25, 38, seed=7)
    probs[2, 10:, :] = threshold  # a plateau exactly at the threshold: > is strict
    _check_against_twin(probs, torch.arange(5), SHAPES[1], threshold, rare=False)


@needs_ext
def test_from_det_logits_non_contiguous_and_empty():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 17, 10, generator=g).transpose(1, 2) * 4  # [4, 10, 17] non-contiguous
    probs = F.interpolate(logits[None], scale_factor=2, mode="bilinear", align_corners=False)[0].sigmoid()
    shapes = dict(batch_shape=(40, 68), img_shape=(37, 66), ori_shape=(55, 99))
    _check_against_twin(probs.transpose(1, 2).contiguous().transpose(1, 2), torch.tensor([1, 1, 0]), shapes, 0.5)
    empty = mask_resize_threshold(probs, torch.zeros(0, dtype=torch.int64), threshold=0.5, **shapes)
    assert empty.shape == (0, 55, 99) and empty.dtype == torch.bool
    assert mask_resize_threshold(probs, threshold=0.5, **shapes).shape == (4, 55, 99)  # default: every map


def test_twin_is_the_literal_chain():
    probs = _maps("blobs", 3, 16, 24, seed=1)
    shapes = SHAPES[2]
    m = F.interpolate(probs[None], size=shapes["batch_shape"], mode="bilinear", align_corners=False)
    m = m[:, :, : shapes["img_shape"][0], : shapes["img_shape"][1]]
    literal = F.interpolate(m, size=shapes["ori_shape"], mode="bilinear", align_corners=False)[0] > 0.5
    assert torch.equal(mask_resize_threshold_twin(probs, torch.arange(3), threshold=0.5, **shapes), literal)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_shape=(8, 8), img_shape=(9, 8), ori_shape=(4, 4)), "exceeds batch_shape"),
        (dict(batch_shape=(8, 8), img_shape=(8, 8), ori_shape=(0, 4)), "two positive sizes"),
    ],
)
def test_bad_shapes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mask_resize_threshold(torch.rand(2, 4, 4), torch.tensor([0]), **kwargs)


def test_bad_index():
    with pytest.raises(ValueError, match="int64 index"):
        mask_resize_threshold(torch.rand(2, 4, 4), torch.tensor([0.0]), batch_shape=(8, 8), img_shape=(8, 8), ori_shape=(4, 4))


@needs_ext
def test_index_out_of_range():
    with pytest.raises(RuntimeError, match="out of range"):
        mask_resize_threshold(torch.rand(2, 4, 4), torch.tensor([2]), batch_shape=(8, 8), img_shape=(8, 8), ori_shape=(4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_take_the_twin():
    probs = _maps("blobs", 3, 16, 24, seed=2)
    shapes = SHAPES[1]
    out = mask_resize_threshold(probs.cuda(), torch.arange(3).cuda(), threshold=0.5, **shapes)
    assert out.is_cuda
    assert torch.equal(out.cpu(), mask_resize_threshold_twin(probs, torch.arange(3), threshold=0.5, **shapes))
