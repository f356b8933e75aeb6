"""Deterministic synthetic COCO instance sets for evaluator tests and benchmarks.

    gt, results = make_coco_instances(num_images=50, seed=0)

Realistic COCO image sizes; about 7 ground truths per image spread over small / medium / large
(ellipse polygons with 2-decimal vertices, like COCO's), some of exactly 32x32 = 1024 and
96x96 = 9216 pixels; crowd regions stored as uncompressed RLE; `dets_per_image` detections per
image as compressed RLE (jittered copies of ground truths, several per crowd region, and false
positives), scores rounded to `score_decimals` so that ties occur. The last category never
receives a detection (a category with ground truth but no detections) and the image with the
highest id has no ground truth.
"""

from __future__ import annotations

import numpy as np

from knet.ops import rle

IMAGE_SIZES = [(480, 640), (427, 640), (640, 480), (640, 427), (375, 500), (500, 375), (512, 512), (333, 500), (481, 639)]


def _ellipse_counts(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> list[int]:
    """Column-major RLE counts of a raster ellipse (canonical: runs touching across columns merge)."""
    x0, x1 = max(0, int(np.floor(cx - rx))), min(w - 1, int(np.ceil(cx + rx)))
    if x1 < x0:
        return [h * w]
    xs = np.arange(x0, x1 + 1)
    t = 1.0 - ((xs + 0.5 - cx) / max(rx, 1e-6)) ** 2
    half = ry * np.sqrt(np.clip(t, 0.0, None))
    ys = np.clip(np.round(cy - half), 0, h).astype(np.int64)
    ye = np.clip(np.round(cy + half), 0, h).astype(np.int64)
    keep = ye > ys
    if not keep.any():
        return [h * w]
    starts = xs[keep] * h + ys[keep]
    ends = xs[keep] * h + ye[keep]
    # merge runs that touch across a column boundary
    brk = np.nonzero(starts[1:] != ends[:-1])[0]
    s = np.concatenate([[starts[0]], starts[1:][brk]])
    e = np.concatenate([ends[:-1][brk], [ends[-1]]])
    counts = np.empty(2 * len(s) + 1, np.int64)
    counts[0] = s[0]
    counts[1:-1:2] = e - s
    counts[2:-1:2] = s[1:] - e[:-1]
    counts[-1] = h * w - e[-1]
    return counts.tolist()


def _rect_counts(h: int, w: int, y: int, x: int, rh: int, rw: int) -> list[int]:
    m = np.zeros((h, w), np.uint8)
    m[y : y + rh, x : x + rw] = 1
    return rle.counts(rle.encode(m)[0]).tolist()


def _polygon(rng, cy, cx, ry, rx, h, w) -> list[float]:
    k = int(rng.integers(8, 25))
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = rng.uniform(0.85, 1.0, k)
    px = np.clip(cx + rx * rad * np.cos(ang), 0, w)
    py = np.clip(cy + ry * rad * np.sin(ang), 0, h)
    return np.round(np.stack([px, py], 1).reshape(-1), 2).tolist()


def _ellipses_counts(h: int, w: int, cy, cx, ry, rx) -> list[np.ndarray]:
    """Vectorised raster ellipses -> column-major RLE counts per ellipse.

    Runs end at row h-1 at the latest, so runs never touch across a column boundary and the
    counts are canonical without a merge step.
    """
    n = len(cy)
    x0 = np.clip(np.floor(cx - rx), 0, w - 1).astype(np.int64)
    x1 = np.clip(np.ceil(cx + rx), 0, w - 1).astype(np.int64)
    ncol = np.maximum(x1 - x0 + 1, 0)
    det = np.repeat(np.arange(n), ncol)
    xs = np.arange(ncol.sum()) - np.repeat(np.cumsum(ncol) - ncol, ncol) + x0[det]
    t = 1.0 - ((xs + 0.5 - cx[det]) / rx[det]) ** 2
    half = ry[det] * np.sqrt(np.clip(t, 0.0, None))
    ys = np.clip(np.round(cy[det] - half), 0, h - 1).astype(np.int64)
    ye = np.clip(np.round(cy[det] + half), 0, h - 1).astype(np.int64)
    keep = ye > ys
    det, s, e = det[keep], xs[keep] * h + ys[keep], xs[keep] * h + ye[keep]
    bounds = np.searchsorted(det, np.arange(n + 1))
    out = []
    for k in range(n):
        a, b = bounds[k], bounds[k + 1]
        if a == b:
            out.append(np.array([h * w], np.int64))
            continue
        sk, ek = s[a:b], e[a:b]
        c = np.empty(2 * (b - a) + 1, np.int64)
        c[0] = sk[0]
        c[1:-1:2] = ek - sk
        c[2:-1:2] = sk[1:] - ek[:-1]
        c[-1] = h * w - ek[-1]
        out.append(c)
    return out


def _detections(rng, img_id, h, w, objs, det_cats, n_det, score_decimals) -> list[dict]:
    params = []  # (cat, cy, cx, ry, rx)
    for cat, cy, cx, ry, rx, crowd in objs:
        if cat not in det_cats:
            continue
        if crowd:  # several detections inside a crowd region
            for _ in range(int(rng.integers(2, 6))):
                params.append((cat, cy + rng.normal(0, 0.4 * ry), cx + rng.normal(0, 0.4 * rx), ry * 0.35, rx * 0.35))
        else:
            for _ in range(int(rng.integers(1, 3))):
                params.append((cat, cy + rng.normal(0, 0.06 * ry), cx + rng.normal(0, 0.06 * rx),
                               ry * rng.uniform(0.85, 1.15), rx * rng.uniform(0.85, 1.15)))
    params = params[:n_det]
    m = n_det - len(params)
    near = rng.random(m) < 0.5 if objs else np.zeros(m, bool)
    pick = rng.integers(0, max(len(objs), 1), m)
    wrong = rng.random(m) < 0.5
    rand_cat = np.asarray(det_cats)[rng.integers(0, len(det_cats), m)]
    r = np.exp(rng.uniform(np.log(2.0), np.log(min(h, w) / 3), m))
    u = rng.uniform(0.5, 1.5, (m, 4))
    fy, fx = rng.uniform(0, h, m), rng.uniform(0, w, m)
    for j in range(m):
        if near[j]:
            cat0, cy, cx, ry, rx, _ = objs[pick[j]]
            params.append((int(rand_cat[j]) if (wrong[j] or cat0 not in det_cats) else cat0, cy + 0.3 * ry * (u[j, 0] - 1), cx + 0.3 * rx * (u[j, 1] - 1), ry * u[j, 2], rx * u[j, 3]))
        else:
            params.append((int(rand_cat[j]), fy[j], fx[j], r[j], r[j] * u[j, 2]))
    cats = [p[0] for p in params]
    arr = np.asarray([p[1:] for p in params], np.float64).reshape(-1, 4)
    counts = _ellipses_counts(h, w, arr[:, 0], arr[:, 1], np.maximum(arr[:, 2], 0.8), np.maximum(arr[:, 3], 0.8))
    n_true = len(params) - m  # detections derived from ground truths score higher on average
    raw = np.concatenate([rng.uniform(0.25, 1.0, n_true), rng.uniform(0.0, 0.8, m)])
    scores = np.round(raw, score_decimals)
    squares = np.nonzero(rng.random(len(params)) < 0.01)[0]  # exact 32x32 / 96x96 detections
    for j in squares:
        side = 32 if j % 2 else 96
        y = int(np.clip(arr[j, 0] - side / 2, 0, h - side))
        x = int(np.clip(arr[j, 1] - side / 2, 0, w - side))
        counts[j] = np.asarray(_rect_counts(h, w, y, x, side, side))
    return [
        {"image_id": img_id, "category_id": int(c), "score": float(sc),
         "segmentation": rle.from_uncompressed({"size": [h, w], "counts": cnt.tolist()})}
        for c, sc, cnt in zip(cats, scores, counts)
    ]


def make_coco_instances(
    *,
    num_images: int,
    dets_per_image: int = 100,
    gt_per_image: float = 7.0,
    num_categories: int = 12,
    score_decimals: int = 5,
    seed: int = 0,
) -> tuple[dict, list[dict]]:
    """(ground-truth dict, results list), deterministic in all arguments."""
    rng = np.random.default_rng(seed)
    cats = [{"id": 3 * c + 1, "name": f"class_{c}", "supercategory": "thing"} for c in range(num_categories)]
    cat_ids = [c["id"] for c in cats]
    det_cats = cat_ids[:-1] if num_categories > 1 else cat_ids
    images, anns, results = [], [], []
    ann_id = 1
    for i in range(num_images):
        img_id = 1000 + 7 * i
        h, w = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
        images.append({"id": img_id, "height": h, "width": w, "file_name": f"{img_id:012d}.jpg"})
        n_gt = 0 if i == num_images - 1 else int(rng.poisson(gt_per_image))
        objs = []  # (cat, cy, cx, ry, rx, crowd)
        for _ in range(n_gt):
            cat = cat_ids[int(rng.integers(num_categories))]
            kind = rng.random()
            crowd = rng.random() < 0.06
            if kind < 0.06:  # exact 32x32 or 96x96 square
                side = 32 if rng.random() < 0.5 else 96
                y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
                seg = rle.from_uncompressed({"size": [h, w], "counts": _rect_counts(h, w, y, x, side, side)})
                area = side * side
                anns.append({"id": ann_id, "image_id": img_id, "category_id": cat, "iscrowd": 0, "area": area,
                             "bbox": [float(x), float(y), float(side), float(side)], "segmentation": seg})
                objs.append((cat, y + side / 2, x + side / 2, side / 2, side / 2, False))
                ann_id += 1
                continue
            # log-uniform radius: small (< 32^2), medium and large objects
            r = float(np.exp(rng.uniform(np.log(2.5), np.log(min(h, w) / 2.2))))
            ry, rx = r * rng.uniform(0.6, 1.4), r * rng.uniform(0.6, 1.4)
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            if crowd:
                counts = _ellipse_counts(h, w, cy, cx, ry * 1.5, rx * 1.5)
                seg = {"size": [h, w], "counts": counts}
            else:
                polys = [_polygon(rng, cy, cx, ry, rx, h, w)]
                if rng.random() < 0.1:  # a second part
                    polys.append(_polygon(rng, cy + ry, cx + rx, ry / 2, rx / 2, h, w))
                seg = polys
            enc = rle.to_rle(seg, h, w)
            area = int(rle.area(enc)[0])
            bbox = rle.to_bbox(enc)[0].tolist()
            anns.append({"id": ann_id, "image_id": img_id, "category_id": cat, "iscrowd": int(crowd),
                         "area": float(area), "bbox": bbox, "segmentation": seg})
            objs.append((cat, cy, cx, ry * (1.5 if crowd else 1), rx * (1.5 if crowd else 1), crowd))
            ann_id += 1
        results.extend(_detections(rng, img_id, h, w, objs, det_cats, dets_per_image, score_decimals))
    gt = {"info": {"description": "knet synthetic COCO"}, "images": images, "annotations": anns, "categories": cats}
    return gt, results
