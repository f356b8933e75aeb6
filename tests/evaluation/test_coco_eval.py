"""knet.evaluation.coco against pycocotools: the 12 stats (==) and the full eval arrays."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from knet.errors import KnetError
from knet.evaluation.coco import evaluate_coco
from knet.evaluation.synthetic import make_coco_instances
from knet.ops import rle


def _pycoco(gt: dict, results: list, iou_type: str = "segm") -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO()
        c.dataset = copy.deepcopy(gt)
        c.createIndex()
        d = c.loadRes(copy.deepcopy(results))
        e = COCOeval(c, d, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def _assert_identical(ours, ref: COCOeval):
    assert ours.stats.tolist() == ref.stats.tolist()
    assert np.array_equal(ours.precision, ref.eval["precision"])
    assert np.array_equal(ours.recall, ref.eval["recall"])
    assert np.array_equal(ours.scores, ref.eval["scores"])


@pytest.fixture(scope="module")
def coco_set():
    return make_coco_instances(num_images=24, dets_per_image=100, num_categories=8, seed=3)


def test_segm_bit_identical(coco_set):
    gt, res = coco_set
    areas = {a["area"] for a in gt["annotations"]}
    assert 1024 in areas and 9216 in areas  # the inclusive range edges are exercised
    assert any(a["iscrowd"] for a in gt["annotations"])
    assert len({r["score"] for r in res}) < len(res)  # ties
    ours = evaluate_coco(gt, res)
    _assert_identical(ours, _pycoco(gt, res))
    assert 0 < ours.stats[0] < 1
    # last category: ground truth but no detections -> AP 0; counted in the mean
    last = ours.per_category_ap()[gt["categories"][-1]["name"]]
    assert last == 0.0 or np.isnan(last)


def test_heavy_ties_and_files(coco_set, tmp_path):
    gt, res = coco_set
    res = [dict(r, score=round(r["score"], 1)) for r in res]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    ours = evaluate_coco(tmp_path / "gt.json", str(tmp_path / "res.json"))
    _assert_identical(ours, _pycoco(gt, res))


def test_bbox_in_results_mask_areas_by_default(coco_set):
    gt, res = coco_set
    with_box = [dict(r, bbox=rle.to_bbox(r["segmentation"])[0].tolist()) for r in res]
    # knet default: mask areas = pycocotools on the same results without "bbox"
    _assert_identical(evaluate_coco(gt, with_box), _pycoco(gt, res))
    # compat: pycocotools' first-entry rule (box areas for every result)
    compat = evaluate_coco(gt, with_box, pycocotools_compat=True)
    ref = _pycoco(gt, with_box)
    _assert_identical(compat, ref)


def test_bbox_iou_type(coco_set):
    gt, res = coco_set
    with_box = [dict(r, bbox=(np.asarray(rle.to_bbox(r["segmentation"])[0]) + [0.5, -0.25, 1.5, 2.0]).tolist()) for r in res]
    _assert_identical(evaluate_coco(gt, with_box, iou_type="bbox"), _pycoco(gt, with_box, "bbox"))
    _assert_identical(evaluate_coco(gt, with_box, iou_type="bbox", pycocotools_compat=True), _pycoco(gt, with_box, "bbox"))


def test_polygon_and_uncompressed_results(coco_set):
    gt, res = coco_set
    mixed = []
    for i, r in enumerate(res):
        r = dict(r)
        if i % 3 == 1:
            r["segmentation"] = {"size": r["segmentation"]["size"], "counts": rle.counts(r["segmentation"]).tolist()}
        mixed.append(r)
    _assert_identical(evaluate_coco(gt, mixed), _pycoco(gt, res))
    img = {im["id"]: im for im in gt["images"]}
    poly = copy.deepcopy(res[:300])
    poly[5]["segmentation"] = [[10.0, 10.0, 60.5, 12.0, 40.0, 70.25]]
    ref = [dict(r, segmentation=rle.to_rle(r["segmentation"], img[r["image_id"]]["height"], img[r["image_id"]]["width"])) for r in poly]
    _assert_identical(evaluate_coco(gt, poly), _pycoco(gt, ref))


def test_crowd_absorbs_several_detections():
    gt = {
        "images": [{"id": 1, "height": 40, "width": 40}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 1600.0, "bbox": [0, 0, 40, 40],
             "segmentation": {"size": [40, 40], "counts": [0, 1600]}},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0, "bbox": [0, 0, 10, 10],
             "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
        ],
    }
    masks = np.zeros((4, 40, 40), np.uint8)
    masks[0, :10, :10] = 1
    masks[1, 20:30, 20:30] = 1
    masks[2, 5:35, 5:35] = 1
    masks[3, 30:, 30:] = 1
    res = [{"image_id": 1, "category_id": 1, "score": s, "segmentation": r} for s, r in zip([0.9, 0.8, 0.8, 0.7], rle.encode(masks))]
    ours = evaluate_coco(gt, res)
    _assert_identical(ours, _pycoco(gt, res))
    assert ours.stats[0] == pytest.approx(1.0, abs=1e-12)  # the crowd region swallows the extra detections


def test_empty_results_and_gt_without_detections():
    gt, _ = make_coco_instances(num_images=5, dets_per_image=5, num_categories=3, seed=5)
    ours = evaluate_coco(gt, [])
    cats_with_gt = {a["category_id"] for a in gt["annotations"] if not a["iscrowd"]}
    assert ours.stats[0] == 0.0 and ours.stats[8] == 0.0
    pc = ours.per_category_ap()
    assert all(pc[c["name"]] == 0.0 for c in gt["categories"] if c["id"] in cats_with_gt)


def test_gt_area_edges_inclusive():
    # 32x32 = 1024 counts as small AND medium; 96x96 = 9216 as medium AND large
    gt = {"images": [{"id": 1, "height": 200, "width": 200}], "categories": [{"id": 1, "name": "a"}], "annotations": []}
    masks = np.zeros((2, 200, 200), np.uint8)
    masks[0, :32, :32] = 1
    masks[1, 100:196, 100:196] = 1
    for i, r in enumerate(rle.encode(masks)):
        gt["annotations"].append({"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                                  "area": float(r and rle.area(r)[0]), "bbox": rle.to_bbox(r)[0].tolist(), "segmentation": r})
    res = [{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": r} for r in rle.encode(masks)]
    ours = evaluate_coco(gt, res)
    _assert_identical(ours, _pycoco(gt, res))
    assert ours.stats[3:6].tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)


def test_errors(coco_set, tmp_path):
    gt, res = coco_set
    bad = copy.deepcopy(res[:3])
    bad[1]["image_id"] = 999999
    with pytest.raises(KnetError, match="999999"):
        evaluate_coco(gt, bad)
    (tmp_path / "bad.json").write_text('[{"image_id": 1,')
    with pytest.raises(KnetError, match="not valid JSON"):
        evaluate_coco(gt, tmp_path / "bad.json")
    with pytest.raises(KnetError, match="not found"):
        evaluate_coco(gt, tmp_path / "missing.json")
    (tmp_path / "obj.json").write_text("{}")
    with pytest.raises(KnetError, match="JSON list"):
        evaluate_coco(gt, tmp_path / "obj.json")
    with pytest.raises(KnetError, match="instances"):
        evaluate_coco({"images": 3}, [])
    with pytest.raises(KnetError, match="score"):
        evaluate_coco(gt, [{"image_id": gt["images"][0]["id"], "category_id": 1}])
    with pytest.raises(KnetError, match="IoU type"):
        evaluate_coco(gt, [], iou_type="keypoints")


def test_ground_truth_file_read_in_cpp(coco_set, tmp_path):
    # the C++ instances reader: polygons, uncompressed crowd RLEs and compressed strings (with
    # JSON escapes), keys in any order, against pycocotools on the same dicts
    gt, res = coco_set
    gt = copy.deepcopy(gt)
    img = {im["id"]: im for im in gt["images"]}
    for a in gt["annotations"][::5]:
        if isinstance(a["segmentation"], list):
            a["segmentation"] = rle.to_rle(a["segmentation"], img[a["image_id"]]["height"], img[a["image_id"]]["width"])
    assert any("\\" in a["segmentation"]["counts"] for a in gt["annotations"] if isinstance(a["segmentation"], dict)
               and isinstance(a["segmentation"]["counts"], str))
    doc = {"categories": gt["categories"], "annotations": [dict(reversed(list(a.items()))) for a in gt["annotations"]],
           "info": {"x": [1, {"y": None}]}, "images": gt["images"]}
    (tmp_path / "gt.json").write_text(json.dumps(doc, indent=1))
    (tmp_path / "res.json").write_text(json.dumps(res))
    ref = _pycoco(gt, res)
    _assert_identical(evaluate_coco(tmp_path / "gt.json", res), ref)
    ours = evaluate_coco(str(tmp_path / "gt.json"), tmp_path / "res.json")
    _assert_identical(ours, ref)
    assert ours.cat_names == [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    ref_box = _pycoco(gt, [dict(r, bbox=rle.to_bbox(r["segmentation"])[0].tolist()) for r in res], "bbox")
    with_box = [dict(r, bbox=rle.to_bbox(r["segmentation"])[0].tolist()) for r in res]
    _assert_identical(evaluate_coco(tmp_path / "gt.json", with_box, iou_type="bbox"), ref_box)


def test_ground_truth_file_errors(coco_set, tmp_path):
    _, res = coco_set
    bad = tmp_path / "bad.json"
    cases = [
        ('{"images": [', "is not valid JSON"),
        ("[1, 2]", "is not a COCO instances file"),
        ('{"images": [], "annotations": []}', "no 'categories' list"),
        ('{"images": [{"id": 1, "width": 4}], "annotations": [], "categories": []}', "'height'"),
        ('{"images": [{"id": 1, "height": 4, "width": 4}], "categories": [{"id": 1}], '
         '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2]]}]}', "lacks 'area'"),
    ]
    for text, match in cases:
        bad.write_text(text)
        with pytest.raises(KnetError, match=match) as info:
            evaluate_coco(bad, [])
        assert str(bad) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(KnetError, match="ground-truth file not found"):
        evaluate_coco(tmp_path / "missing.json", [])


def test_results_file_parsed_in_parts(coco_set, tmp_path):
    # a results file large enough to be parsed on several threads (cut at guessed record starts);
    # decoys that look like record boundaries sit inside strings and nested lists
    gt, res = coco_set
    big = []
    for k in range(16):
        for i, r in enumerate(res):
            r = dict(r, score=round(r["score"] - 1e-3 * k, 6))
            if i % 3 == 0:
                r["note"] = "} , {"
            if i % 5 == 0:
                r["extra"] = [{"a": 1}, {"b": [2]}]
            big.append(r)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(big))
    assert path.stat().st_size > 8 << 20
    ours = evaluate_coco(gt, path)
    plain = [{k: v for k, v in r.items() if k not in ("note", "extra")} for r in big]
    _assert_identical(ours, _pycoco(gt, plain))
    big[-7]["image_id"] = 424242
    path.write_text(json.dumps(big))
    with pytest.raises(KnetError, match=f"result {len(big) - 7} has image_id 424242"):
        evaluate_coco(gt, path)


def test_core_wants_ground_truth_before_results(coco_set):
    # results read from files carry IoUs with the ground truth present when they were read
    from knet.evaluation.coco import CocoGroundTruth
    from knet.evaluation.native import native

    gt, res = coco_set
    g = CocoGroundTruth.from_dict(gt)
    core = native().CocoEvalCore(g.img_ids, g.heights, g.widths, g.cat_ids, True)
    core.add_dts(res[:10], 0)
    with pytest.raises(ValueError, match="ground truth before the results"):
        core.add_gts(g.annotations)


def test_files_in_every_mode(coco_set, tmp_path):
    # the C++ readers with given boxes: bbox IoU, pycocotools' first-entry area rule
    gt, res = coco_set
    with_box = [dict(r, bbox=(np.asarray(rle.to_bbox(r["segmentation"])[0]) + [0.5, -0.25, 1.5, 2.0]).tolist()) for r in res]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(with_box))
    for iou_type in ("segm", "bbox"):
        ours = evaluate_coco(tmp_path / "gt.json", tmp_path / "res.json", iou_type=iou_type, pycocotools_compat=True)
        _assert_identical(ours, _pycoco(gt, with_box, iou_type))
    _assert_identical(evaluate_coco(tmp_path / "gt.json", tmp_path / "res.json", iou_type="bbox"), _pycoco(gt, with_box, "bbox"))
