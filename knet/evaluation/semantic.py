"""Semantic segmentation metrics with the MMSegmentation protocol: mIoU, mAcc, aAcc, fwIoU.

    result = evaluate_semantic(gt_dir, pred_dir, num_classes=150, reduce_zero_label=True)
    acc = SemanticAccumulator(num_classes=150); acc.add(pred, label); acc.result()

Per image, over pixels whose label != ignore_index (after reduce_zero_label: 0 -> ignored,
others - 1), integer histograms of intersection, predicted area and label area; values outside
[0, num_classes) are not counted (torch.histc's range). Summed over images, then
IoU_c = I_c / (P_c + L_c - I_c), Acc_c = I_c / L_c, mIoU / mAcc = nanmean, aAcc = sum I / sum L,
fwIoU = sum_c (L_c / sum L) IoU_c over classes with L_c > 0.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knet.errors import KnetError
from knet.evaluation.png import read_label_map
from knet.evaluation.native import native as ext


@dataclass
class SemanticEvalResult:
    mIoU: float
    mAcc: float
    aAcc: float
    fwIoU: float
    iou: np.ndarray  # [C], nan where the class has no union
    acc: np.ndarray  # [C], nan where the class has no label pixels
    class_names: list[str]

    def summary_lines(self) -> list[str]:
        lines = [f"mIoU {100 * self.mIoU:6.2f}  mAcc {100 * self.mAcc:6.2f}  aAcc {100 * self.aAcc:6.2f}  fwIoU {100 * self.fwIoU:6.2f}"]
        for name, i, a in zip(self.class_names, self.iou, self.acc):
            lines.append(f"{name:<24} IoU {100 * i:6.2f}  Acc {100 * a:6.2f}")
        return lines

    def as_dict(self) -> dict:
        def f(x):
            return None if np.isnan(x) else float(x)

        return {
            "mIoU": f(self.mIoU), "mAcc": f(self.mAcc), "aAcc": f(self.aAcc), "fwIoU": f(self.fwIoU),
            "per_class": {n: {"IoU": f(i), "Acc": f(a)} for n, i, a in zip(self.class_names, self.iou, self.acc)},
        }  # fmt: skip


class SemanticAccumulator:
    """Sums the per-image mmseg histograms; `result()` gives the metrics."""

    def __init__(self, *, num_classes: int, ignore_index: int = 255, reduce_zero_label: bool = False, class_names: list[str] | None = None) -> None:
        if num_classes <= 0:
            raise KnetError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        self.reset()

    def reset(self) -> None:
        c = self.num_classes
        self.inter = np.zeros(c, np.int64)
        self.pred_area = np.zeros(c, np.int64)
        self.label_area = np.zeros(c, np.int64)

    def add(self, pred: np.ndarray, label: np.ndarray, *, image: str = "") -> None:
        pred, label = np.asarray(pred), np.asarray(label)
        if pred.shape != label.shape:
            raise KnetError(f"image {image}: prediction {pred.shape} and label {label.shape} differ in size")
        p = pred if pred.dtype == np.uint8 else pred.astype(np.int64, copy=False)
        lab = label if label.dtype == np.uint8 else label.astype(np.int64, copy=False)
        ext().semantic_accumulate(p, lab, self.num_classes, self.ignore_index, self.reduce_zero_label, self.inter, self.pred_area, self.label_area)

    def result(self) -> SemanticEvalResult:
        i = self.inter.astype(np.float64)
        p = self.pred_area.astype(np.float64)
        lab = self.label_area.astype(np.float64)
        union = p + lab - i
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = i / union
            acc = i / lab
            aacc = i.sum() / lab.sum()
            freq = lab / lab.sum()
        valid = freq > 0
        nan = float("nan")
        miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else nan
        macc = float(np.nanmean(acc)) if np.isfinite(acc).any() else nan
        fw = float((freq[valid] * iou[valid]).sum()) if valid.any() else nan
        return SemanticEvalResult(miou, macc, float(aacc), fw, iou, acc, list(self.class_names))


def evaluate_semantic(
    gt_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    *,
    num_classes: int,
    ignore_index: int = 255,
    reduce_zero_label: bool = False,
    class_names: list[str] | None = None,
    threads: int | None = None,
) -> SemanticEvalResult:
    """Label PNGs in gt_dir vs prediction PNGs of the same names in pred_dir."""
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for d, what in ((gt_dir, "ground-truth label folder"), (pred_dir, "prediction folder")):
        if not d.is_dir():
            raise KnetError(f"{what} not found: {d}")
    names = sorted(p.name for p in gt_dir.glob("*.png"))
    if not names:
        raise KnetError(f"no .png label maps in {gt_dir}")
    missing = [n for n in names if not (pred_dir / n).is_file()]
    if missing:
        raise KnetError(f"{len(missing)} prediction(s) missing in {pred_dir}, e.g. {missing[0]}")
    acc = SemanticAccumulator(num_classes=num_classes, ignore_index=ignore_index, reduce_zero_label=reduce_zero_label, class_names=class_names)

    def load(name):
        return read_label_map(pred_dir / name), read_label_map(gt_dir / name)

    with ThreadPoolExecutor(max_workers=threads or min(4, os.cpu_count() or 1)) as pool:
        for name, (pred, label) in zip(names, pool.map(load, names)):
            acc.add(pred, label, image=name)
    return acc.result()
