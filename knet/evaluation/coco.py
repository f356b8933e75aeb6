"""COCO instance evaluation (segm mask AP, bbox AP), bit-identical to pycocotools' COCOeval.

    result = evaluate_coco("instances_val2017.json", "results.json")          # segm, mask areas
    result = evaluate_coco(gt_dict, results_list, iou_type="bbox")
    print("\\n".join(result.summary_lines())); result.stats; result.as_dict()

The matching and accumulation run in C++ (csrc/ops/coco_eval), threaded over categories; the
12 summary numbers are averaged here with numpy exactly as COCOeval.summarize does, so every
stat and the full precision array equal pycocotools' bit for bit. Given file paths, the instances
file and the results file are read by C++ readers (no Python object per annotation or detection;
the results file on several threads, each detection's IoUs computed as its record is read).

Area ranges. pycocotools' loadRes picks, from the FIRST result alone, whether every result's area
is its box area (first result has a non-empty "bbox") or its mask area. For segm evaluation knet
uses the mask area of every result (what detectron2 gets by dropping "bbox"), so APs/APm/APl are
measured on masks; `pycocotools_compat=True` reproduces the first-entry rule. For bbox evaluation
knet uses each result's box area (given box, else the mask's box). Ground-truth areas are the
JSON "area" field, as in pycocotools. Results may carry polygons, uncompressed or compressed RLE.
Other reproduced rules: stable score sorts (ties keep file order), 100 detections per (image,
category), inclusive area ranges, crowd = intersection over detection area, -1 for cells
without ground truth. knet raises a KnetError where pycocotools crashes or asserts (result
image id not in the ground truth, malformed entries) and evaluates an empty results list
(every category with ground truth gets AP 0) where loadRes raises IndexError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knet.errors import KnetError
from knet.evaluation.jsonio import load_json
from knet.evaluation.native import native as ext

# COCOeval Params (segm/bbox), computed with the same numpy calls so every double is identical.
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RNG = [[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]]
AREA_LBL = ["all", "small", "medium", "large"]
MAX_DETS = [1, 10, 100]
STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
IOU_TYPES = ("segm", "bbox")


@dataclass
class CocoGroundTruth:
    """The parts of a COCO instances file the evaluator needs (images sorted by id)."""

    img_ids: list[int]
    heights: list[int]
    widths: list[int]
    cat_ids: list[int]
    cat_names: list[str]
    annotations: list[dict]

    @staticmethod
    def from_dict(data: Any, *, source: str = "ground truth") -> "CocoGroundTruth":
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise KnetError(f"{source} is not a COCO instances file (no 'images' list)")
        for key in ("annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise KnetError(f"{source} is not a COCO instances file (no '{key}' list)")
        try:
            imgs = {int(im["id"]): im for im in data["images"]}
            img_ids = sorted(imgs)
            heights = [int(imgs[i]["height"]) for i in img_ids]
            widths = [int(imgs[i]["width"]) for i in img_ids]
            cats = {int(c["id"]): c for c in data["categories"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise KnetError(f"{source}: malformed image or category entry ({exc.__class__.__name__}: {exc})") from None
        cat_ids = sorted(cats)
        names = [str(cats[c].get("name", c)) for c in cat_ids]
        return CocoGroundTruth(img_ids, heights, widths, cat_ids, names, data["annotations"])

    @staticmethod
    def load(gt: "str | os.PathLike | dict | CocoGroundTruth") -> "CocoGroundTruth":
        if isinstance(gt, CocoGroundTruth):
            return gt
        if isinstance(gt, dict):
            return CocoGroundTruth.from_dict(gt)
        return CocoGroundTruth.from_dict(load_json(gt, what="ground-truth file"), source=str(gt))


@dataclass
class CocoEvalResult:
    """pycocotools' eval arrays plus the 12 summary stats (raw fractions, -1 where undefined)."""

    iou_type: str
    precision: np.ndarray  # [T, R, K, A, M]
    recall: np.ndarray  # [T, K, A, M]
    scores: np.ndarray  # [T, R, K, A, M]
    cat_ids: list[int]
    cat_names: list[str]
    stats: np.ndarray = field(default_factory=lambda: np.zeros(12))

    def per_category_ap(self) -> dict[str, float]:
        """AP@[.5:.95], area all, 100 dets, per category name (nan without ground truth)."""
        out = {}
        for k, name in enumerate(self.cat_names):
            p = self.precision[:, :, k, 0, -1]
            p = p[p > -1]
            out[name] = float(np.mean(p)) if p.size else float("nan")
        return out

    def summary_lines(self) -> list[str]:
        """The 12 lines COCOeval.summarize() prints, in its exact format."""
        lines = []
        spec = _summary_spec()
        for (ap, iou_thr, area, max_dets), value in zip(spec, self.stats):
            title = "Average Precision" if ap else "Average Recall"
            kind = "(AP)" if ap else "(AR)"
            iou = f"{IOU_THRS[0]:0.2f}:{IOU_THRS[-1]:0.2f}" if iou_thr is None else f"{iou_thr:0.2f}"
            lines.append(f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_dets:>3d} ] = {value:0.3f}")
        return lines

    def as_dict(self) -> dict:
        """{"AP": ..., ..., "ARl": ..., "per_category": {name: AP}} (fractions; nan -> None)."""
        d: dict[str, Any] = {name: float(v) for name, v in zip(STAT_NAMES, self.stats)}
        d["per_category"] = {k: (None if np.isnan(v) else v) for k, v in self.per_category_ap().items()}
        return d


