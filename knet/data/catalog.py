"""Where datasets live: `--data ade20k|coco|coco-panoptic|PATH` and `--data-root` / $KNET_DATA.

    ds = open_dataset("coco-panoptic", split="val", data_root="/data")
       # -> /data/coco/annotations/panoptic_val2017.json + /data/coco/annotations/panoptic_val2017/
       #    + /data/coco/val2017/          (the root may also be the coco folder itself)

Expected layouts (the official releases; `knet data synth` writes the same):
  ade20k         {root}/ADEChallengeData2016/{images,annotations}/{training,validation}/
  coco           {root}/coco/{train2017,val2017}/ + {root}/coco/annotations/instances_{split}2017.json
  coco-panoptic  {root}/coco/{split}2017/ + annotations/panoptic_{split}2017.json + annotations/panoptic_{split}2017/
  PATH           a folder with any of these layouts (task decides which), or an instances / panoptic
                 json whose images sit in a sibling folder named like the json's split
A missing dataset raises KnetError naming the folder or file that was expected.
"""

from __future__ import annotations

import os
from pathlib import Path

from knet.data.ade20k import ADE20KDataset
from knet.data.coco import CocoInstanceDataset
from knet.data.coco_panoptic import CocoPanopticDataset
from knet.errors import KnetError

NAMED = ("ade20k", "coco", "coco-panoptic")
ADE_SPLIT = {"train": "training", "val": "validation"}


def data_root(explicit: str | os.PathLike | None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("KNET_DATA", "data"))


def _ade_root(base: Path) -> Path:
    for cand in (base / "ADEChallengeData2016", base):
        if (cand / "images").is_dir() and (cand / "annotations").is_dir():
            return cand
    raise KnetError(f"ADE20K not found: expected {base / 'ADEChallengeData2016'}/images and /annotations (set --data-root or KNET_DATA)")


def _coco_root(base: Path, kind: str, split: str) -> Path:
    for cand in (base / "coco", base):
        if (cand / "annotations").is_dir() and list((cand / "annotations").glob(f"{kind}_{split}*.json")):
            return cand
    raise KnetError(
        f"COCO {kind} annotations not found: expected {base / 'coco' / 'annotations' / f'{kind}_{split}2017.json'} "
        "(set --data-root or KNET_DATA)"
    )


def _coco_files(root: Path, kind: str, split: str) -> tuple[Path, Path, Path | None]:
    jsons = sorted((root / "annotations").glob(f"{kind}_{split}*.json"))
    ann = jsons[0]
    split_name = ann.stem[len(kind) + 1 :]  # e.g. train2017
    image_dir = root / split_name
    if not image_dir.is_dir():
        raise KnetError(f"image folder not found: {image_dir} (named after {ann.name})")
    png_dir = root / "annotations" / f"{kind}_{split_name}" if kind == "panoptic" else None
    return ann, image_dir, png_dir


def _from_json(path: Path, task: str, split: str):
    """A custom COCO-format json: images in a sibling folder named after the json's split."""
    stem = path.stem
    base = stem.split("_", 1)[1] if "_" in stem else stem
    root = path.parent.parent if path.parent.name == "annotations" else path.parent
    for cand in (root / base, root / "images" / base, root / "images", path.parent / "images"):
        if cand.is_dir():
            image_dir = cand
            break
    else:
        raise KnetError(f"image folder for {path} not found: expected {root / base}")
    if task == "panoptic":
        png_dir = path.parent / stem
        return CocoPanopticDataset(ann_file=path, png_dir=png_dir, image_dir=image_dir, filter_empty=split == "train")
    return CocoInstanceDataset(ann_file=path, image_dir=image_dir, filter_empty=split == "train")


def open_dataset(data: str, *, task: str, split: str, data_root_dir: str | os.PathLike | None = None):
    """The dataset for `task` ('semantic' | 'instance' | 'panoptic') and `split` ('train' | 'val')."""
    if split not in ("train", "val"):
        raise KnetError(f"unknown split '{split}' (train or val)")
    expect = {"semantic": "ade20k", "instance": "coco", "panoptic": "coco-panoptic"}
    if data in NAMED:
        if expect[task] != data:
            raise KnetError(f"--data {data} does not hold {task} labels (use --data {expect[task]} or a folder)")
        base = data_root(data_root_dir)
    else:
        base = Path(data)
        if not base.exists():
            raise KnetError(f"dataset not found: {base}")
        if base.is_file():
            return _from_json(base, task, split)
    if task == "semantic":
        return ADE20KDataset(root=_ade_root(base), split=ADE_SPLIT[split])
    kind = "instances" if task == "instance" else "panoptic"
    root = _coco_root(base, kind, split)
    ann, image_dir, png_dir = _coco_files(root, kind, split)
    if task == "panoptic":
        return CocoPanopticDataset(ann_file=ann, png_dir=png_dir, image_dir=image_dir, filter_empty=split == "train")
    return CocoInstanceDataset(ann_file=ann, image_dir=image_dir, filter_empty=split == "train")
