"""`knet data synth`: write synthetic scenes in the real on-disk dataset formats.

    write_synth(out, task="panoptic", images=200, val_images=40, seed=0, size=(128, 128))

| task      | layout (the same as the real dataset)                                         |
|-----------|-------------------------------------------------------------------------------|
| instance  | {train2017,val2017}/*.jpg + annotations/instances_{split}.json (COCO: polygons |
|           | for whole shapes, compressed RLE for occluded ones, uncompressed RLE crowds)   |
| panoptic  | {split}/*.jpg + annotations/panoptic_{split}.json + annotations/panoptic_{split}/*.png |
|           | (segment id = R + 256 G + 256^2 B; VOID = 0)                                   |
| semantic  | ADEChallengeData2016/images/{training,validation}/*.jpg + annotations/.../*.png |
|           | (0 = other, class k at value k + 1: the reduce_zero_label convention)          |
|           | + objectInfo150.txt listing the classes as ADE20K does                         |

Categories are the dataset's own (written in its json / objectInfo file); loaders read them from
there. Train scenes are stream (seed, 0), val scenes stream (seed, 1), so a different seed gives
held-out scenes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from knet.data.io import save_jpeg, save_png
from knet.data.synth_scene import STUFF_CLASSES, THING_CLASSES, SynthScene, make_scene
from knet.errors import KnetError
from knet.fileio import atomic_write_json, atomic_write_text, check_writable

TASKS = ("panoptic", "instance", "semantic")
COCO_SPLITS = {"train": "train2017", "val": "val2017"}
ADE_SPLITS = {"train": "training", "val": "validation"}


def _stream_seed(seed: int, split: str) -> int:
    return int(seed) * 2 + (0 if split == "train" else 1)


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE ({"size": [h, w], "counts": [int, ...]}, column-major, zeros first)."""
    flat = np.asarray(mask, bool).reshape(-1, order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _instance_segmentation(inst, h: int, w: int) -> dict | list:
    from knet.ops import rle

    if inst.iscrowd:
        return uncompressed_rle(inst.visible)
    if inst.polygon is not None and bool((inst.visible == inst.full).all()):
        return [inst.polygon]
    out = rle.encode(inst.visible[None])[0]  # occluded: compressed RLE of the visible part
    counts = out["counts"]
    return {"size": [int(h), int(w)], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _split_names(task: str, split: str, index: int) -> tuple[str, str]:
    if task == "semantic":
        stem = f"ADE_{'train' if split == 'train' else 'val'}_{index + 1:08d}"
    else:
        stem = f"{index + 1:012d}"
    return stem + ".jpg", stem + ".png"


def target_paths(out: Path, task: str, counts: dict[str, int]) -> list[Path]:
    """Every file `write_synth` would create (checked up front so nothing is half-overwritten)."""
    paths: list[Path] = []
    for split, n in counts.items():
        if n <= 0:
            continue
        if task == "semantic":
            root = out / "ADEChallengeData2016"
            paths.append(root / "objectInfo150.txt")
            for i in range(n):
                jpg, png = _split_names(task, split, i)
                paths += [root / "images" / ADE_SPLITS[split] / jpg, root / "annotations" / ADE_SPLITS[split] / png]
        else:
            s = COCO_SPLITS[split]
            kind = "instances" if task == "instance" else "panoptic"
            paths.append(out / "annotations" / f"{kind}_{s}.json")
            for i in range(n):
                jpg, png = _split_names(task, split, i)
                paths.append(out / s / jpg)
                if task == "panoptic":
                    paths.append(out / "annotations" / f"panoptic_{s}" / png)
    return paths


def coco_categories(task: str) -> list[dict]:
    cats = [
        {"id": cid, "name": name, "supercategory": "shape", "isthing": 1, "color": list(color)}
        for name, cid, color in THING_CLASSES
    ]
    if task == "panoptic":
        cats += [
            {"id": cid, "name": name, "supercategory": "background", "isthing": 0, "color": list(color)}
            for name, cid, color in STUFF_CLASSES
        ]
    if task == "instance":
        for c in cats:
            del c["isthing"], c["color"]
    return cats


def semantic_label(scene: SynthScene) -> np.ndarray:
    """[H, W] uint8 ADE-style label: 0 = other, 1..3 stuff (sky, grass, wall), 4..6 things."""
    label = np.where(scene.stuff >= 0, scene.stuff + 1, 0).astype(np.uint8)
    for inst in scene.instances:
        label[inst.visible] = len(STUFF_CLASSES) + 1 + inst.label
    return label


def semantic_class_names() -> list[str]:
    return [s[0] for s in STUFF_CLASSES] + [t[0] for t in THING_CLASSES]


def _panoptic_png(scene: SynthScene) -> tuple[np.ndarray, list[dict]]:
    h, w = scene.stuff.shape
    ids = np.zeros((h, w), np.int64)
    segments: list[dict] = []
    for k, (name, cid, _) in enumerate(STUFF_CLASSES):
        m = scene.stuff == k
        for inst in scene.instances:
            m = m & ~inst.visible
        if m.any():
            sid = cid * 1000
            ids[m] = sid
            segments.append({"id": sid, "category_id": cid, "area": int(m.sum()), "bbox": _bbox(m), "iscrowd": 0})
    for j, inst in enumerate(scene.instances):
        if not inst.visible.any():
            continue
        cid = THING_CLASSES[inst.label][1]
        sid = cid * 1000 + j + 1
        ids[inst.visible] = sid
        segments.append(
            {"id": sid, "category_id": cid, "area": int(inst.visible.sum()), "bbox": _bbox(inst.visible), "iscrowd": int(inst.iscrowd)}
        )
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    return rgb, segments


def write_synth(
    out: str | os.PathLike,
    *,
    task: str,
    images: int,
    val_images: int | None = None,
    seed: int = 0,
    size: tuple[int, int] = (128, 128),
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write `images` train and `val_images` val scenes of `task` under `out`; return a summary."""
    if task not in TASKS:
        raise KnetError(f"unknown task '{task}' (choose from {', '.join(TASKS)})")
    if images < 0 or (val_images is not None and val_images < 0):
        raise KnetError("--images and --val-images must be >= 0")
    h, w = int(size[0]), int(size[1])
    if h < 32 or w < 32:
        raise KnetError(f"--size {h}x{w} is too small (at least 32x32)")
    counts = {"train": int(images), "val": int(images // 5 if val_images is None else val_images)}
    if counts["train"] + counts["val"] == 0:
        raise KnetError("nothing to write: --images and --val-images are both 0")
    out = Path(out)
    paths = target_paths(out, task, counts)
    check_writable(paths, overwrite=overwrite)
    total, done = counts["train"] + counts["val"], 0
    for split, n in counts.items():
        if n == 0:
            continue
        stream = _stream_seed(seed, split)
        img_records, ann_records = [], []
        ann_id = 1
        for i in range(n):
            scene = make_scene(stream, i, h, w)
            jpg, png = _split_names(task, split, i)
            if task == "semantic":
                root = out / "ADEChallengeData2016"
                save_jpeg(root / "images" / ADE_SPLITS[split] / jpg, scene.image, overwrite=overwrite)
                save_png(root / "annotations" / ADE_SPLITS[split] / png, semantic_label(scene), overwrite=overwrite)
            else:
                s = COCO_SPLITS[split]
                save_jpeg(out / s / jpg, scene.image, overwrite=overwrite)
                img_records.append({"id": i + 1, "file_name": jpg, "height": h, "width": w})
                if task == "panoptic":
                    rgb, segments = _panoptic_png(scene)
                    save_png(out / "annotations" / f"panoptic_{s}" / png, rgb, overwrite=overwrite)
                    ann_records.append({"image_id": i + 1, "file_name": png, "segments_info": segments})
                else:
                    for inst in scene.instances:
                        if not inst.visible.any():
                            continue
                        ann_records.append(
                            {
                                "id": ann_id,
                                "image_id": i + 1,
                                "category_id": THING_CLASSES[inst.label][1],
                                "segmentation": _instance_segmentation(inst, h, w),
                                "area": float(inst.visible.sum()),
                                "bbox": _bbox(inst.visible),
                                "iscrowd": int(inst.iscrowd),
                            }
                        )
                        ann_id += 1
            done += 1
            if progress is not None:
                progress(done, total)
        info = {"description": f"knet synthetic {task} scenes (seed {seed}, {split})", "version": "1.0"}
        if task == "semantic":
            lines = ["Idx\tRatio\tTrain\tVal\tName"] + [f"{k + 1}\t0\t0\t0\t{name}" for k, name in enumerate(semantic_class_names())]
            atomic_write_text(out / "ADEChallengeData2016" / "objectInfo150.txt", "\n".join(lines) + "\n", overwrite=True)
        else:
            s = COCO_SPLITS[split]
            kind = "instances" if task == "instance" else "panoptic"
            doc = {"info": info, "images": img_records, "annotations": ann_records, "categories": coco_categories(task)}
            atomic_write_json(out / "annotations" / f"{kind}_{s}.json", doc, overwrite=overwrite)
    return {"out": str(out), "task": task, "train": counts["train"], "val": counts["val"], "size": [h, w], "seed": seed}
