"""Model evaluation over a dataset split on disk: run a predictor, then the evaluators.

    results = evaluate_coco_instance_model(predict, "data/coco", "val")   # [CocoEvalResult] (one per stage)
    results = evaluate_coco_panoptic_model(predict, "data/coco", "val")  # [PanopticEvalResult]
    results = evaluate_ade20k_model(predict, "data/ade", "val")          # [SemanticEvalResult]

`predict(images, all_stages)` takes a list of [H, W, 3] uint8 RGB images and returns one
knet.structures result per image, or with all_stages=True a list of per-stage results per image
(stage 0 = the initial kernels). The evaluators get one result list per stage; without stages
the list has one entry. Class index c maps to the c-th ground-truth category in id order (COCO's
convention: things then stuff for panoptic). `load_image` defaults to PIL; the CLI passes
knet.data.io.load_image.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from knet.errors import KnetError
from knet.evaluation.coco import CocoEvalResult, CocoGroundTruth, evaluate_coco
from knet.evaluation.jsonio import load_json
from knet.evaluation.panoptic import PanopticAccumulator, PanopticEvalResult
from knet.evaluation.png import read_label_map, read_panoptic_ids
from knet.evaluation.semantic import SemanticAccumulator, SemanticEvalResult
from knet.ops import rle
from knet.structures import InstanceResult, PanopticResult, SemanticResult

Predict = Callable[[list[np.ndarray], bool], list]
ADE_SPLITS = {"val": "validation", "validation": "validation", "train": "training", "training": "training"}


def _pil_rgb(path: str | os.PathLike) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise KnetError(f"cannot read image {path} ({exc})") from None


def _require(path: Path, what: str, root: Path) -> Path:
    if not path.exists():
        raise KnetError(f"{what} not found: expected {path.relative_to(root)} under {root}")
    return path


def coco_instance_layout(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    root = Path(root)
    return (_require(root / "annotations" / f"instances_{split}2017.json", "COCO annotations", root),
            _require(root / f"{split}2017", "COCO image folder", root))  # fmt: skip


def coco_panoptic_layout(root: str | os.PathLike, split: str) -> tuple[Path, Path, Path]:
    root = Path(root)
    return (_require(root / "annotations" / f"panoptic_{split}2017.json", "COCO panoptic annotations", root),
            _require(root / "annotations" / f"panoptic_{split}2017", "COCO panoptic PNG folder", root),
            _require(root / f"{split}2017", "COCO image folder", root))  # fmt: skip


def ade20k_layout(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    if split not in ADE_SPLITS:
        raise KnetError(f"unknown ADE20K split {split!r}; expected val or train")
    root = Path(root)
    base = root / "ADEChallengeData2016"
    return (_require(base / "images" / ADE_SPLITS[split], "ADE20K image folder", root),
            _require(base / "annotations" / ADE_SPLITS[split], "ADE20K annotation folder", root))  # fmt: skip


def _batches(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _per_stage(out: list, n_images: int, all_stages: bool) -> list[list]:
    """predict output -> [stage][image]."""
    if len(out) != n_images:
        raise KnetError(f"predictor returned {len(out)} results for {n_images} images")
    if not all_stages:
        return [list(out)]
    n_stages = len(out[0])
    if any(len(o) != n_stages for o in out):
        raise KnetError("predictor returned different stage counts for images of one batch")
    return [[o[s] for o in out] for s in range(n_stages)]


def _run(predict: Predict, paths: list[Path], *, all_stages: bool, batch_size: int, load_image, progress: bool, desc: str, consume) -> None:
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not progress)
    index = 0
    for chunk in _batches(paths, batch_size):
        images = [load_image(p) for p in chunk]
        stages = _per_stage(predict(images, all_stages), len(images), all_stages)
        for j in range(len(images)):
            consume(index + j, [stage[j] for stage in stages])
        index += len(images)
        bar.update(len(images))
    bar.close()


def evaluate_coco_instance_model(
    predict: Predict, root: str | os.PathLike, split: str = "val", *, all_stages: bool = False, batch_size: int = 1,
    limit: int | None = None, load_image=_pil_rgb, progress: bool = True,
) -> list[CocoEvalResult]:  # fmt: skip
    ann, img_dir = coco_instance_layout(root, split)
    data = load_json(ann, what="COCO annotations")
    gt = CocoGroundTruth.from_dict(data, source=str(ann))
    images = sorted(data["images"], key=lambda im: im["id"])[:limit]
    if limit is not None:  # evaluate on the images that were run
        keep = {im["id"] for im in images}
        gt = CocoGroundTruth([i for i in gt.img_ids if i in keep], *_subset(gt, keep))
    records: list[list[dict]] = []

    def consume(i: int, per_stage: list[InstanceResult]) -> None:
        while len(records) < len(per_stage):
            records.append([])
        for s, res in enumerate(per_stage):
            if not isinstance(res, InstanceResult):
                raise KnetError(f"the checkpoint's task does not give instance results (got {type(res).__name__})")
            labels = np.asarray(res.labels)
            if labels.size and labels.max() >= len(gt.cat_ids):
                raise KnetError(f"prediction class {int(labels.max())} has no COCO category ({len(gt.cat_ids)} in the annotations)")
            encoded = rle.encode(np.asarray(res.masks, dtype=bool)) if len(labels) else []
            for score, lab, seg in zip(np.asarray(res.scores).tolist(), labels.tolist(), encoded):
                records[s].append({"image_id": images[i]["id"], "category_id": gt.cat_ids[lab], "score": score, "segmentation": seg})

    paths = [img_dir / im["file_name"] for im in images]
    _run(predict, paths, all_stages=all_stages, batch_size=batch_size, load_image=load_image, progress=progress, desc="COCO instance", consume=consume)
    return [evaluate_coco(gt, recs) for recs in (records or [[]])]


def _subset(gt: CocoGroundTruth, keep: set) -> tuple:
    idx = [k for k, i in enumerate(gt.img_ids) if i in keep]
    anns = [a for a in gt.annotations if a.get("image_id") in keep]
    return [gt.heights[k] for k in idx], [gt.widths[k] for k in idx], gt.cat_ids, gt.cat_names, anns


def evaluate_coco_panoptic_model(
    predict: Predict, root: str | os.PathLike, split: str = "val", *, all_stages: bool = False, batch_size: int = 1,
    limit: int | None = None, load_image=_pil_rgb, progress: bool = True,
) -> list[PanopticEvalResult]:  # fmt: skip
    ann, png_dir, img_dir = coco_panoptic_layout(root, split)
    data = load_json(ann, what="COCO panoptic annotations")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list) or not isinstance(data.get("categories"), list):
        raise KnetError(f"{ann} is not a COCO panoptic file")
    cat_ids = sorted(int(c["id"]) for c in data["categories"])
    images = {im["id"]: im for im in data.get("images", [])}
    anns = data["annotations"][:limit]
    accs: list[PanopticAccumulator] = []

    def consume(i: int, per_stage: list[PanopticResult]) -> None:
        a = anns[i]
        gt_ids = read_panoptic_ids(png_dir / a["file_name"])
        while len(accs) < len(per_stage):
            accs.append(PanopticAccumulator(data["categories"]))
        for s, res in enumerate(per_stage):
            if not isinstance(res, PanopticResult):
                raise KnetError(f"the checkpoint's task does not give panoptic results (got {type(res).__name__})")
            seg_map = np.asarray(res.segment_map)
            present = set(np.unique(seg_map).tolist())
            segs = []
            for sg in res.segments:
                if sg.id in present:
                    if not 0 <= sg.label < len(cat_ids):
                        raise KnetError(f"prediction class {sg.label} has no COCO panoptic category")
                    segs.append({"id": int(sg.id), "category_id": cat_ids[sg.label]})
            known = {sg["id"] for sg in segs}
            seg_map = np.where(np.isin(seg_map, list(known)), seg_map, 0) if present - known - {0} else seg_map
            accs[s].add_image(gt_ids, a["segments_info"], seg_map.astype(np.uint32), segs, image=str(a["image_id"]))

    def image_path(a: dict) -> Path:
        im = images.get(a["image_id"])
        name = im["file_name"] if im else Path(a["file_name"]).with_suffix(".jpg").name
        return img_dir / name

    _run(predict, [image_path(a) for a in anns], all_stages=all_stages, batch_size=batch_size, load_image=load_image, progress=progress, desc="COCO panoptic", consume=consume)
    if not accs:
        accs.append(PanopticAccumulator(data["categories"]))
    return [acc.result() for acc in accs]


def evaluate_ade20k_model(
    predict: Predict, root: str | os.PathLike, split: str = "val", *, num_classes: int = 150, all_stages: bool = False,
    batch_size: int = 1, limit: int | None = None, load_image=_pil_rgb, progress: bool = True,
    class_names: list[str] | None = None,
) -> list[SemanticEvalResult]:  # fmt: skip
    img_dir, ann_dir = ade20k_layout(root, split)
    paths = sorted(img_dir.glob("*.jpg"))[:limit]
    if not paths:
        raise KnetError(f"no .jpg images in {img_dir}")
    accs: list[SemanticAccumulator] = []

    def consume(i: int, per_stage: list[SemanticResult]) -> None:
        label = read_label_map(ann_dir / (paths[i].stem + ".png"))
        while len(accs) < len(per_stage):
            accs.append(SemanticAccumulator(num_classes=num_classes, reduce_zero_label=True, class_names=class_names))
        for s, res in enumerate(per_stage):
            if not isinstance(res, SemanticResult):
                raise KnetError(f"the checkpoint's task does not give semantic results (got {type(res).__name__})")
            accs[s].add(np.asarray(res.label), label, image=paths[i].name)

    _run(predict, paths, all_stages=all_stages, batch_size=batch_size, load_image=load_image, progress=progress, desc="ADE20K", consume=consume)
    return [acc.result() for acc in accs]
