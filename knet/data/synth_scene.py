"""Deterministic synthetic scenes: textured stuff regions plus overlapping thing shapes.

One scene = sky above a wavy horizon, grass below, sometimes a brick wall block; then one to
four shapes (circle, rectangle, triangle), each a flat class colour with per-instance jitter, a
dark outline and mild noise, painted in order so later shapes occlude earlier ones (every shape
keeps at least 45% of its area visible). Some scenes also hold a "crowd" (a cluster of tiny
circles annotated as one region) and an unlabelled grey blob ("other": VOID / ADE label 0).

Shapes are rasterised from their polygons with the COCO polygon rasteriser (knet.ops.rle), so a
polygon annotation decodes to exactly the painted pixels. `make_scene(seed, index, h, w)` depends
only on its arguments, never on how many scenes are generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# name, COCO category id, base RGB colour
THING_CLASSES: tuple[tuple[str, int, tuple[int, int, int]], ...] = (
    ("circle", 1, (220, 40, 40)),
    ("rectangle", 2, (245, 200, 30)),
    ("triangle", 3, (150, 60, 210)),
)
STUFF_CLASSES: tuple[tuple[str, int, tuple[int, int, int]], ...] = (
    ("sky", 101, (140, 190, 240)),
    ("grass", 102, (60, 150, 50)),
    ("wall", 103, (165, 95, 75)),
)
SKY, GRASS, WALL = 0, 1, 2


@dataclass
class SynthInstance:
    label: int  # index into THING_CLASSES
    polygon: list[float] | None  # flat [x0, y0, x1, y1, ...] (None for crowds)
    full: np.ndarray  # [H, W] bool, the whole shape
    visible: np.ndarray = field(repr=False, default=None)  # [H, W] bool, after occlusion
    iscrowd: bool = False


@dataclass
class SynthScene:
    image: np.ndarray  # [H, W, 3] uint8 RGB
    stuff: np.ndarray  # [H, W] int64: stuff index, or -1 where covered by "other"
    instances: list[SynthInstance]
    other: np.ndarray  # [H, W] bool, unlabelled pixels (VOID / ADE "other")


def _polygon_mask(polygon: list[float], h: int, w: int) -> np.ndarray:
    from knet.ops import rle

    return rle.decode(rle.from_polygons([polygon], h, w))[0].astype(bool)  # [H, W]


def _shape_polygon(rng: np.random.Generator, kind: int, cx: float, cy: float, r: float) -> list[float]:
    if kind == 0:  # circle as a 32-gon
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
    elif kind == 1:  # rectangle, aspect 0.5-1.5, rotated up to 30 degrees
        a = r * rng.uniform(0.75, 1.1)
        b = a * rng.uniform(0.5, 1.0)
        if rng.random() < 0.5:
            a, b = b, a
        ang = rng.uniform(-np.pi / 6, np.pi / 6)
        corners = np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        pts = corners @ rot.T + [cx, cy]
    else:  # triangle, roughly equilateral, random rotation
        ang = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.2, 0.2, 3)
        rr = r * rng.uniform(1.0, 1.25, 3)
        pts = np.stack([cx + rr * np.cos(ang), cy + rr * np.sin(ang)], 1)
    return [round(float(v), 2) for v in pts.reshape(-1)]


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of `mask` with a 4-neighbour outside it (a 1-pixel inner border), widened to 2."""
    inner = mask.copy()
    for _ in range(2):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner


