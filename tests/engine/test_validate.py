"""Validation glue: ground truth fed back as predictions scores 100 with the knet.evaluation code."""

import numpy as np
import pytest

from knet.data.catalog import open_dataset
from knet.data.synth import write_synth
from knet.engine.evaluate_results import evaluate_predictions
from knet.structures import InstanceResult, PanopticResult, Segment, SemanticResult


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("val")
    for task in ("panoptic", "instance", "semantic"):
        write_synth(r / task, task=task, images=0, val_images=3, seed=5, size=(48, 64))
    return r


def test_panoptic_perfect_and_degraded(root):
    ds = open_dataset(str(root / "panoptic"), task="panoptic", split="val")
    perfect = []
    for i in range(len(ds)):
        ids, segs = ds.ground_truth(i)
        seg_map = np.zeros(ids.shape, np.int32)
        out = []
        for k, s in enumerate(s for s in segs if not s["iscrowd"]):
            seg_map[ids == s["id"]] = k + 1
            label = ds.classes.category_ids.index(s["category_id"])
            out.append(Segment(id=k + 1, label=label, is_thing=ds.classes.is_thing[label], score=1.0, area=int((ids == s["id"]).sum())))
        perfect.append(PanopticResult(segment_map=seg_map, segments=out))
    m = evaluate_predictions("panoptic", ds, perfect)
    assert m["PQ"] == pytest.approx(100.0) and m["PQ_things"] == pytest.approx(100.0)
    empty = [PanopticResult(segment_map=np.zeros_like(r.segment_map), segments=[]) for r in perfect]
    assert evaluate_predictions("panoptic", ds, empty)["PQ"] == 0.0


def test_instance_perfect(root):
    ds = open_dataset(str(root / "instance"), task="instance", split="val")
    results = []
    for i in range(len(ds)):
        s = ds[i]
        n = len(s.thing_labels)
        results.append(InstanceResult(scores=np.linspace(1, 0.5, n).astype(np.float32), labels=s.thing_labels, masks=s.thing_masks))
    m = evaluate_predictions("instance", ds, results)
    assert m["AP"] == pytest.approx(100.0) and m["AP50"] == pytest.approx(100.0)
    assert evaluate_predictions("instance", ds, results[:1])["AP"] == pytest.approx(100.0)  # subset: gt restricted too


def test_semantic_perfect(root):
    ds = open_dataset(str(root / "semantic"), task="semantic", split="val")
    results = [SemanticResult(label=ds[i].sem_seg.astype(np.int64)) for i in range(len(ds))]
    assert evaluate_predictions("semantic", ds, results)["mIoU"] == pytest.approx(100.0)
