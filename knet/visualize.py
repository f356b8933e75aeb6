"""The one colour palette and the pictures knet draws: overlays and the per-stage figure.

    rgb = draw_overlay(image, result, class_names=names)          # [H', W', 3] uint8
    fig = stage_figure(image, [r0, r1, r2, r3], class_names=names)  # supplementary Figure A1

Colours: class c is `palette(K)[c]` everywhere (overlays, semantic label PNGs, stage figures);
instances of one class are shades of that colour, so a "person" is always a shade of the same hue.
Overlays are drawn at a display scale where the shorter side is at least `min_side` pixels, so
class names stay legible on small images; masks are upsampled with nearest neighbour.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from knet.structures import InstanceResult, PanopticResult, SemanticResult

IGNORE_LABEL = 255
INSTANCE_SCORE_THR = 0.3  # instances below this score are not drawn (the panoptic thing threshold)
MAX_DRAWN_INSTANCES = 50


def palette(num_classes: int) -> np.ndarray:
    """[K, 3] uint8: class colours, hues spaced by the golden ratio so neighbours differ."""
    k = np.arange(max(int(num_classes), 0))
    out = np.zeros((len(k), 3), dtype=np.uint8)
    for i in k:
        hue = (0.07 + i * 0.618033988749895) % 1.0
        sat = (0.85, 0.60, 0.95)[i % 3]
        val = (0.95, 0.80, 0.65)[(i // 3) % 3]
        out[i] = np.round(np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255)
    return out


def shade(color: np.ndarray, k: int) -> np.ndarray:
    """The k-th shade of a class colour (k = 0: the colour itself), for instances of one class."""
    if k == 0:
        return np.asarray(color, dtype=np.uint8)
    c = np.asarray(color, dtype=np.float64)
    step = ((k + 1) // 2) * 0.28
    step = min(step, 0.7) if k % 2 else min(step, 0.6)
    target = 255.0 if k % 2 else 0.0  # odd shades lighter, even shades darker
    return np.round(c + (target - c) * step).astype(np.uint8)


@dataclass
class _Region:
    mask: np.ndarray  # [H, W] bool at the image size
    color: np.ndarray  # [3] uint8
    text: str
    outline: bool  # instances / things get an outline, stuff and semantic classes a thin edge


def _name(class_names: list[str] | None, label: int) -> str:
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return f"class {label}"


def _things_in_reading_order(masks: list[np.ndarray]) -> list[int]:
    """Rank of each mask among its class by centroid (top-to-bottom, left-to-right), so shades stay
    stable across stages whose segment ids differ."""
    keys = []
    for m in masks:
        ys, xs = np.nonzero(m)
        keys.append((float(ys.mean()) if ys.size else 0.0, float(xs.mean()) if xs.size else 0.0))
    order = sorted(range(len(masks)), key=lambda i: keys[i])
    rank = [0] * len(masks)
    for r, i in enumerate(order):
        rank[i] = r
    return rank


def regions_of(result, *, class_names: list[str] | None, num_classes: int) -> list[_Region]:
    """Drawable regions of a result, painted in list order (later on top)."""
    colors = palette(max(num_classes, 1))

    def col(label: int) -> np.ndarray:
        return colors[label % len(colors)]

    regions: list[_Region] = []
    if isinstance(result, SemanticResult):
        label = np.asarray(result.label)
        for c in np.unique(label):
            c = int(c)
            if c == IGNORE_LABEL or c < 0:
                continue
            regions.append(_Region(label == c, col(c), _name(class_names, c), False))
    elif isinstance(result, InstanceResult):
        scores = np.asarray(result.scores, dtype=np.float64)
        keep = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= INSTANCE_SCORE_THR][:MAX_DRAWN_INSTANCES]
        by_class: dict[int, list[int]] = {}
        for i in keep:
            by_class.setdefault(int(result.labels[i]), []).append(int(i))
        shade_of: dict[int, int] = {}
        for label, idx in by_class.items():
            for i, r in zip(idx, _things_in_reading_order([np.asarray(result.masks[j], bool) for j in idx])):
                shade_of[i] = r
        for i in reversed(keep):  # lowest score first, the best instance on top
            label = int(result.labels[i])
            text = f"{_name(class_names, label)} {float(scores[i]):.2f}"
            regions.append(_Region(np.asarray(result.masks[i], bool), shade(col(label), shade_of[i]), text, True))
    elif isinstance(result, PanopticResult):
        seg_map = np.asarray(result.segment_map)
        things = [s for s in result.segments if s.is_thing]
        masks = {s.id: seg_map == s.id for s in result.segments}
        shade_of: dict[int, int] = {}
        for label in {s.label for s in things}:
            same = [s for s in things if s.label == label]
            for s, r in zip(same, _things_in_reading_order([masks[s.id] for s in same])):
                shade_of[s.id] = r
        for s in sorted(result.segments, key=lambda s: s.is_thing):  # stuff first, things on top
            if s.is_thing:
                text = f"{_name(class_names, s.label)} {s.score:.2f}"
                regions.append(_Region(masks[s.id], shade(col(s.label), shade_of[s.id]), text, True))
            else:
                regions.append(_Region(masks[s.id], col(s.label), _name(class_names, s.label), False))
    else:
        raise TypeError(f"cannot draw a {type(result).__name__}")
    return [r for r in regions if r.mask.any()]


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _display_scale(h: int, w: int, min_side: int, max_side: int) -> float:
    s = max(1.0, min_side / max(min(h, w), 1))
    return min(s, max_side / max(max(h, w), 1)) if max(h, w) * s > max_side else s


def _upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == size:
        return mask
    im = Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]), Image.NEAREST)
    return np.asarray(im) > 127


def _label_anchor(mask: np.ndarray) -> tuple[int, int]:
    """The most interior pixel of the mask (max distance to its border): (y, x)."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(y), int(x)


