"""Score a model's val-split predictions with the knet.evaluation code (the `knet eval` numbers).

    metrics = evaluate_predictions("instance", dataset, results)     # {"AP": .., "AP50": .., ...}

`results` are knet.structures results in dataset order; ids and category ids come from the
dataset's own files, so the numbers equal `knet eval` on written outputs.
"""

from __future__ import annotations

from typing import Any

from knet.errors import KnetError


def instance_results_json(dataset, results: list) -> list[dict[str, Any]]:
    """InstanceResults -> COCO results entries (compressed RLE, dataset category ids)."""
    from knet.ops import rle

    out = []
    for info, r in zip(dataset.images, results):
        if len(r.scores) == 0:
            continue
        encoded = rle.encode(r.masks)
        for score, label, seg in zip(r.scores.tolist(), r.labels.tolist(), encoded):
            out.append({"image_id": info["id"], "category_id": dataset.classes.category_ids[int(label)],
                        "segmentation": seg, "score": float(score)})  # fmt: skip
    return out


def evaluate_predictions(task: str, dataset, results: list) -> dict[str, float]:
    if task == "instance":
        from knet.evaluation.coco import evaluate_coco

        from knet.fileio import read_json

        gt = read_json(dataset.ann_file, what="annotation file")
        ids = {info["id"] for info in dataset.images[: len(results)]}  # the images that were predicted
        gt = {**gt, "images": [im for im in gt["images"] if im["id"] in ids],
              "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}  # fmt: skip
        res = evaluate_coco(gt, instance_results_json(dataset, results), iou_type="segm")
        d = res.as_dict()
        return {k: round(100 * d[k], 2) for k in ("AP", "AP50", "AP75")}
    if task == "panoptic":
        import numpy as np

        from knet.evaluation.panoptic import PanopticAccumulator

        acc = PanopticAccumulator(dataset.categories())
        cats = dataset.classes.category_ids
        for index, r in enumerate(results):
            gt_ids, gt_segments = dataset.ground_truth(index)
            pred_segments = [{"id": s.id, "category_id": cats[s.label]} for s in r.segments]
            acc.add_image(gt_ids, gt_segments, r.segment_map.astype(np.int64), pred_segments, image=str(dataset.image_path(index)))
        groups = acc.result().groups
        out = {k.upper(): round(100 * groups["All"][k], 2) for k in ("pq", "sq", "rq")}
        for name in ("Things", "Stuff"):
            if groups[name]["n"]:
                out[f"PQ_{name.lower()}"] = round(100 * groups[name]["pq"], 2)
        return out
    if task == "semantic":
        from knet.evaluation.semantic import SemanticAccumulator

        acc = SemanticAccumulator(num_classes=len(dataset.classes.names), class_names=list(dataset.classes.names))
        for index, r in enumerate(results):
            acc.add(r.label, dataset[index].sem_seg, image=str(dataset.image_path(index)))
        res = acc.result()
        return {"mIoU": round(100 * res.mIoU, 2), "mAcc": round(100 * res.mAcc, 2), "aAcc": round(100 * res.aAcc, 2)}
    raise KnetError(f"unknown task '{task}'")
