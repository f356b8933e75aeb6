"""Writers for `knet predict`: the overlay PNG and the standard machine formats, one image at a time.

Per image (STEM = the image's file name without extension), in the output folder:

    STEM.overlay.png             colours, class names, instance outlines (knet.visualize)
    STEM.stages.png              --show-stages: masks after the initial kernels and each update stage
    STEM.label.png               semantic: class index per pixel (palette PNG; 16-bit grey if > 255 classes)
    STEM.instances.json          instance: COCO results list (compressed RLE, no bbox: areas come from masks)
    panoptic/STEM.png            panoptic: COCO panoptic PNG, id = R + 256 G + 256^2 B, 0 = VOID
    STEM.panoptic.json           panoptic: the image's COCO panoptic annotation (segments_info)

and per run: `instances.json` (all COCO results) or `panoptic.json` ({"annotations", "categories",
"images"} with the PNGs in `panoptic/`), ready for `knet eval coco` / `knet eval panoptic`.

Category ids: class index c maps to `category_ids[c]` when the checkpoint carries dataset category
ids (see `category_ids_of`), otherwise to c + 1 (COCO ids start at 1). Every file goes through
knet.fileio (temporary file + rename) and nothing existing is replaced without overwrite=True.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knet.data.io import save_png
from knet.errors import KnetError
from knet.fileio import atomic_write_json, check_writable
from knet.structures import InstanceResult, PanopticResult, SemanticResult
from knet.visualize import IGNORE_LABEL, draw_overlay, palette, stage_figure

TASKS = ("semantic", "instance", "panoptic")
RESULT_TYPES = {"semantic": SemanticResult, "instance": InstanceResult, "panoptic": PanopticResult}


def image_output_paths(stem: str, *, task: str, output_dir: Path, show_stages: bool) -> dict[str, Path]:
    """Every file written for one image, by role."""
    d = Path(output_dir)
    paths = {"overlay": d / f"{stem}.overlay.png"}
    if show_stages:
        paths["stages"] = d / f"{stem}.stages.png"
    if task == "semantic":
        paths["label"] = d / f"{stem}.label.png"
    elif task == "instance":
        paths["instances"] = d / f"{stem}.instances.json"
    elif task == "panoptic":
        paths["panoptic_png"] = d / "panoptic" / f"{stem}.png"
        paths["panoptic_json"] = d / f"{stem}.panoptic.json"
    else:
        raise KnetError(f"unknown task '{task}' (choose semantic, instance or panoptic)")
    return paths


def run_output_paths(*, task: str, output_dir: Path) -> dict[str, Path]:
    """The files written once per run (after all images)."""
    d = Path(output_dir)
    return {"instance": {"instances": d / "instances.json"}, "panoptic": {"panoptic": d / "panoptic.json"}}.get(task, {})


def _model_meta(model, name: str):
    """A class-metadata attribute of the model, or of its config, or None."""
    value = getattr(model, name, None)
    if value is None:
        value = getattr(getattr(model, "config", None), name, None)
    if isinstance(value, (tuple, list)) and len(value) == 0:
        return None  # an empty field = not recorded
    return value


# COCO's category ids for the contiguous labels of the official checkpoints (things 1..90 with
# gaps; the 53 panoptic stuff classes in panoptic_coco_categories.json order = mmdet's label order).
COCO_THING_IDS = tuple(i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))
COCO_STUFF_IDS = (
    92, 93, 95, 100, 107, 109, 112, 118, 119, 122, 125, 128, 130, 133, 138, 141, 144, 145, 147, 148, 149, 151, 154, 155,
    156, 159, 161, 166, 168, 171, 175, 176, 177, 178, 180, 181, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194,
    195, 196, 197, 198, 199, 200,
)


def category_ids_of(model, num_classes: int) -> list[int]:
    """Dataset category id of each contiguous class index: the checkpoint's `category_ids` metadata
    when present; COCO's ids when the classes are exactly COCO's 80 things (instance) or 133
    panoptic classes (the official checkpoints); else label + 1."""
    from knet.models.coco_classes import COCO_PANOPTIC_CLASSES, COCO_THING_CLASSES

    ids = _model_meta(model, "category_ids")
    if ids is None:
        names = tuple(getattr(model, "class_names", ()))
        if names == tuple(COCO_THING_CLASSES):
            return list(COCO_THING_IDS)
        if names == tuple(COCO_PANOPTIC_CLASSES):
            return list(COCO_THING_IDS + COCO_STUFF_IDS)
        return list(range(1, num_classes + 1))
    ids = [int(i) for i in ids]
    if len(ids) != num_classes:
        raise KnetError(f"checkpoint metadata has {len(ids)} category ids for {num_classes} classes")
    return ids


def thing_flags_of(model, num_classes: int) -> list[bool] | None:
    """Per class: is it a thing class? (panoptic: things first, then stuff). None when unknown."""
    n = _model_meta(model, "num_thing_classes")
    if n is None:
        return None
    return [c < int(n) for c in range(num_classes)]


def _bbox(mask: np.ndarray) -> list[int]:
    """COCO [x, y, w, h] of a boolean mask (zeros for an empty mask)."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return [0, 0, 0, 0]
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]