def _text_color(bg: np.ndarray) -> tuple[int, int, int]:
    lum = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    return (0, 0, 0) if lum > 140 else (255, 255, 255)


def draw_overlay(
    image: np.ndarray,
    result,
    *,
    class_names: list[str] | None,
    num_classes: int | None = None,
    alpha: float = 0.5,
    labels: bool = True,
    min_side: int = 512,
    max_side: int = 4096,
    font_size: int | None = None,
) -> np.ndarray:
    """Image [H, W, 3] uint8 with the result painted on: class colours at `alpha`, instance outlines,
    and a tag with the class name (and score) at the most interior point of each region."""
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    k = num_classes if num_classes is not None else (len(class_names) if class_names else 256)
    regions = regions_of(result, class_names=class_names, num_classes=k)

    s = _display_scale(h, w, min_side, max_side)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    base = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR), dtype=np.float32) if s != 1 else image.astype(np.float32)
    canvas = base.copy()  # [H', W', 3]
    thick = max(1, round(min(size) / 350))
    shown = [_upsample_mask(r.mask, size) for r in regions]  # [H', W'] bool each
    for r, m in zip(regions, shown):
        canvas[m] = (1 - alpha) * base[m] + alpha * r.color.astype(np.float32)
    for r, m in zip(regions, shown):  # outlines after all fills so overlapping instances keep their borders
        inner = ndimage.binary_erosion(m, iterations=thick if r.outline else max(1, thick // 2), border_value=0)
        edge = m & ~inner
        canvas[edge] = 0.6 * r.color.astype(np.float32) if r.outline else 0.5 * canvas[edge] + 0.5 * 255.0
    out = Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8))
    if labels and regions:
        _draw_tags(out, regions, size, font_size or max(12, min(28, round(min(size) / 32))))
    return np.asarray(out)


