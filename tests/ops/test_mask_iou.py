"""knet.ops.mask_iou against pycocotools' maskUtils.iou and the PyTorch twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as cmask

from knet.ops import rle
from knet.ops.mask_iou import mask_iou, mask_iou_packed, mask_iou_twin, pack_masks, _pack_twin


def _masks(rng, n, h, w):
    out = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        for _ in range(rng.integers(0, 3)):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            out[i, y0 : rng.integers(y0, h + 1), x0 : rng.integers(x0, w + 1)] = 1
    return out


@pytest.mark.parametrize("shape", [(7, 9, 1, 1), (13, 6, 37, 29), (5, 4, 3, 517), (1, 1, 64, 64)])
def test_rle_iou_bit_identical(shape):
    rng = np.random.default_rng(sum(shape))
    m, n, h, w = shape
    dm, gm = _masks(rng, m, h, w), _masks(rng, n, h, w)
    dm[0] = 0  # empty detection
    gm[-1, :, -1] = 1  # touches the border
    crowd = (rng.random(n) < 0.4).astype(np.uint8)
    d, g = rle.encode(dm), rle.encode(gm)
    ref = cmask.iou([cmask.encode(np.asfortranarray(x)) for x in dm], [cmask.encode(np.asfortranarray(x)) for x in gm], crowd.tolist())
    ours = mask_iou(d, g, crowd)
    assert ours.dtype == np.float64 and ours.shape == (m, n)
    assert np.array_equal(ours, np.asarray(ref).reshape(m, n))
    # dense numpy and torch paths, and the twin, are identical to the RLE path
    assert np.array_equal(mask_iou(dm, gm, crowd), ours)
    t = mask_iou(torch.from_numpy(dm), torch.from_numpy(gm).bool(), torch.from_numpy(crowd))
    assert t.dtype == torch.float64 and np.array_equal(t.numpy(), ours)
    assert np.array_equal(mask_iou_twin(torch.from_numpy(dm), torch.from_numpy(gm), crowd).numpy(), ours)


def test_packed_and_noncontiguous():
    rng = np.random.default_rng(5)
    dm = torch.from_numpy(_masks(rng, 6, 70, 40))
    gm = torch.from_numpy(_masks(rng, 4, 70, 40))
    assert torch.equal(pack_masks(dm), _pack_twin(dm))
    ref = mask_iou_twin(dm, gm, None)
    assert torch.equal(mask_iou_packed(pack_masks(dm), pack_masks(gm), None), ref)
    dt_nc = dm.transpose(1, 2).contiguous().transpose(1, 2)  # non-contiguous view
    assert not dt_nc.is_contiguous()
    assert torch.equal(mask_iou(dt_nc, gm), ref)


def test_empty_inputs():
    assert mask_iou([], [], []).shape == (0, 0)
    g = rle.encode(np.ones((2, 4, 4), np.uint8))
    assert mask_iou([], g, [0, 1]).shape == (0, 2)
    assert mask_iou(np.zeros((0, 4, 4), np.uint8), np.ones((2, 4, 4), np.uint8)).shape == (0, 2)


def test_size_mismatch_gives_minus_one():
    d = rle.encode(np.ones((1, 4, 4), np.uint8))
    g = rle.encode(np.ones((1, 5, 5), np.uint8))
    ref = cmask.iou([cmask.encode(np.ones((4, 4, 1), np.uint8, order="F"))[0]], [cmask.encode(np.ones((5, 5, 1), np.uint8, order="F"))[0]], [0])
    assert mask_iou(d, g, [0])[0, 0] == ref[0][0] == -1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(6)
    dm = torch.from_numpy(_masks(rng, 9, 33, 65))
    gm = torch.from_numpy(_masks(rng, 7, 33, 65))
    crowd = torch.tensor([0, 1, 0, 0, 1, 0, 0])
    assert torch.equal(mask_iou(dm.cuda(), gm.cuda(), crowd).cpu(), mask_iou(dm, gm, crowd))


def _blobs(rng, n, h, w):
    """Ellipses (one interval per column: the column-profile path) and non-convex masks (two
    intervals in a column, random noise: the run-merge path), some empty, some on the border."""
    yy, xx = np.mgrid[:h, :w]
    out = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        kind = i % 4
        if kind == 0:
            continue
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.5, max(h / 2, 1)), rng.uniform(0.5, max(w / 2, 1))
        out[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        if kind == 2:
            out[i, h // 3 : h // 3 + 2] = 0  # splits columns into two runs
        elif kind == 3:
            out[i] |= rng.random((h, w)) < 0.05
    return out


@pytest.mark.parametrize("shape", [(40, 17, 48, 64), (9, 5, 1, 70), (6, 3, 70, 1), (120, 20, 96, 128)])
def test_rle_iou_many_masks_threads_and_profiles(shape):
    m, n, h, w = shape
    rng = np.random.default_rng(m * n)
    dm, gm = _blobs(rng, m, h, w), _blobs(rng, n, h, w)
    crowd = (np.arange(n) % 3 == 0).astype(np.uint8)
    d = cmask.encode(np.asfortranarray(dm.transpose(1, 2, 0)))
    g = cmask.encode(np.asfortranarray(gm.transpose(1, 2, 0)))
    ref = np.asarray(cmask.iou(d, g, crowd.tolist())).reshape(m, n)
    for threads in (1, 2):
        prev = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            assert np.array_equal(mask_iou(d, g, crowd), ref)  # bytes counts
        finally:
            torch.set_num_threads(prev)
    as_str = [{"size": r["size"], "counts": r["counts"].decode()} for r in d]
    assert np.array_equal(mask_iou(as_str, tuple(g), crowd.tolist()), ref)  # str counts, tuple input


def test_rle_iou_mixed_sizes_and_list_counts():
    rng = np.random.default_rng(11)
    dm = _blobs(rng, 8, 20, 30)
    d = cmask.encode(np.asfortranarray(dm.transpose(1, 2, 0)))
    g = d[:3] + cmask.encode(np.ones((21, 30, 2), np.uint8, order="F")) + cmask.encode(np.ones((20, 31, 1), np.uint8, order="F"))
    crowd = [0, 1, 0, 1, 0, 0]
    ref = np.asarray(cmask.iou(d, g, crowd)).reshape(8, 6)
    assert (ref == -1).any()
    assert np.array_equal(mask_iou(d, g, crowd), ref)
    # uncompressed counts (lists of ints) with zero-length runs inserted: the same masks, but
    # rleToBbox sees the extra runs (an empty mask gets a non-empty box), so compare with
    # pycocotools on the same counts
    lists = [{"size": r["size"], "counts": _counts(r)} for r in d[:3]]
    ref_lists = np.asarray(cmask.iou(cmask.frPyObjects(lists, 20, 30), g, crowd)).reshape(3, 6)
    assert np.array_equal(mask_iou(lists, g, crowd), ref_lists)


def _counts(r):
    """Run lengths of a compressed RLE (background first) with zero-length runs inserted."""
    mask = cmask.decode(r).flatten(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(mask)) + 1, [mask.size]])
    runs = np.diff(bounds).tolist()
    if mask[0]:
        runs = [0] + runs
    return runs[:1] + [0, 0] + runs[1:] + [0, 0]


def test_rle_iou_zero_length_runs_follow_the_walk():
    """pycocotools' run walk stops early when both masks reach empty runs at once (here at the
    start: IoU 0 although the masks overlap); knet follows it for such counts."""
    d = [{"size": [5, 6], "counts": [0, 0, 0, 9, 0, 0, 1, 20]}]
    g = [{"size": [5, 6], "counts": [0, 0, 2, 1, 12, 1, 6, 2, 6, 0, 0]}, {"size": [5, 6], "counts": [3, 1, 26, 0]}]
    ref = np.asarray(cmask.iou(cmask.frPyObjects(d, 5, 6), cmask.frPyObjects(g, 5, 6), [0, 1])).reshape(1, 2)
    assert ref[0, 0] == 0
    assert np.array_equal(mask_iou(d, g, [0, 1]), ref)
    assert np.array_equal(mask_iou(cmask.frPyObjects(d, 5, 6), cmask.frPyObjects(g, 5, 6), [0, 1]), ref)