def semantic_label_array(result: SemanticResult) -> np.ndarray:
    """[H, W] uint8 (or uint16 beyond 255 classes) class index per pixel, 255 = ignore."""
    label = np.asarray(result.label)
    if label.size and (label.min() < 0 or label.max() > 65535):
        raise KnetError("semantic result has labels outside 0..65535")
    return label.astype(np.uint8 if (label.size == 0 or label.max() <= 255) else np.uint16)


def instance_records(result: InstanceResult, *, image_id: int, category_ids: list[int]) -> list[dict]:
    """COCO results entries: {image_id, category_id, segmentation (compressed RLE), score}."""
    from knet.ops import rle  # the one RLE codec

    masks = np.asarray(result.masks, dtype=bool)  # [K, H, W]
    encoded = rle.encode(masks) if len(masks) else []
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_ids[int(lab)]),
            "segmentation": {"size": [int(v) for v in seg["size"]], "counts": _counts_str(seg["counts"])},
            "score": float(score),
        }
        for seg, lab, score in zip(encoded, result.labels, result.scores)
    ]


def _counts_str(counts) -> str:
    return counts.decode("ascii") if isinstance(counts, (bytes, bytearray)) else str(counts)


def panoptic_png_and_segments(result: PanopticResult, *, category_ids: list[int]) -> tuple[np.ndarray, list[dict]]:
    """COCO panoptic PNG pixels [H, W, 3] uint8 (id = R + 256 G + 256^2 B, 0 = VOID) and the
    segments_info list {id, category_id, iscrowd, area, bbox}; area and bbox measured on the map."""
    seg_map = np.asarray(result.segment_map).astype(np.int64)  # [H, W]
    if seg_map.size and (seg_map.min() < 0 or seg_map.max() >= 256**3):
        raise KnetError("panoptic segment ids must be in 0..16777215")
    rgb = np.stack([seg_map % 256, (seg_map // 256) % 256, seg_map // 65536], axis=-1).astype(np.uint8)
    infos = []
    for s in result.segments:
        mask = seg_map == s.id
        area = int(mask.sum())
        if area == 0:
            continue  # COCO panoptic: every listed segment has pixels in the PNG
        infos.append({"id": int(s.id), "category_id": int(category_ids[s.label]), "iscrowd": 0, "area": area, "bbox": _bbox(mask)})
    return rgb, infos


def segment_summaries(result, *, class_names: list[str], category_ids: list[int]) -> list[dict]:
    """One dict per segment for JSON lines: class, label, category_id, score, area (+ id, is_thing)."""
    def name(c: int) -> str:
        return class_names[c] if 0 <= c < len(class_names) else f"class {c}"

    out: list[dict] = []
    if isinstance(result, SemanticResult):
        labels, counts = np.unique(np.asarray(result.label), return_counts=True)
        for c, n in zip(labels.tolist(), counts.tolist()):
            if c == IGNORE_LABEL:
                continue
            out.append({"class": name(c), "label": c, "category_id": category_ids[c], "score": None, "area": n})
    elif isinstance(result, InstanceResult):
        areas = np.asarray(result.masks, dtype=bool).reshape(len(result.masks), -1).sum(axis=1)
        for lab, score, area in zip(result.labels.tolist(), result.scores.tolist(), areas.tolist()):
            out.append({"class": name(lab), "label": lab, "category_id": category_ids[lab], "score": _score(score), "area": int(area)})
    elif isinstance(result, PanopticResult):
        for s in result.segments:
            out.append({"id": s.id, "class": name(s.label), "label": s.label, "category_id": category_ids[s.label],
                        "is_thing": bool(s.is_thing), "score": _score(s.score), "area": int(s.area)})
    return out


def _score(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass
class OutputWriter:
    """Writes one image's outputs at a time and the run-level file at the end.

    Call `check(stems)` before any work: it fails on the first existing output (no --overwrite).
    """

    task: str
    output_dir: Path
    class_names: list[str]
    category_ids: list[int]
    thing_flags: list[bool] | None = None
    overwrite: bool = False
    show_stages: bool = False
    _instances: list[dict] = field(default_factory=list)
    _panoptic: list[dict] = field(default_factory=list)
    _images: list[dict] = field(default_factory=list)

    def paths(self, stem: str) -> dict[str, Path]:
        return image_output_paths(stem, task=self.task, output_dir=self.output_dir, show_stages=self.show_stages)

    def check(self, stems: list[str]) -> None:
        every = [p for stem in stems for p in self.paths(stem).values()]
        every += list(run_output_paths(task=self.task, output_dir=self.output_dir).values())
        check_writable(every, overwrite=self.overwrite)

    def write(self, *, stem: str, file_name: str, image_id: int, image: np.ndarray, result, stage_results=None) -> dict[str, str]:
        """Write every file for one image; returns {role: path}."""
        expected = RESULT_TYPES[self.task]
        if not isinstance(result, expected):
            raise KnetError(f"the model returned {type(result).__name__}, expected {expected.__name__} for --task {self.task}")
        paths = self.paths(stem)
        k = len(self.class_names)
        ow = self.overwrite
        save_png(paths["overlay"], draw_overlay(image, result, class_names=self.class_names, num_classes=k), overwrite=ow)
        if self.show_stages:
            if not stage_results:
                raise KnetError("--show-stages needs per-stage results from the model")
            fig = stage_figure(image, stage_results, class_names=self.class_names, num_classes=k, title=file_name)
            save_png(paths["stages"], fig, overwrite=ow)
        if self.task == "semantic":
            lab = semantic_label_array(result)
            save_png(paths["label"], lab, overwrite=ow, palette=palette(k) if lab.dtype == np.uint8 else None)
        elif self.task == "instance":
            records = instance_records(result, image_id=image_id, category_ids=self.category_ids)
            atomic_write_json(paths["instances"], records, overwrite=ow)
            self._instances.extend(records)
        else:
            rgb, infos = panoptic_png_and_segments(result, category_ids=self.category_ids)
            ann = {"image_id": int(image_id), "file_name": paths["panoptic_png"].name, "segments_info": infos}
            save_png(paths["panoptic_png"], rgb, overwrite=ow)
            atomic_write_json(paths["panoptic_json"], ann, overwrite=ow)
            self._panoptic.append(ann)
        h, w = np.asarray(image).shape[:2]
        self._images.append({"id": int(image_id), "file_name": file_name, "height": int(h), "width": int(w)})
        return {role: str(p) for role, p in paths.items()}

    def finish(self) -> dict[str, str]:
        """Write the run-level file (COCO results list or COCO panoptic JSON); returns {role: path}."""
        paths = run_output_paths(task=self.task, output_dir=self.output_dir)
        if self.task == "instance":
            atomic_write_json(paths["instances"], self._instances, overwrite=self.overwrite)
        elif self.task == "panoptic":
            doc = {"images": self._images, "annotations": self._panoptic, "categories": self.categories()}
            atomic_write_json(paths["panoptic"], doc, overwrite=self.overwrite)
        return {role: str(p) for role, p in paths.items()}

    def categories(self) -> list[dict]:
        cats = []
        for c, (cid, name) in enumerate(zip(self.category_ids, self.class_names)):
            cat = {"id": int(cid), "name": str(name)}
            if self.thing_flags is not None:
                cat["isthing"] = int(self.thing_flags[c])
            cats.append(cat)
        return cats


def jsonl_line(record: dict) -> str:
    """One compact JSON line (no NaN: scores that are not finite become null)."""
    return json.dumps(record, allow_nan=False, default=_jsonable)


def _jsonable(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
