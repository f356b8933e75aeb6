"""COCO panoptic data: `panoptic_*.json` + its PNG folder + the image folder.

    ds = CocoPanopticDataset(ann_file=".../panoptic_val2017.json", png_dir=".../panoptic_val2017",
                             image_dir=".../val2017")
    s = ds[0]   # thing_masks [n, H, W], thing_labels [n], sem_seg [H, W] (things 0..T-1, stuff T.., 255)

Segment ids in the PNG are R + 256 G + 256^2 B; 0 is VOID. Classes are the json's categories,
things first (sorted by id) then stuff (sorted by id). Crowd segments and VOID become 255 in
`sem_seg` and are not thing targets.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from knet.data.coco import _require, coco_class_info
from knet.data.io import load_image, load_label_png
from knet.data.sample import IGNORE, Sample
from knet.errors import KnetError
from knet.fileio import read_json


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 -> [H, W] int64 segment ids (R + 256 G + 256^2 B)."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


class CocoPanopticDataset:
    def __init__(
        self,
        *,
        ann_file: str | os.PathLike,
        png_dir: str | os.PathLike,
        image_dir: str | os.PathLike,
        filter_empty: bool = False,
    ) -> None:
        self.ann_file = Path(ann_file)
        self.png_dir = Path(png_dir)
        self.image_dir = Path(image_dir)
        for folder, what in ((self.image_dir, "image folder"), (self.png_dir, "panoptic PNG folder")):
            if not folder.is_dir():
                raise KnetError(f"{what} not found: {folder}")
        doc = read_json(self.ann_file, what="annotation file")
        images = _require(doc, "images", self.ann_file)
        anns = _require(doc, "annotations", self.ann_file)
        self.classes = coco_class_info(_require(doc, "categories", self.ann_file), self.ann_file, panoptic=True)
        self._cat_to_index = {cid: i for i, cid in enumerate(self.classes.category_ids)}
        try:
            by_image = {int(a["image_id"]): a for a in anns}
            self.images = sorted(
                ({"id": int(im["id"]), "file_name": str(im["file_name"]), "height": int(im["height"]), "width": int(im["width"])} for im in images),
                key=lambda im: im["id"],
            )
        except (KeyError, TypeError, ValueError):
            raise KnetError(f"annotation file {self.ann_file} has a malformed image or annotation entry") from None
        self._anns = by_image
        missing = [im["id"] for im in self.images if im["id"] not in by_image]
        if missing:
            raise KnetError(f"annotation file {self.ann_file} has no segments for image id {missing[0]}")
        if filter_empty:
            self.images = [im for im in self.images if by_image[im["id"]].get("segments_info")]

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.images[index]["file_name"]

    def png_path(self, index: int) -> Path:
        return self.png_dir / str(self._anns[self.images[index]["id"]]["file_name"])

    def categories(self) -> list[dict]:
        """The json's categories (id, name, isthing, ...), as the PQ evaluator takes them."""
        from knet.fileio import read_json

        return list(read_json(self.ann_file, what="annotation file")["categories"])

    def ground_truth(self, index: int) -> tuple[np.ndarray, list[dict]]:
        """(segment id map [H, W] int64, segments_info) of image `index`, as stored on disk."""
        png = self.png_path(index)
        rgb = load_label_png(png)
        if rgb.ndim != 3:
            raise KnetError(f"panoptic PNG {png} is not an RGB image")
        return rgb_to_id(rgb), list(self._anns[self.images[index]["id"]].get("segments_info", []))

    def __getitem__(self, index: int) -> Sample:
        info = self.images[index]
        path = self.image_path(index)
        image = load_image(path)
        h, w = image.shape[:2]
        png = self.png_path(index)
        rgb = load_label_png(png)
        if rgb.ndim != 3 or rgb.shape[:2] != (h, w):
            raise KnetError(f"panoptic PNG {png} has shape {rgb.shape}, expected {h}x{w}x3 like image {path}")
        ids = rgb_to_id(rgb)
        sem = np.full((h, w), IGNORE, np.uint8)
        masks, labels = [], []
        for seg in self._anns[info["id"]].get("segments_info", []):
            try:
                sid, cid = int(seg["id"]), int(seg["category_id"])
            except (KeyError, TypeError, ValueError):
                raise KnetError(f"annotation file {self.ann_file}: image {info['id']} has a malformed segment") from None
            if cid not in self._cat_to_index:
                raise KnetError(f"annotation file {self.ann_file}: segment {sid} has unknown category_id {cid}")
            cls = self._cat_to_index[cid]
            m = ids == sid
            if seg.get("iscrowd", 0) or not m.any():
                continue
            sem[m] = cls
            if self.classes.is_thing[cls]:
                masks.append(m)
                labels.append(cls)
        return Sample(
            image=image,
            path=str(path),
            image_id=info["id"],
            thing_masks=np.stack(masks) if masks else np.zeros((0, h, w), bool),
            thing_labels=np.asarray(labels, np.int64),
            sem_seg=sem,
            meta={"png": str(png)},
        )
