"""Evaluators for training loops (detectron2 style): `reset()`, `process(...)`, `evaluate()`.

    ev = CocoInstanceEvaluator("instances_val2017.json")
    ev.reset(); ev.process([image_id], [instance_result]); ev.evaluate().stats
    ev = PanopticEvaluator("panoptic_val2017.json", "panoptic_val2017/")
    ev = SemanticEvaluator(num_classes=150, reduce_zero_label=True)

They take in-memory knet.structures results. Class index c maps to the c-th ground-truth
category in id order unless `category_ids` is given.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from knet.errors import KnetError
from knet.evaluation.coco import CocoEvalResult, CocoGroundTruth, evaluate_coco
from knet.evaluation.jsonio import load_json
from knet.evaluation.panoptic import PanopticAccumulator, PanopticEvalResult
from knet.evaluation.png import read_panoptic_ids
from knet.evaluation.semantic import SemanticAccumulator, SemanticEvalResult
from knet.structures import InstanceResult, PanopticResult, SemanticResult


class CocoInstanceEvaluator:
    """Mask (or box) AP of InstanceResults against a COCO instances file, bit-identical to pycocotools."""

    def __init__(self, gt: str | os.PathLike | dict, *, category_ids: list[int] | None = None, iou_type: str = "segm") -> None:
        self.gt = CocoGroundTruth.load(gt)
        self.category_ids = list(category_ids) if category_ids is not None else list(self.gt.cat_ids)
        self.iou_type = iou_type
        self.reset()

    def reset(self) -> None:
        self._records: list[dict] = []

    def process(self, image_ids: list[int], results: list[InstanceResult]) -> None:
        from knet.ops import rle  # the codec lives with the kernels (and needs knet._C)

        if len(image_ids) != len(results):
            raise KnetError(f"{len(image_ids)} image ids for {len(results)} results")
        for img_id, res in zip(image_ids, results):
            labels = np.asarray(res.labels).tolist()
            if not labels:
                continue
            encoded = rle.encode(np.asarray(res.masks, dtype=bool))
            boxes = rle.to_bbox(encoded).tolist() if self.iou_type == "bbox" else None
            for k, (score, lab, seg) in enumerate(zip(np.asarray(res.scores).tolist(), labels, encoded)):
                if not 0 <= lab < len(self.category_ids):
                    raise KnetError(f"class index {lab} has no category id ({len(self.category_ids)} known)")
                rec = {"image_id": int(img_id), "category_id": self.category_ids[lab], "score": float(score), "segmentation": seg}
                if boxes is not None:
                    rec["bbox"] = boxes[k]
                self._records.append(rec)

    def results(self) -> list[dict]:
        """The COCO results list collected so far (for writing a results file)."""
        return list(self._records)

    def evaluate(self) -> CocoEvalResult:
        return evaluate_coco(self.gt, self._records, iou_type=self.iou_type)


class PanopticEvaluator:
    """PQ of PanopticResults against a COCO panoptic JSON + PNG folder, identical to panopticapi."""

    def __init__(self, gt_json: str | os.PathLike | dict, gt_dir: str | os.PathLike, *, category_ids: list[int] | None = None, chunks: int | None = None) -> None:
        data = gt_json if isinstance(gt_json, dict) else load_json(gt_json, what="ground-truth panoptic JSON")
        if not isinstance(data, dict) or not isinstance(data.get("annotations"), list) or not isinstance(data.get("categories"), list):
            raise KnetError("ground-truth panoptic JSON needs 'annotations' and 'categories' lists")
        self.categories = data["categories"]
        self.gt_by_image = {a["image_id"]: a for a in data["annotations"]}
        self.gt_dir = Path(gt_dir)
        self.category_ids = list(category_ids) if category_ids is not None else sorted(int(c["id"]) for c in self.categories)
        self.chunks = chunks
        self.reset()

    def reset(self) -> None:
        self._acc = PanopticAccumulator(self.categories, chunks=self.chunks)

    def process(self, image_ids: list[int], results: list[PanopticResult]) -> None:
        for img_id, res in zip(image_ids, results):
            ann = self.gt_by_image.get(img_id)
            if ann is None:
                raise KnetError(f"image id {img_id} is not in the panoptic ground truth")
            seg_map = np.asarray(res.segment_map)
            present = set(np.unique(seg_map).tolist())
            segs = [{"id": int(s.id), "category_id": self.category_ids[s.label]} for s in res.segments if s.id in present]
            gt_ids = read_panoptic_ids(self.gt_dir / ann["file_name"])
            self._acc.add_image(gt_ids, ann["segments_info"], seg_map.astype(np.uint32), segs, image=str(img_id))

    def evaluate(self) -> PanopticEvalResult:
        return self._acc.result()


class SemanticEvaluator:
    """mIoU / mAcc / aAcc / fwIoU of SemanticResults (MMSegmentation protocol)."""

    def __init__(self, *, num_classes: int, ignore_index: int = 255, reduce_zero_label: bool = False, class_names: list[str] | None = None) -> None:
        self._acc = SemanticAccumulator(num_classes=num_classes, ignore_index=ignore_index, reduce_zero_label=reduce_zero_label, class_names=class_names)

    def reset(self) -> None:
        self._acc.reset()

    def process(self, labels: list[np.ndarray], results: list[SemanticResult]) -> None:
        for lab, res in zip(labels, results):
            self._acc.add(np.asarray(res.label), np.asarray(lab))

    def evaluate(self) -> SemanticEvalResult:
        return self._acc.result()
