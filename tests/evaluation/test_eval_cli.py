"""`knet eval ...` through typer's CliRunner, including model evaluation with a stub predictor."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import knet.engine.predictor as predictor_mod
from knet.cli.main import app
from knet.evaluation.coco import evaluate_coco
from knet.evaluation.panoptic import evaluate_panoptic
from knet.evaluation.png import read_label_map, read_panoptic_ids
from knet.evaluation.semantic import evaluate_semantic
from knet.evaluation.synthetic import make_coco_instances
from knet.evaluation.synthetic_panoptic import write_panoptic_set, write_semantic_set
from knet.ops import rle
from knet.structures import InstanceResult, PanopticResult, Segment, SemanticResult

runner = CliRunner()


def _invoke(args):
    return runner.invoke(app, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def coco_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("coco")
    gt, res = make_coco_instances(num_images=6, dets_per_image=30, num_categories=4, seed=9)
    (d / "gt.json").write_text(json.dumps(gt))
    (d / "res.json").write_text(json.dumps(res))
    return d, gt, res


def test_eval_coco_files(coco_files, tmp_path):
    d, gt, res = coco_files
    out = tmp_path / "m.json"
    r = _invoke(["eval", "coco", "--gt", str(d / "gt.json"), "--results", str(d / "res.json"), "--json", str(out)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any(line.startswith(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = ") for line in lines)
    assert sum("Average Recall" in line for line in lines) == 6
    m = json.loads(out.read_text())
    ref = evaluate_coco(gt, res)
    assert [m[k] for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")] == ref.stats.tolist()
    assert set(m["per_category"]) == {c["name"] for c in gt["categories"]}
    # no clobbering without --overwrite; with it the file is replaced
    r = runner.invoke(app, ["eval", "coco", "--gt", str(d / "gt.json"), "--results", str(d / "res.json"), "--json", str(out)])
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = _invoke(["eval", "coco", "--gt", str(d / "gt.json"), "--results", str(d / "res.json"), "--json", str(out), "--overwrite", "--iou-type", "bbox"])
    assert r.exit_code == 0


def test_eval_coco_errors(coco_files, tmp_path):
    d, gt, res = coco_files
    (tmp_path / "bad.json").write_text("[{")
    r = runner.invoke(app, ["eval", "coco", "--gt", str(d / "gt.json"), "--results", str(tmp_path / "bad.json")])
    assert r.exit_code == 2 and "knet: error:" in r.output and "Traceback" not in r.output
    bad = [dict(res[0], image_id=123456789)]
    (tmp_path / "bad2.json").write_text(json.dumps(bad))
    r = runner.invoke(app, ["eval", "coco", "--gt", str(d / "gt.json"), "--results", str(tmp_path / "bad2.json")])
    assert r.exit_code == 2 and "123456789" in r.output
    r = runner.invoke(app, ["eval", "coco", "--data", str(tmp_path), "--checkpoint", "x.safetensors"])
    assert r.exit_code == 2 and "annotations/instances_val2017.json" in r.output
    r = runner.invoke(app, ["eval", "coco", "--data", str(tmp_path), "--checkpoint", "x", "--task", "panoptic"])
    assert r.exit_code == 2 and "annotations/panoptic_val2017.json" in r.output
    r = runner.invoke(app, ["eval", "ade20k", "--data", str(tmp_path), "--checkpoint", "x"])
    assert r.exit_code == 2 and "ADEChallengeData2016/images/validation" in r.output


def test_eval_panoptic_and_semantic_files(tmp_path):
    p = write_panoptic_set(tmp_path / "pan", num_images=4, seed=1)
    out = tmp_path / "pq.json"
    r = _invoke(["eval", "panoptic", "--gt-json", str(p["gt_json"]), "--gt-dir", str(p["gt_dir"]), "--pred-json", str(p["pred_json"]), "--pred-dir", str(p["pred_dir"]), "--json", str(out)])
    assert r.exit_code == 0, r.output
    ref = evaluate_panoptic(p["gt_json"], p["gt_dir"], p["pred_json"], p["pred_dir"])
    assert json.loads(out.read_text())["All"]["pq"] == ref.groups["All"]["pq"]
    assert "Things" in r.output and "Stuff" in r.output
    s = write_semantic_set(tmp_path / "sem", num_images=3, num_classes=5, seed=2)
    out = tmp_path / "miou.json"
    r = _invoke(["eval", "semantic", "--gt-dir", str(s["gt_dir"]), "--pred-dir", str(s["pred_dir"]), "--num-classes", "5", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["mIoU"] == evaluate_semantic(s["gt_dir"], s["pred_dir"], num_classes=5).mIoU


class StubPredictor:
    """Feeds results prepared from files, in call order; stage 0 keeps every other result."""

    def __init__(self, task, outputs, class_names):
        self.task = task
        self.class_names = class_names
        self.outputs = list(outputs)
        self.calls = 0

    def __call__(self, images, all_stages=False, **_):
        out = []
        for img in images:
            res = self.outputs[self.calls]
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
            self.calls += 1
            out.append([self.degrade(res), res] if all_stages else res)
        return out

    @staticmethod
    def degrade(res):
        if isinstance(res, InstanceResult):
            return InstanceResult(res.scores[::2], res.labels[::2], res.masks[::2])
        if isinstance(res, PanopticResult):
            keep = res.segments[::2]
            ids = [s.id for s in keep]
            return PanopticResult(np.where(np.isin(res.segment_map, ids), res.segment_map, 0).astype(np.int32), keep)
        return SemanticResult(np.where(res.label % 2 == 0, res.label, 0))


def _patch(monkeypatch, stub):
    def fake_load(checkpoint, *, task, device):
        assert checkpoint == "stub.safetensors"
        return stub

    monkeypatch.setattr(predictor_mod, "load_predictor", fake_load)


def _jpg(path, h, w):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)


def test_model_eval_coco_instance_stub(coco_files, tmp_path, monkeypatch):
    _, gt, res = coco_files
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(gt))
    cat_ids = sorted(c["id"] for c in gt["categories"])
    outputs, records = [], []
    for im in sorted(gt["images"], key=lambda x: x["id"]):
        _jpg(root / "val2017" / im["file_name"], im["height"], im["width"])
        mine = [r for r in res if r["image_id"] == im["id"]]
        mine.sort(key=lambda r: -r["score"])
        scores = np.array([r["score"] for r in mine], np.float32)
        masks = rle.decode([r["segmentation"] for r in mine]).astype(bool) if mine else np.zeros((0, im["height"], im["width"]), bool)
        outputs.append(InstanceResult(scores, np.array([cat_ids.index(r["category_id"]) for r in mine], np.int64), masks))
        records += [dict(r, score=float(s)) for r, s in zip(mine, scores)]
    stub = StubPredictor("instance", outputs, [c["name"] for c in gt["categories"]])
    _patch(monkeypatch, stub)
    out = tmp_path / "m.json"
    r = _invoke(["eval", "coco", "--split", "val", "--data", str(root), "--checkpoint", "stub.safetensors", "--task", "instance", "--stages", "--json", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["AP"] == evaluate_coco(gt, records).stats[0]
    assert len(m["stages"]) == 2 and m["stages"][0]["AP"] <= m["AP"]
    assert "== stage 1 ==" in r.output


def test_model_eval_panoptic_and_ade_stub(tmp_path, monkeypatch):
    p = write_panoptic_set(tmp_path / "pan", num_images=3, seed=5)
    gt = json.loads(p["gt_json"].read_text())
    pred = json.loads(p["pred_json"].read_text())
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "panoptic_val2017.json").write_text(json.dumps(gt))
    p["gt_dir"].rename(root / "annotations" / "panoptic_val2017")
    cat_ids = sorted(c["id"] for c in gt["categories"])
    things = {c["id"]: c["isthing"] == 1 for c in gt["categories"]}
    outputs = []
    for im, a in zip(gt["images"], pred["annotations"]):
        _jpg(root / "val2017" / im["file_name"], im["height"], im["width"])
        ids = read_panoptic_ids(p["pred_dir"] / a["file_name"]).astype(np.int32)
        segs = [Segment(id=s["id"], label=cat_ids.index(s["category_id"]), is_thing=things[s["category_id"]], score=1.0, area=s["area"]) for s in a["segments_info"]]
        outputs.append(PanopticResult(ids, segs))
    _patch(monkeypatch, StubPredictor("panoptic", outputs, [c["name"] for c in gt["categories"]]))
    out = tmp_path / "pq.json"
    r = _invoke(["eval", "coco", "--data", str(root), "--checkpoint", "stub.safetensors", "--task", "panoptic", "--json", str(out)])
    assert r.exit_code == 0, r.output
    ref = evaluate_panoptic(root / "annotations" / "panoptic_val2017.json", root / "annotations" / "panoptic_val2017", p["pred_json"], p["pred_dir"])
    assert json.loads(out.read_text())["All"]["pq"] == ref.groups["All"]["pq"]

    s = write_semantic_set(tmp_path / "sem", num_images=3, num_classes=150, seed=3)
    ade = tmp_path / "ade" / "ADEChallengeData2016"
    (ade / "annotations").mkdir(parents=True)
    s["gt_dir"].rename(ade / "annotations" / "validation")
    outs = []
    for f in sorted((ade / "annotations" / "validation").glob("*.png")):
        lab = read_label_map(f)
        _jpg(ade / "images" / "validation" / (f.stem + ".jpg"), *lab.shape)
        outs.append(SemanticResult(read_label_map(s["pred_dir"] / f.name).astype(np.int64)))
    _patch(monkeypatch, StubPredictor("semantic", outs, [f"c{i}" for i in range(150)]))
    out = tmp_path / "ade.json"
    r = _invoke(["eval", "ade20k", "--split", "val", "--data", str(tmp_path / "ade"), "--checkpoint", "stub.safetensors", "--stages", "--json", str(out)])
    assert r.exit_code == 0, r.output
    ref = evaluate_semantic(ade / "annotations" / "validation", s["pred_dir"], num_classes=150, reduce_zero_label=True)
    m = json.loads(out.read_text())
    assert m["mIoU"] == ref.mIoU and len(m["stages"]) == 2
