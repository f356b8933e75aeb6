"""In-memory evaluators (reset / process / evaluate) and the torch-free evaluation path."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from knet.evaluation import CocoInstanceEvaluator, PanopticEvaluator, SemanticEvaluator, evaluate_coco, evaluate_panoptic
from knet.evaluation.png import read_label_map, read_panoptic_ids
from knet.evaluation.synthetic import make_coco_instances
from knet.evaluation.synthetic_panoptic import write_panoptic_set, write_semantic_set
from knet.ops import rle
from knet.structures import InstanceResult, PanopticResult, Segment, SemanticResult


def test_coco_instance_evaluator_matches_files():
    gt, res = make_coco_instances(num_images=5, dets_per_image=20, num_categories=3, seed=11)
    cat_ids = sorted(c["id"] for c in gt["categories"])
    ev = CocoInstanceEvaluator(gt)
    ev.reset()
    records = []
    for im in gt["images"]:
        mine = sorted((r for r in res if r["image_id"] == im["id"]), key=lambda r: -r["score"])
        if not mine:
            continue
        scores = np.array([r["score"] for r in mine], np.float32)
        masks = rle.decode([r["segmentation"] for r in mine]).astype(bool)
        ev.process([im["id"]], [InstanceResult(scores, np.array([cat_ids.index(r["category_id"]) for r in mine]), masks)])
        records += [dict(r, score=float(s)) for r, s in zip(mine, scores)]
    assert ev.evaluate().stats.tolist() == evaluate_coco(gt, records).stats.tolist()
    ev.reset()
    assert ev.results() == []


def test_panoptic_and_semantic_evaluators(tmp_path):
    p = write_panoptic_set(tmp_path / "pan", num_images=3, seed=8)
    gt = json.loads(p["gt_json"].read_text())
    pred = json.loads(p["pred_json"].read_text())
    cat_ids = sorted(c["id"] for c in gt["categories"])
    ev = PanopticEvaluator(p["gt_json"], p["gt_dir"])
    for a in pred["annotations"]:
        ids = read_panoptic_ids(p["pred_dir"] / a["file_name"]).astype(np.int32)
        segs = [Segment(id=s["id"], label=cat_ids.index(s["category_id"]), is_thing=True, score=1.0, area=s["area"]) for s in a["segments_info"]]
        ev.process([a["image_id"]], [PanopticResult(ids, segs)])
    ref = evaluate_panoptic(p["gt_json"], p["gt_dir"], p["pred_json"], p["pred_dir"])
    assert ev.evaluate().groups == ref.groups
    s = write_semantic_set(tmp_path / "sem", num_images=2, num_classes=4, seed=1)
    sev = SemanticEvaluator(num_classes=4)
    for f in sorted(s["gt_dir"].glob("*.png")):
        sev.process([read_label_map(f)], [SemanticResult(read_label_map(s["pred_dir"] / f.name).astype(np.int64))])
    r = sev.evaluate()
    assert 0 < r.mIoU <= 1 and 0 < r.aAcc <= 1


@pytest.mark.skipif(importlib.util.find_spec("knet._eval_C") is None, reason="knet._eval_C not built")
def test_file_evaluation_does_not_import_torch(tmp_path):
    gt, res = make_coco_instances(num_images=2, dets_per_image=5, num_categories=2, seed=2)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    code = (
        "import sys; from knet.evaluation import evaluate_coco; "
        f"r = evaluate_coco({str(tmp_path / 'gt.json')!r}, {str(tmp_path / 'res.json')!r}); "
        "print('torch' in sys.modules, r.stats[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False"
