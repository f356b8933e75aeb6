"""The out-of-the-box demo: the bundled checkpoint on examples/ (skips until the checkpoint ships)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from knet.cli.demo import EXAMPLES_DIR, find_examples
from knet.cli.main import app
from knet.engine.predictor import DEMO_CHECKPOINT

needs_demo = pytest.mark.skipif(
    not DEMO_CHECKPOINT.is_file() or not EXAMPLES_DIR.is_dir(),
    reason=f"demo checkpoint {DEMO_CHECKPOINT} or examples {EXAMPLES_DIR} not shipped yet",
)


def _all_pq(doc: dict) -> float:
    """PQ over all classes from `knet eval panoptic --json`, in percent."""
    for path in (("All", "pq"), ("all", "pq"), ("All", "PQ"), ("all", "PQ"), ("PQ",), ("pq",)):
        node = doc
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, (int, float)):
            return float(node) * (100.0 if node <= 1.0 else 1.0)
    raise AssertionError(f"no PQ in {sorted(doc)}")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    r = CliRunner().invoke(app, ["demo", "-o", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    return out, r


@needs_demo
def test_demo_writes_everything(demo_run):
    out, r = demo_run
    images, gt_json, gt_dir = find_examples(EXAMPLES_DIR)
    assert images and gt_json is not None and gt_dir is not None
    for p in images:
        stem = Path(p).stem
        for name in (f"{stem}.overlay.png", f"{stem}.stages.png", f"panoptic/{stem}.png", f"{stem}.panoptic.json"):
            assert (out / name).is_file(), name
        fig = np.asarray(Image.open(out / f"{stem}.stages.png"))
        assert fig.ndim == 3 and fig.shape[1] > fig.shape[0]
    assert "overlays" in r.stdout and "stage figures" in r.stdout and "synthetic" in r.stderr
    doc = json.loads((out / "panoptic.json").read_text())
    assert len(doc["annotations"]) == len(images)


@needs_demo
def test_demo_pq_at_least_60_through_knet_eval(demo_run, tmp_path):
    if "eval" not in typer.main.get_command(app).commands:
        pytest.skip("`knet eval` not registered yet")
    out, _ = demo_run
    _, gt_json, gt_dir = find_examples(EXAMPLES_DIR)
    res = tmp_path / "pq.json"
    r = CliRunner().invoke(app, ["eval", "panoptic", "--gt-json", str(gt_json), "--gt-dir", str(gt_dir),
                                 "--pred-json", str(out / "panoptic.json"), "--pred-dir", str(out / "panoptic"), "--json", str(res)])
    assert r.exit_code == 0, r.output
    pq = _all_pq(json.loads(res.read_text()))
    assert pq >= 60.0, f"demo PQ {pq:.1f} < 60"


@needs_demo
def test_default_checkpoint_is_the_labelled_demo_model(tmp_path):
    images, _, _ = find_examples(EXAMPLES_DIR)
    r = CliRunner().invoke(app, ["predict", images[0], "--task", "panoptic", "-o", str(tmp_path / "o"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "DEMO model" in r.stderr and "synthetic" in r.stderr
    assert (tmp_path / "o" / f"{Path(images[0]).stem}.overlay.png").is_file()


@needs_demo
def test_demo_refuses_to_clobber(demo_run):
    out, _ = demo_run
    r = CliRunner().invoke(app, ["demo", "-o", str(out)])
    assert r.exit_code == 2 and "exists" in r.stderr and "Traceback" not in r.output


def test_demo_flow_with_stand_in_model(monkeypatch, tmp_path, fake_checkpoint):
    """The demo's discovery + predict + report path, on a synthetic examples/ folder and the stand-in model."""
    from conftest import CLASS_NAMES, make_image

    from knet.cli import demo as demo_cli
    from knet.engine import predictor

    ex = tmp_path / "examples"
    (ex / "images").mkdir(parents=True)
    (ex / "annotations" / "panoptic_examples").mkdir(parents=True)
    images = []
    for i in (1, 2):
        Image.fromarray(make_image(90 + i, 120, i)).save(ex / "images" / f"ex{i}.png")
        Image.fromarray(np.zeros((90 + i, 120, 3), np.uint8)).save(ex / "annotations" / "panoptic_examples" / f"ex{i}.png")
        images.append({"id": 10 + i, "file_name": f"ex{i}.png", "height": 90 + i, "width": 120})
    cats = [{"id": 100 + k, "name": n, "isthing": int(k < 2)} for k, n in enumerate(CLASS_NAMES)]
    anns = [{"image_id": im["id"], "file_name": im["file_name"], "segments_info": []} for im in images]
    (ex / "annotations" / "panoptic_examples.json").write_text(json.dumps({"images": images, "categories": cats, "annotations": anns}))

    monkeypatch.setattr(demo_cli, "EXAMPLES_DIR", ex)
    monkeypatch.setattr(predictor, "DEMO_CHECKPOINT", fake_checkpoint("panoptic"))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["demo", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "knet eval panoptic --gt-json" in r.stdout and str(ex / "annotations" / "panoptic_examples") in r.stdout
    assert "PQ" in r.stdout  # scored against the (empty) ground truth
    doc = json.loads((out / "panoptic.json").read_text())
    assert sorted(a["image_id"] for a in doc["annotations"]) == [11, 12]
    assert {s["category_id"] for a in doc["annotations"] for s in a["segments_info"]} <= {100, 101, 102, 103}
    for stem in ("ex1", "ex2"):
        assert (out / f"{stem}.overlay.png").is_file() and (out / f"{stem}.stages.png").is_file()