def _stuff_layer(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    horizon = h * rng.uniform(0.35, 0.6) + h * 0.06 * np.sin(xx[0] / w * 2 * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, 6))
    stuff = np.where(yy < horizon[None, :], SKY, GRASS).astype(np.int64)
    if rng.random() < 0.6:  # a wall block standing on the horizon
        x0 = int(rng.uniform(0, 0.5) * w)
        x1 = int(min(w, x0 + rng.uniform(0.3, 0.6) * w))
        top = int(h * rng.uniform(0.1, 0.3))
        bottom = int(h * rng.uniform(0.55, 0.75))
        stuff[top:bottom, x0:x1] = WALL
    img = np.zeros((h, w, 3), np.float64)
    # sky: vertical gradient + fine noise
    sky = np.array(STUFF_CLASSES[SKY][2], np.float64)
    grad = (yy / h)[..., None] * np.array([40.0, 25.0, 10.0])
    img = np.where((stuff == SKY)[..., None], sky + grad, img)
    # grass: column stripes + speckle
    stripes = rng.normal(0, 14, w)[None, :, None] * np.array([0.6, 1.0, 0.5])
    img = np.where((stuff == GRASS)[..., None], np.array(STUFF_CLASSES[GRASS][2], np.float64) + stripes, img)
    # wall: bricks (rows of 8 px, bricks 16 px wide, alternate rows shifted) with light mortar
    row = (yy // 8).astype(int)
    mortar = ((yy % 8) < 1.5) | (((xx + 8 * (row % 2)) % 16) < 1.5)
    brick = np.where(mortar[..., None], np.array([205.0, 200.0, 190.0]), np.array(STUFF_CLASSES[WALL][2], np.float64))
    img = np.where((stuff == WALL)[..., None], brick, img)
    img += rng.normal(0, 5, (h, w, 3))
    return stuff, img


def make_scene(seed: int, index: int, h: int, w: int, *, crowd_prob: float = 0.15, other_prob: float = 0.25) -> SynthScene:
    """Scene number `index` of the stream `seed` at size h x w (deterministic)."""
    rng = np.random.default_rng([int(seed), int(index)])
    stuff, img = _stuff_layer(rng, h, w)
    other = np.zeros((h, w), bool)
    if rng.random() < other_prob:  # an unlabelled grey ellipse
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
        ry, rx = rng.uniform(0.04, 0.08) * h, rng.uniform(0.06, 0.12) * w
        other = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        img[other] = 110 + rng.normal(0, 3, (int(other.sum()), 3))

    instances: list[SynthInstance] = []
    side = min(h, w)
    if rng.random() < crowd_prob:  # cluster of tiny circles, annotated as one crowd region
        ccx, ccy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        blob = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(5, 9))):
            px, py = ccx + rng.normal(0, side * 0.05), ccy + rng.normal(0, side * 0.05)
            blob |= _polygon_mask(_shape_polygon(rng, 0, px, py, side * rng.uniform(0.015, 0.03)), h, w)
        if blob.sum() >= 20:
            instances.append(SynthInstance(label=0, polygon=None, full=blob, visible=blob.copy(), iscrowd=True))

    n_things = int(rng.integers(1, 5)) + len(instances)
    attempts = 0
    while len(instances) < n_things and attempts < 40:
        attempts += 1
        kind = int(rng.integers(0, len(THING_CLASSES)))
        r = side * rng.uniform(0.09, 0.2)
        cx, cy = rng.uniform(r * 0.6, w - r * 0.6), rng.uniform(r * 0.6, h - r * 0.6)
        poly = _shape_polygon(rng, kind, cx, cy, r)
        full = _polygon_mask(poly, h, w)
        if full.sum() < 40:
            continue
        # occlusion check: every earlier instance must keep >= 45% of its full area
        if not all((inst.visible & ~full).sum() >= 0.45 * inst.full.sum() for inst in instances):
            continue
        for inst in instances:
            inst.visible = inst.visible & ~full
        instances.append(SynthInstance(label=kind, polygon=poly, full=full, visible=full.copy()))

    for inst in instances:  # paint in order: later shapes cover earlier ones
        base = np.array(THING_CLASSES[inst.label][2], np.float64) + rng.uniform(-18, 18, 3)
        img[inst.full] = base + rng.normal(0, 4, (int(inst.full.sum()), 3))
        if not inst.iscrowd:
            img[_outline(inst.full)] = base * 0.35
    for inst in instances:
        other &= ~inst.full
    stuff = np.where(other, -1, stuff)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return SynthScene(image=image, stuff=stuff, instances=instances, other=other)
