"""The project's one COCO RLE codec (compiled core in csrc/ops/rle), byte-identical to pycocotools.

    rles = rle.encode(masks)              # [N, H, W] or [H, W] bool/uint8 -> [{"size": [H, W], "counts": str}]
    masks = rle.decode(rles)              # -> [N, H, W] uint8
    rle.area(rles), rle.to_bbox(rles)     # uint32 [N], float64 [N, 4] (x, y, w, h)
    rle.from_polygons([[x0, y0, x1, y1, ...], ...], h, w)   # frPyObjects + merge
    rle.to_rle(segmentation, h, w)        # polygon list / uncompressed / compressed -> compressed

COCO RLE: runs over the column-major (Fortran) pixel order, the first run counting zeros; the
string form is pycocotools' 6-bit LEB128 variant. Used by the data loaders, the predict writers
and the evaluators. There is no Python twin: knet._C is required (a RuntimeError names the
missing build) because a second RLE implementation would be a second source of truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from knet.errors import KnetError
from knet.extension import ext

RleDict = dict[str, Any]


def _c():
    return ext()


def _as_list(rles: RleDict | list[RleDict]) -> list[RleDict]:
    if isinstance(rles, dict):
        return [rles]
    return list(rles)


def _call(fn, *args):
    try:
        return fn(*args)
    except ValueError as exc:
        raise KnetError(f"invalid segmentation: {exc}") from None


def encode(masks: np.ndarray) -> list[RleDict]:
    """[H, W] or [N, H, W] binary masks (bool or uint8; C or Fortran order; non-zero = fg)."""
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise KnetError(f"rle.encode expects [H, W] or [N, H, W] masks, got shape {tuple(masks.shape)}")
    if masks.dtype != np.uint8 and masks.dtype != np.bool_:
        masks = masks != 0
    return _c().rle_encode(masks.view(np.uint8))


def decode(rles: RleDict | list[RleDict]) -> np.ndarray:
    """RLE dict(s) (compressed or uncompressed) of one size -> [N, H, W] uint8 (0/1)."""
    return _call(_c().rle_decode, _as_list(rles))


def area(rles: RleDict | list[RleDict]) -> np.ndarray:
    """Foreground pixel counts, uint32 [N] (no 255-item limit, unlike pycocotools under numpy 2)."""
    return _call(_c().rle_area, _as_list(rles))


def to_bbox(rles: RleDict | list[RleDict]) -> np.ndarray:
    """Boxes [x, y, w, h] as float64 [N, 4], exactly as pycocotools' toBbox."""
    return _call(_c().rle_to_bbox, _as_list(rles))


def merge(rles: list[RleDict], *, intersect: bool = False) -> RleDict:
    """Union (or intersection) of RLEs of one size, as pycocotools' merge."""
    return _call(_c().rle_merge, list(rles), intersect)


def from_polygons(polygons: list[list[float]], h: int, w: int) -> RleDict:
    """Polygons [[x0, y0, x1, y1, ...], ...] -> one merged compressed RLE (frPyObjects + merge)."""
    return _call(_c().rle_from_polygons, polygons, int(h), int(w))


def from_bbox(boxes: np.ndarray, h: int, w: int) -> list[RleDict]:
    """Boxes [N, 4] (x, y, w, h) -> RLEs, as pycocotools' frPyObjects on boxes."""
    return _call(_c().rle_from_bbox, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), int(h), int(w))


def from_uncompressed(obj: RleDict) -> RleDict:
    """{"size": [H, W], "counts": [int, ...]} -> compressed RLE dict."""
    if not isinstance(obj, dict) or not isinstance(obj.get("counts"), (list, tuple)):
        raise KnetError("from_uncompressed expects {'size': [h, w], 'counts': [ints]}")
    return _call(_c().rle_to_rle, obj, 0, 0)


def to_rle(segmentation: list | RleDict, h: int, w: int) -> RleDict:
    """Any COCO segmentation (polygon list, uncompressed or compressed RLE) -> compressed RLE.

    Polygons are rasterised at (h, w); RLE inputs keep their own "size" (pycocotools annToRLE).
    """
    return _call(_c().rle_to_rle, segmentation, int(h), int(w))


def counts(rle: RleDict) -> np.ndarray:
    """The run lengths (uint32) of one RLE dict."""
    return _call(_c().rle_counts, rle)
