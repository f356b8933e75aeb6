"""Deterministic synthetic COCO-panoptic and semantic sets (PNG folders + JSON) for tests and bench.

    write_panoptic_set(out_dir, num_images=20, seed=0)
    # -> out_dir/{gt.json, gt/, pred.json, pred/}

Ground truth: Voronoi stuff regions, thing ellipses on top, VOID strips, crowd regions of thing
categories; ids are random 24-bit colours; areas are the PNG pixel counts. Predictions: jittered
stuff regions and things (sometimes of the wrong class), dropped things, false positives, some
inside crowd regions, their own VOID pixels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = [(480, 640), (427, 640), (640, 480), (375, 500), (512, 512), (333, 500)]


def panoptic_categories(num_things: int = 8, num_stuff: int = 5) -> list[dict]:
    cats = [{"id": 1 + 2 * i, "name": f"thing_{i}", "isthing": 1, "supercategory": "t"} for i in range(num_things)]
    cats += [{"id": 100 + 3 * i, "name": f"stuff_{i}", "isthing": 0, "supercategory": "s"} for i in range(num_stuff)]
    return cats


def _ellipse(h, w, cy, cx, ry, rx):
    y0, y1 = max(0, int(cy - ry)), min(h, int(cy + ry) + 1)
    x0, x1 = max(0, int(cx - rx)), min(w, int(cx + rx) + 1)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    m = ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.0
    return (slice(y0, y1), slice(x0, x1)), m


def _to_rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], -1).astype(np.uint8)


def _segments(ids: np.ndarray, cat_of: dict, crowd: set) -> list[dict]:
    u, c = np.unique(ids, return_counts=True)
    out = []
    for i, n in zip(u.tolist(), c.tolist()):
        if i == 0:
            continue
        out.append({"id": i, "category_id": cat_of[i], "area": n, "iscrowd": int(i in crowd)})
    return out


def _scene(rng, h, w, cats, centers, stuff_cats, things, new_id):
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.stack([(yy - cy) ** 2 + (xx - cx) ** 2 for cy, cx in centers], 0)
    region = np.argmin(d, 0)
    ids = np.zeros((h, w), np.int64)
    cat_of = {}
    for r, cat in enumerate(stuff_cats):
        i = new_id()
        ids[region == r] = i
        cat_of[i] = cat
    crowd = set()
    for cat, cy, cx, ry, rx, is_crowd in things:
        sl, m = _ellipse(h, w, cy, cx, ry, rx)
        i = new_id()
        ids[sl][m] = i
        cat_of[i] = cat
        if is_crowd:
            crowd.add(i)
    return ids, cat_of, crowd


def make_panoptic_image(rng, h, w, cats):
    """(gt_ids, gt_segments, pred_ids, pred_segments) for one synthetic image."""
    things_c = [c["id"] for c in cats if c["isthing"]]
    stuff_c = [c["id"] for c in cats if not c["isthing"]]
    used = set()

    def new_id():
        while True:
            i = int(rng.integers(1, 1 << 24))
            if i not in used:
                used.add(i)
                return i

    k = int(rng.integers(2, 5))
    centers = [(rng.uniform(0, h), rng.uniform(0, w)) for _ in range(k)]
    stuff = [stuff_c[int(rng.integers(len(stuff_c)))] for _ in range(k)]
    things = []
    for _ in range(int(rng.integers(2, 10))):
        r = float(np.exp(rng.uniform(np.log(4), np.log(min(h, w) / 3))))
        things.append((things_c[int(rng.integers(len(things_c)))], rng.uniform(0, h), rng.uniform(0, w), r * rng.uniform(0.6, 1.4), r * rng.uniform(0.6, 1.4), rng.random() < 0.12))
    gt, gcat, gcrowd = _scene(rng, h, w, cats, centers, stuff, things, new_id)
    gt[: int(rng.integers(0, 6)), :] = 0  # VOID strip
    if rng.random() < 0.5:
        y, x = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 20))
        gt[y : y + 20, x : x + 20] = 0

    p_centers = [(cy + rng.normal(0, 10), cx + rng.normal(0, 10)) for cy, cx in centers]
    p_stuff = [c if rng.random() < 0.85 else stuff_c[int(rng.integers(len(stuff_c)))] for c in stuff]
    p_things = []
    for cat, cy, cx, ry, rx, is_crowd in things:
        if is_crowd:  # a few predictions inside the crowd region
            for _ in range(int(rng.integers(1, 4))):
                p_things.append((cat, cy + rng.normal(0, ry / 3), cx + rng.normal(0, rx / 3), ry / 3, rx / 3, False))
            continue
        if rng.random() < 0.15:
            continue
        c = cat if rng.random() < 0.9 else things_c[int(rng.integers(len(things_c)))]
        j = rng.uniform(0.0, 0.35)
        p_things.append((c, cy + rng.normal(0, j * ry), cx + rng.normal(0, j * rx), ry * rng.uniform(0.75, 1.25), rx * rng.uniform(0.75, 1.25), False))
    for _ in range(int(rng.integers(0, 3))):
        p_things.append((things_c[int(rng.integers(len(things_c)))], rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 40), rng.uniform(3, 40), False))
    pred, pcat, _ = _scene(rng, h, w, cats, p_centers, p_stuff, p_things, new_id)
    if rng.random() < 0.5:
        y, x = int(rng.integers(0, h - 30)), int(rng.integers(0, w - 30))
        pred[y : y + 30, x : x + 30] = 0
    return gt, _segments(gt, gcat, gcrowd), pred, _segments(pred, pcat, set())


def write_panoptic_set(out_dir: str | os.PathLike, *, num_images: int, seed: int = 0, sizes=SIZES) -> dict:
    """Writes gt.json, gt/, pred.json, pred/ under out_dir; returns the four paths."""
    out = Path(out_dir)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    (out / "pred").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cats = panoptic_categories()
    images, gt_anns, pred_anns = [], [], []
    for n in range(num_images):
        h, w = sizes[int(rng.integers(len(sizes)))]
        gt, gseg, pred, pseg = make_panoptic_image(rng, h, w, cats)
        img_id = 500 + n
        name = f"{img_id:012d}.png"
        Image.fromarray(_to_rgb(gt)).save(out / "gt" / name)
        Image.fromarray(_to_rgb(pred)).save(out / "pred" / name)
        images.append({"id": img_id, "height": h, "width": w, "file_name": name.replace(".png", ".jpg")})
        gt_anns.append({"image_id": img_id, "file_name": name, "segments_info": gseg})
        pred_anns.append({"image_id": img_id, "file_name": name, "segments_info": pseg})
    (out / "gt.json").write_text(json.dumps({"images": images, "annotations": gt_anns, "categories": cats}))
    (out / "pred.json").write_text(json.dumps({"images": images, "annotations": pred_anns, "categories": cats}))
    return {"gt_json": out / "gt.json", "gt_dir": out / "gt", "pred_json": out / "pred.json", "pred_dir": out / "pred"}


def write_semantic_set(out_dir: str | os.PathLike, *, num_images: int, num_classes: int = 19, seed: int = 0) -> dict:
    """Label PNGs (0..C-1 plus 255 ignore) in gt/ and noisy predictions in pred/ (grey PNGs)."""
    out = Path(out_dir)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    (out / "pred").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for n in range(num_images):
        h, w = SIZES[int(rng.integers(len(SIZES)))]
        h, w = h // 2 + 1, w // 2 + 3  # odd sizes, small files
        k = int(rng.integers(2, 7))
        cy, cx = rng.uniform(0, h, k), rng.uniform(0, w, k)
        yy, xx = np.mgrid[0:h, 0:w]
        region = np.argmin((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2, 0)
        labels = rng.integers(0, num_classes, k)
        gt = labels[region].astype(np.uint8)
        gt[: int(rng.integers(0, 4))] = 255
        pred = gt.copy()
        noise = rng.random((h, w)) < 0.1
        pred[noise] = rng.integers(0, num_classes, int(noise.sum()))
        pred[pred == 255] = rng.integers(0, num_classes)
        Image.fromarray(gt).save(out / "gt" / f"{n:05d}.png")
        Image.fromarray(pred).save(out / "pred" / f"{n:05d}.png")
    return {"gt_dir": out / "gt", "pred_dir": out / "pred"}
