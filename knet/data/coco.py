"""COCO-format instance segmentation data: `instances_*.json` + an image folder.

    ds = CocoInstanceDataset(ann_file="coco/annotations/instances_val2017.json", image_dir="coco/val2017")
    sample = ds[0]        # Sample with thing_masks [n, H, W], thing_labels [n], ignore_mask (crowds)

Works for any COCO-format dataset: the classes are the json's `categories`, sorted by id and
numbered 0..K-1. Segmentations may be polygons, compressed or uncompressed RLE; crowd
(`iscrowd=1`) regions are not targets (they become `ignore_mask`), as in mmdet.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from knet.data.io import load_image
from knet.data.sample import ClassInfo, Sample
from knet.errors import KnetError
from knet.fileio import read_json


def _require(doc: dict, key: str, path: Path) -> list:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, list):
        raise KnetError(f"annotation file {path} has no '{key}' list (is it a COCO json?)")
    return value


def coco_class_info(categories: list[dict], path: Path, *, panoptic: bool) -> ClassInfo:
    """Categories sorted by id; for panoptic data the things come first, then the stuff."""
    try:
        cats = sorted(categories, key=lambda c: int(c["id"]))
        if panoptic:
            cats = [c for c in cats if int(c.get("isthing", 1))] + [c for c in cats if not int(c.get("isthing", 1))]
        return ClassInfo(
            names=tuple(str(c["name"]) for c in cats),
            category_ids=tuple(int(c["id"]) for c in cats),
            is_thing=tuple(bool(int(c.get("isthing", 1))) for c in cats),
        )
    except (KeyError, TypeError, ValueError):
        raise KnetError(f"annotation file {path} has a malformed 'categories' entry") from None


class CocoInstanceDataset:
    """Images listed in a COCO instances json, with their instance masks."""

    def __init__(
        self,
        *,
        ann_file: str | os.PathLike,
        image_dir: str | os.PathLike,
        filter_empty: bool = False,
    ) -> None:
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise KnetError(f"image folder not found: {self.image_dir}")
        doc = read_json(self.ann_file, what="annotation file")
        images = _require(doc, "images", self.ann_file)
        anns = _require(doc, "annotations", self.ann_file)
        self.classes = coco_class_info(_require(doc, "categories", self.ann_file), self.ann_file, panoptic=False)
        self._cat_to_index = {cid: i for i, cid in enumerate(self.classes.category_ids)}
        self._anns: dict[int, list[dict]] = {}
        for a in anns:
            try:
                self._anns.setdefault(int(a["image_id"]), []).append(a)
            except (KeyError, TypeError, ValueError):
                raise KnetError(f"annotation file {self.ann_file} has an annotation without a valid image_id") from None
        try:
            self.images = sorted(
                ({"id": int(im["id"]), "file_name": str(im["file_name"]), "height": int(im["height"]), "width": int(im["width"])} for im in images),
                key=lambda im: im["id"],
            )
        except (KeyError, TypeError, ValueError):
            raise KnetError(f"annotation file {self.ann_file} has an image entry without id/file_name/height/width") from None
        if filter_empty:
            self.images = [im for im in self.images if any(not a.get("iscrowd", 0) for a in self._anns.get(im["id"], []))]

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.images[index]["file_name"]

    def _decode(self, ann: dict, h: int, w: int) -> np.ndarray:
        from knet.ops import rle

        seg = ann.get("segmentation")
        if seg is None or (isinstance(seg, list) and len(seg) == 0):
            raise KnetError(f"annotation {ann.get('id')} in {self.ann_file} has no segmentation")
        try:
            r = rle.to_rle(seg, h, w)
            mask = rle.decode(r)[0].astype(bool)
        except KnetError as exc:
            raise KnetError(f"annotation {ann.get('id')} in {self.ann_file}: {exc}") from None
        except (TypeError, KeyError, ValueError, AttributeError):
            raise KnetError(f"annotation {ann.get('id')} in {self.ann_file} has a malformed segmentation") from None
        if mask.shape != (h, w):
            raise KnetError(f"annotation {ann.get('id')} in {self.ann_file} has size {mask.shape}, image is {(h, w)}")
        return mask

    def __getitem__(self, index: int) -> Sample:
        info = self.images[index]
        path = self.image_path(index)
        image = load_image(path)
        h, w = image.shape[:2]
        if (h, w) != (info["height"], info["width"]):
            raise KnetError(f"image {path} is {h}x{w} but {self.ann_file} says {info['height']}x{info['width']}")
        masks, labels = [], []
        ignore = np.zeros((h, w), bool)
        for ann in self._anns.get(info["id"], []):
            cid = ann.get("category_id")
            if cid not in self._cat_to_index:
                raise KnetError(f"annotation {ann.get('id')} in {self.ann_file} has unknown category_id {cid}")
            mask = self._decode(ann, h, w)
            if ann.get("iscrowd", 0):
                ignore |= mask
            elif mask.any():
                masks.append(mask)
                labels.append(self._cat_to_index[cid])
        return Sample(
            image=image,
            path=str(path),
            image_id=info["id"],
            thing_masks=np.stack(masks) if masks else np.zeros((0, h, w), bool),
            thing_labels=np.asarray(labels, np.int64),
            ignore_mask=ignore,
        )
