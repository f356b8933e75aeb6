"""ADE20K scene parsing (the ADEChallengeData2016 release) with reduce_zero_label.

    ds = ADE20KDataset(root="data/ADEChallengeData2016", split="validation")
    s = ds[0]     # s.sem_seg [H, W] uint8: file value k -> class k - 1, 0 ("other") -> 255

Layout: images/{training,validation}/*.jpg, annotations/{training,validation}/*.png (same stem).
Class names come from the folder's objectInfo150.txt when present (its `Name` column; the first
synonym before ';'), else the 150 standard names.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from knet.data.io import load_image, load_label_png
from knet.data.sample import IGNORE, ClassInfo, Sample
from knet.errors import KnetError

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel",
    "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
assert len(ADE20K_CLASSES) == 150

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def read_object_info(path: Path) -> tuple[str, ...]:
    """Class names from an ADE20K objectInfo150.txt (tab-separated, header row, Name last)."""
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError):
        raise KnetError(f"class list {path} is not readable") from None
    names = []
    for ln in lines[1:]:
        cols = ln.split("\t")
        if len(cols) < 2:
            raise KnetError(f"class list {path} has a malformed line: {ln[:60]!r}")
        names.append(cols[-1].split(";")[0].strip())
    if not names:
        raise KnetError(f"class list {path} lists no classes")
    return tuple(names)


class ADE20KDataset:
    def __init__(self, *, root: str | os.PathLike, split: str = "training", reduce_zero_label: bool = True) -> None:
        self.root = Path(root)
        self.split = split
        self.reduce_zero_label = reduce_zero_label
        self.image_dir = self.root / "images" / split
        self.ann_dir = self.root / "annotations" / split
        for folder in (self.image_dir, self.ann_dir):
            if not folder.is_dir():
                raise KnetError(f"ADE20K folder not found: {folder} (expected ADEChallengeData2016/images|annotations/{split})")
        info = self.root / "objectInfo150.txt"
        names = read_object_info(info) if info.is_file() else ADE20K_CLASSES
        self.classes = ClassInfo(names=names, category_ids=tuple(range(1, len(names) + 1)), is_thing=(False,) * len(names))
        self.files = sorted(p for p in self.image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise KnetError(f"no images in {self.image_dir}")

    def __len__(self) -> int:
        return len(self.files)

    def image_path(self, index: int) -> Path:
        return self.files[index]

    def label_path(self, index: int) -> Path:
        return self.ann_dir / (self.files[index].stem + ".png")

    def __getitem__(self, index: int) -> Sample:
        path = self.files[index]
        image = load_image(path)
        lab_path = self.label_path(index)
        label = load_label_png(lab_path)
        if label.ndim != 2 or label.shape != image.shape[:2]:
            raise KnetError(f"label file {lab_path} has shape {label.shape}, image {path} is {image.shape[:2]}")
        label = label.astype(np.int64)
        if self.reduce_zero_label:  # 0 = "other" -> ignore; k -> k - 1
            label = np.where(label == 0, IGNORE, label - 1)
        label = np.where((label >= len(self.classes.names)) & (label != IGNORE), IGNORE, label)
        return Sample(image=image, path=str(path), image_id=index, sem_seg=label.astype(np.uint8))
