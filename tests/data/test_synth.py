"""knet data synth: deterministic, in the real formats (checked with pycocotools / panopticapi rules)."""

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from knet.cli.main import app
from knet.data.io import load_label_png
from knet.data.synth import write_synth
from knet.data.synth_scene import make_scene
from knet.errors import KnetError


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_scene_is_deterministic_and_consistent():
    a, b = make_scene(3, 5, 96, 80), make_scene(3, 5, 96, 80)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.shape == (96, 80, 3)
    assert any(not np.array_equal(make_scene(4, 5, 96, 80).image, a.image) for _ in range(1))
    for inst in a.instances:
        assert not (inst.visible & ~inst.full).any()
        if not inst.iscrowd:
            assert inst.visible.sum() >= 0.45 * inst.full.sum() - 1
    vis = [i.visible for i in a.instances]
    for i in range(len(vis)):
        for j in range(i + 1, len(vis)):
            assert not (vis[i] & vis[j]).any()


def test_same_seed_same_bytes(tmp_path):
    write_synth(tmp_path / "a", task="panoptic", images=3, val_images=1, seed=7, size=(64, 80))
    write_synth(tmp_path / "b", task="panoptic", images=3, val_images=1, seed=7, size=(64, 80))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_instance_json_matches_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    write_synth(tmp_path, task="instance", images=12, val_images=0, seed=1, size=(64, 64))
    path = tmp_path / "annotations" / "instances_train2017.json"
    coco = COCO(str(path))
    doc = json.loads(path.read_text())
    kinds = {(type(a["segmentation"]).__name__, type(a["segmentation"].get("counts")).__name__ if isinstance(a["segmentation"], dict) else "", a["iscrowd"]) for a in doc["annotations"]}
    assert ("list", "", 0) in kinds  # polygons
    assert ("dict", "str", 0) in kinds  # compressed RLE (occluded shapes)
    for a in doc["annotations"]:
        m = coco.annToMask(a)
        assert m.sum() == a["area"]
        if a["iscrowd"]:
            assert isinstance(a["segmentation"]["counts"], list)  # uncompressed RLE
    assert [c["name"] for c in doc["categories"]] == ["circle", "rectangle", "triangle"]
    assert (tmp_path / "train2017" / doc["images"][0]["file_name"]).is_file()


def test_panoptic_png_ids_and_segments(tmp_path):
    write_synth(tmp_path, task="panoptic", images=0, val_images=4, seed=2, size=(64, 64))
    doc = json.loads((tmp_path / "annotations" / "panoptic_val2017.json").read_text())
    cats = {c["id"]: c for c in doc["categories"]}
    assert {c["isthing"] for c in cats.values()} == {0, 1}
    for ann in doc["annotations"]:
        rgb = load_label_png(tmp_path / "annotations" / "panoptic_val2017" / ann["file_name"]).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        listed = {s["id"] for s in ann["segments_info"]}
        assert set(np.unique(ids)) - {0} == listed
        for s in ann["segments_info"]:
            assert (ids == s["id"]).sum() == s["area"] and s["category_id"] in cats


def test_ade20k_layout_and_labels(tmp_path):
    write_synth(tmp_path, task="semantic", images=2, val_images=1, seed=0, size=(48, 64))
    root = tmp_path / "ADEChallengeData2016"
    lab = load_label_png(root / "annotations" / "training" / "ADE_train_00000001.png")
    assert lab.shape == (48, 64) and lab.max() <= 6
    assert (root / "images" / "validation" / "ADE_val_00000001.jpg").is_file()
    assert "circle" in (root / "objectInfo150.txt").read_text()


def test_cli_and_no_overwrite(tmp_path):
    r = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "--task", "panoptic", "--images", "2", "--size", "40x48"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "--task", "panoptic", "--images", "2", "--size", "40x48"])
    assert r.exit_code != 0 and "--overwrite" in r.output
    r = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "--task", "panoptic", "--images", "2", "--size", "40x48", "--overwrite"])
    assert r.exit_code == 0
    for bad in (["--task", "nope"], ["--size", "12"]):
        args = ["data", "synth", "--out", str(tmp_path / "x"), "--task", "panoptic", "--images", "1"] + bad
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2 and "Traceback" not in r.output


def test_bad_arguments():
    with pytest.raises(KnetError):
        write_synth("/tmp/never", task="semantic", images=0, val_images=0)
