"""knet.ops.rle against pycocotools (byte-identical strings, areas, boxes, polygons)."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as cmask

from knet.errors import KnetError
from knet.ops import rle


def _random_masks(rng, n, h, w, p=0.5, blobs=True):
    if not blobs:
        return (rng.random((n, h, w)) < p).astype(np.uint8)
    out = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        for _ in range(rng.integers(0, 4)):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            y1, x1 = rng.integers(y0, h + 1), rng.integers(x0, w + 1)
            out[i, y0:y1, x0:x1] ^= 1
    return out


def _ref_encode(masks):
    return cmask.encode(np.asfortranarray(masks.transpose(1, 2, 0)))


@pytest.mark.parametrize("shape", [(5, 1, 1), (4, 3, 517), (6, 37, 29), (3, 64, 64), (0, 8, 9)])
def test_encode_matches_pycocotools(shape):
    rng = np.random.default_rng(0)
    for blobs in (True, False):
        m = _random_masks(rng, *shape, blobs=blobs)
        ours = rle.encode(m)
        ref = _ref_encode(m) if shape[0] else []
        assert [r["counts"] for r in ours] == [r["counts"].decode() for r in ref]
        assert all(r["size"] == [shape[1], shape[2]] for r in ours)


def test_encode_layouts_and_dtypes():
    rng = np.random.default_rng(1)
    m = _random_masks(rng, 3, 41, 23)
    expect = [r["counts"] for r in rle.encode(m)]
    assert [r["counts"] for r in rle.encode(np.asfortranarray(m))] == expect
    assert [r["counts"] for r in rle.encode(m.astype(bool))] == expect
    assert [r["counts"] for r in rle.encode(m * 255)] == expect
    big = np.zeros((3, 82, 46), np.uint8)
    big[:, ::2, ::2] = m
    assert [r["counts"] for r in rle.encode(big[:, ::2, ::2])] == expect  # non-contiguous
    assert rle.encode(m[0])[0]["counts"] == expect[0]  # [H, W]
    # full and empty masks
    assert rle.encode(np.ones((7, 5), np.uint8))[0]["counts"] == _ref_encode(np.ones((1, 7, 5), np.uint8))[0]["counts"].decode()
    assert rle.encode(np.zeros((7, 5), np.uint8))[0]["counts"] == _ref_encode(np.zeros((1, 7, 5), np.uint8))[0]["counts"].decode()


def test_decode_area_bbox_roundtrip():
    rng = np.random.default_rng(2)
    m = _random_masks(rng, 8, 53, 71)
    m[0] = 0
    m[1] = 1
    m[2, :, -1] = 1  # touching the border
    ours = rle.encode(m)
    np.testing.assert_array_equal(rle.decode(ours), m)
    ref = _ref_encode(m)
    np.testing.assert_array_equal(rle.area(ours), cmask.area(ref))
    np.testing.assert_array_equal(rle.to_bbox(ours), cmask.toBbox(ref))
    # bytes counts and uncompressed counts are accepted too
    np.testing.assert_array_equal(rle.decode(ref), m)
    unc = [{"size": r["size"], "counts": rle.counts(r).tolist()} for r in ours]
    assert [rle.from_uncompressed(u)["counts"] for u in unc] == [r["counts"] for r in ours]
    assert [rle.to_rle(u, 0, 0)["counts"] for u in unc] == [r["counts"] for r in ours]


def test_area_more_than_255():
    m = np.zeros((300, 4, 4), np.uint8)
    m[:, 1:3, 1:3] = 1
    assert (rle.area(rle.encode(m)) == 4).all()


def test_polygons_match_pycocotools():
    rng = np.random.default_rng(3)
    for trial in range(600):
        h, w = int(rng.integers(1, 120)), int(rng.integers(1, 120))
        polys = []
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(3, 9))
            pts = rng.uniform(-5, max(h, w) + 5, size=2 * k)
            if trial % 3 == 0:
                pts = np.round(pts * 2) / 2  # half-pixel coordinates hit the rounding edges
            polys.append(pts.tolist())
        ref = cmask.merge(cmask.frPyObjects(polys, h, w))
        ours = rle.from_polygons(polys, h, w)
        assert ours["counts"] == ref["counts"].decode(), (trial, polys)
        assert rle.to_rle(polys, h, w)["counts"] == ours["counts"]


def test_bbox_like_polygon_quirk_and_boxes():
    # a 2-point polygon after a real one is rasterised like pycocotools' frPoly
    polys = [[1.0, 1.0, 9.0, 1.0, 9.0, 8.0], [2.0, 3.0, 10.0, 7.5]]
    ref = cmask.merge(cmask.frPyObjects(polys, 20, 30))
    assert rle.from_polygons(polys, 20, 30)["counts"] == ref["counts"].decode()
    boxes = np.array([[0, 0, 5, 5], [1.5, 2.25, 7.7, 3.1], [-3, -3, 100, 100]], np.float64)
    ref = cmask.frPyObjects(boxes, 17, 19)
    assert [r["counts"] for r in rle.from_bbox(boxes, 17, 19)] == [r["counts"].decode() for r in ref]


def test_merge_matches_pycocotools():
    rng = np.random.default_rng(4)
    m = _random_masks(rng, 5, 31, 17)
    ours = rle.encode(m)
    ref = _ref_encode(m)
    for inter in (False, True):
        assert rle.merge(ours, intersect=inter)["counts"] == cmask.merge(ref, intersect=inter)["counts"].decode()


def test_bad_input_is_knet_error():
    with pytest.raises(KnetError):
        rle.decode([{"size": [2, 2]}])
    with pytest.raises(KnetError):
        rle.decode([{"size": [2, 2], "counts": [1, 2]}])  # sums to 3 != 4
    with pytest.raises(KnetError):
        rle.to_rle(5, 3, 3)
    with pytest.raises(KnetError):
        rle.from_polygons([], 3, 3)
    with pytest.raises(KnetError):
        rle.from_polygons([["a", "b", "c", "d", "e", "f"]], 3, 3)
    with pytest.raises(KnetError):
        rle.encode(np.zeros((2, 2, 2, 2), np.uint8))


def test_bbox_with_zero_length_runs_matches_pycocotools():
    # pycocotools 2.0.11's rleToBbox skips empty foreground runs; one routine serves knet's
    # to_bbox, mask_iou and the COCO evaluator (knet::rle::BboxBuilder)
    cases = [
        [5, 0, 18, 4, 30, 0, 20, 2, 21],  # empty runs outside the box
        [0, 0, 100],                      # only an empty run: wraps like maskApi's uint math
        [8, 4, 88],                       # a run across a column boundary
        [0, 3, 0, 0, 90, 7],              # empty background runs between foreground runs
        [97, 3, 0, 0],
    ]
    for counts in cases:
        unc = {"size": [10, 10], "counts": counts}
        ref = cmask.frPyObjects(unc, 10, 10)
        np.testing.assert_array_equal(rle.to_bbox([rle.from_uncompressed(unc)]), cmask.toBbox([ref]))
        np.testing.assert_array_equal(rle.to_bbox([{"size": [10, 10], "counts": ref["counts"]}]), cmask.toBbox([ref]))