def _draw_tags(out: Image.Image, regions: list[_Region], size: tuple[int, int], font_size: int) -> None:
    draw = ImageDraw.Draw(out)
    font = _font(font_size)
    placed: list[tuple[int, int, int, int]] = []
    min_area = max(16, int(0.0015 * size[0] * size[1]))
    pad = max(2, font_size // 6)
    # biggest regions get their tag first; smaller ones that would collide are left untagged
    h, w = regions[0].mask.shape
    sy, sx = size[0] / h, size[1] / w  # image -> display scale
    step = max(1, -(-max(h, w) // 256))  # the anchor search runs on a <= 256 px grid
    for area, r in sorted(((int(r.mask.sum()), r) for r in regions), key=lambda t: -t[0]):
        if area * sy * sx < min_area:
            continue
        coarse = r.mask[step // 2 :: step, step // 2 :: step]
        if coarse.any():
            cy, cx = _label_anchor(coarse)
            y, x = round((cy * step + step // 2 + 0.5) * sy), round((cx * step + step // 2 + 0.5) * sx)
        else:  # a thin region the grid misses
            ys, xs = np.nonzero(r.mask)
            y, x = round((ys[len(ys) // 2] + 0.5) * sy), round((xs[len(xs) // 2] + 0.5) * sx)
        x0, y0, x1, y1 = draw.textbbox((0, 0), r.text, font=font)
        tw, th = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
        bx = int(np.clip(x - tw // 2, 0, max(size[1] - tw, 0)))
        by = int(np.clip(y - th // 2, 0, max(size[0] - th, 0)))
        box = (bx, by, bx + tw, by + th)
        if any(not (box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1]) for b in placed):
            continue
        placed.append(box)
        draw.rectangle(box, fill=tuple(int(v) for v in r.color), outline=(0, 0, 0))
        draw.text((bx + pad - x0, by + pad - y0), r.text, font=font, fill=_text_color(r.color))


def stage_titles(num_stages: int) -> list[str]:
    titles = ["initial kernels (stage 0)"]
    titles += [f"after update {i}" for i in range(1, num_stages)]
    if num_stages > 1:
        titles[-1] += " (final)"
    return titles


def stage_figure(
    image: np.ndarray,
    stage_results: list,
    *,
    class_names: list[str] | None,
    num_classes: int | None = None,
    panel_width: int = 440,
    title: str | None = None,
) -> np.ndarray:
    """One row: the input, then the masks after the initial kernels and after each kernel-update
    stage (supplementary Figure A1), each panel captioned with the stage, its segment count and
    the share of pixels whose class changed since the previous stage."""
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    ph = max(1, round(h * panel_width / w))
    panels = [np.asarray(Image.fromarray(image).resize((panel_width, ph), Image.BILINEAR))]
    captions = ["input"]
    previous = None
    for res, name in zip(stage_results, stage_titles(len(stage_results))):
        # drawn at the panel size so every panel has the same legible tag size
        small = _resize_result(res, (ph, panel_width))
        panels.append(draw_overlay(panels[0], small, class_names=class_names, num_classes=num_classes,
                                   min_side=0, max_side=10**9, font_size=max(12, panel_width // 30)))
        n = len(regions_of(small, class_names=class_names, num_classes=num_classes or 256))
        cap = f"{name}: {n} segment{'s' if n != 1 else ''}"
        classes = pixel_classes(res)
        if previous is not None:
            cap += f", {100.0 * float((classes != previous).mean()):.1f}% px changed"
        previous = classes
        captions.append(cap)

    gap, cap_h = 8, 30
    top = 40 if title else 0
    width = len(panels) * panel_width + (len(panels) + 1) * gap
    height = top + cap_h + ph + gap
    fig = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    if title:
        draw.text((gap, 8), title, font=_font(22), fill=(0, 0, 0))
    cap_font = _font(16)
    for i, (panel, cap) in enumerate(zip(panels, captions)):
        x = gap + i * (panel_width + gap)
        draw.text((x, top + 6), cap, font=cap_font, fill=(0, 0, 0))
        fig.paste(Image.fromarray(panel), (x, top + cap_h))
    return np.asarray(fig)


def pixel_classes(result) -> np.ndarray:
    """[H, W] int64 class shown at each pixel (-1 = nothing/VOID), to compare stages."""
    if isinstance(result, SemanticResult):
        return np.asarray(result.label).astype(np.int64)
    if isinstance(result, PanopticResult):
        seg = np.asarray(result.segment_map)
        lut = {int(s.id): int(s.label) for s in result.segments}
        out = np.full(seg.shape, -1, np.int64)
        for sid, label in lut.items():
            out[seg == sid] = label
        return out
    if isinstance(result, InstanceResult):
        masks = np.asarray(result.masks, bool)
        out = np.full(masks.shape[1:], -1, np.int64)
        scores = np.asarray(result.scores, np.float64)
        for i in np.argsort(scores, kind="stable"):  # best instance last = on top, as drawn
            if scores[i] >= INSTANCE_SCORE_THR:
                out[masks[i]] = int(result.labels[i])
        return out
    raise TypeError(f"cannot draw a {type(result).__name__}")


def _resize_result(result, size: tuple[int, int]):
    """A copy of `result` with its masks resized (nearest) to `size` = (H, W), for drawing only."""
    if isinstance(result, SemanticResult):
        lab = Image.fromarray(np.asarray(result.label).astype(np.int32)).resize((size[1], size[0]), Image.NEAREST)
        return SemanticResult(label=np.asarray(lab).astype(np.int64))
    if isinstance(result, InstanceResult):
        masks = np.stack([_upsample_mask(np.asarray(m, bool), size) for m in result.masks]) if len(result.masks) else np.zeros((0, *size), bool)
        return InstanceResult(scores=result.scores, labels=result.labels, masks=masks)
    if isinstance(result, PanopticResult):
        seg = Image.fromarray(np.asarray(result.segment_map).astype(np.int32)).resize((size[1], size[0]), Image.NEAREST)
        return PanopticResult(segment_map=np.asarray(seg).astype(np.int32), segments=result.segments)
    raise TypeError(f"cannot draw a {type(result).__name__}")