def _summary_spec():
    return [
        (1, None, "all", 100), (1, 0.5, "all", 100), (1, 0.75, "all", 100),
        (1, None, "small", 100), (1, None, "medium", 100), (1, None, "large", 100),
        (0, None, "all", 1), (0, None, "all", 10), (0, None, "all", 100),
        (0, None, "small", 100), (0, None, "medium", 100), (0, None, "large", 100),
    ]  # fmt: skip


def summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """COCOeval.summarize's 12 numbers, with the same numpy indexing and means."""
    stats = np.zeros((12,))
    for i, (ap, iou_thr, area, max_dets) in enumerate(_summary_spec()):
        aind = [j for j, a in enumerate(AREA_LBL) if a == area]
        mind = [j for j, m in enumerate(MAX_DETS) if m == max_dets]
        if ap == 1:
            s = precision
            if iou_thr is not None:
                s = s[np.where(iou_thr == IOU_THRS)[0]]
            s = s[:, :, :, aind, mind]
        else:
            s = recall
            if iou_thr is not None:
                s = s[np.where(iou_thr == IOU_THRS)[0]]
            s = s[:, :, aind, mind]
        stats[i] = -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])
    return stats


def _area_mode(results: list, iou_type: str, compat: bool) -> int:
    # 0: mask area, 1: given-box area (bbox required), 2: given box or mask box area
    if compat:
        first = results[0] if results else {}
        box = first.get("bbox") if isinstance(first, dict) else None
        return 1 if box is not None and len(box) > 0 else 0
    return 0 if iou_type == "segm" else 2


def _add_gts(core, gt: CocoGroundTruth) -> None:
    try:
        core.add_gts(gt.annotations)
    except ValueError as exc:
        raise KnetError(f"ground truth: {exc}") from None


def _core_from_gt(gt: "str | os.PathLike | dict | CocoGroundTruth", use_segm: bool):
    """(core with the ground truth loaded, category ids, category names)."""
    if isinstance(gt, (str, os.PathLike)):  # the C++ reader: no Python object per annotation
        path = Path(gt)
        if not path.is_file():
            raise KnetError(f"ground-truth file not found: {path}")
        try:
            core = ext().CocoEvalCore.from_gt_file(str(path), use_segm)
        except ValueError as exc:
            msg = str(exc)
            raise KnetError(f"ground-truth file {path}{'' if msg.startswith(':') else ' '}{msg}") from None
        return core, list(core.cat_ids), list(core.cat_names)
    gt = CocoGroundTruth.load(gt)
    core = ext().CocoEvalCore(gt.img_ids, gt.heights, gt.widths, gt.cat_ids, use_segm)
    _add_gts(core, gt)
    return core, list(gt.cat_ids), list(gt.cat_names)


def evaluate_coco(
    gt: "str | os.PathLike | dict | CocoGroundTruth",
    results: "str | os.PathLike | list[dict]",
    *,
    iou_type: str = "segm",
    pycocotools_compat: bool = False,
) -> CocoEvalResult:
    """Evaluate COCO results (file path or loaded list) against ground truth (path or dict)."""
    if iou_type not in IOU_TYPES:
        raise KnetError(f"unknown IoU type {iou_type!r}; expected one of {', '.join(IOU_TYPES)}")
    if not isinstance(results, list) and not isinstance(results, (str, os.PathLike)):
        raise KnetError(f"results must be a file path or a list of detections, not {type(results).__name__}")
    core, cat_ids, cat_names = _core_from_gt(gt, iou_type == "segm")
    if isinstance(results, list):
        try:
            core.add_dts(results, _area_mode(results, iou_type, pycocotools_compat))
        except ValueError as exc:
            raise KnetError(f"results: {exc}") from None
    else:  # read by the C++ JSON reader on several threads (no Python object per detection)
        path = Path(results)
        if not path.is_file():
            raise KnetError(f"results file not found: {path}")
        mode = 3 if pycocotools_compat else (0 if iou_type == "segm" else 2)
        try:
            core.add_dts_file(str(path), mode)  # releases the GIL while parsing
        except ValueError as exc:
            raise KnetError(f"results file {path}: {exc}") from None
    precision, recall, scores = core.evaluate(
        IOU_THRS.tolist(), REC_THRS.tolist(), [float(a[0]) for a in AREA_RNG], [float(a[1]) for a in AREA_RNG], MAX_DETS
    )
    return CocoEvalResult(
        iou_type=iou_type,
        precision=precision,
        recall=recall,
        scores=scores,
        cat_ids=cat_ids,
        cat_names=cat_names,
        stats=summarize(precision, recall),
    )
