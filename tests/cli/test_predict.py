"""knet predict through typer's CliRunner with a stand-in model (tests/cli/conftest.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from knet.cli.main import app


def run(args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], **kw)


def one_line_error(r) -> str:
    assert r.exit_code != 0
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("knet: error: ")
    return lines[0]


@pytest.mark.parametrize("task", ["semantic", "instance", "panoptic"])
def test_predict_single_file(task, images_dir, fake_checkpoint, tmp_path):
    out = tmp_path / "out"
    r = run(["predict", images_dir / "a.png", "--task", task, "-c", fake_checkpoint(task), "-o", out])
    assert r.exit_code == 0, r.output
    overlay = np.asarray(Image.open(out / "a.overlay.png"))
    assert overlay.ndim == 3 and overlay.shape[2] == 3 and min(overlay.shape[:2]) >= 97
    if task == "semantic":
        lab = np.asarray(Image.open(out / "a.label.png"))
        assert lab.shape == (97, 131) and set(np.unique(lab)) <= {0, 2, 3}
        assert Image.open(out / "a.label.png").mode == "P"  # indices with the knet palette
    if task == "instance":
        assert json.loads((out / "a.instances.json").read_text())
        assert json.loads((out / "instances.json").read_text())
    if task == "panoptic":
        assert (out / "panoptic" / "a.png").is_file() and (out / "a.panoptic.json").is_file()
        assert (out / "panoptic.json").is_file()


def test_predict_directory_glob_stdin(images_dir, fake_checkpoint, tmp_path):
    ckpt = fake_checkpoint("panoptic")
    r = run(["predict", images_dir, "--task", "panoptic", "-c", ckpt, "-o", tmp_path / "d", "-b", "2"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "d").glob("*.overlay.png")) == ["a.overlay.png", "b.overlay.png", "c.overlay.png"]
    assert fake_checkpoint.loaded[-1].calls == [2, 1]  # --batch-size 2 over 3 images

    r = run(["predict", str(images_dir / "*.png"), "--task", "panoptic", "-c", ckpt, "-o", tmp_path / "g"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "g").glob("*.overlay.png")) == ["a.overlay.png", "b.overlay.png"]

    listing = f"{images_dir / 'c.jpg'}\n\n{images_dir / 'a.png'}\n"
    r = run(["predict", "-", "--task", "panoptic", "-c", ckpt, "-o", tmp_path / "s", "--jsonl"], input=listing)
    assert r.exit_code == 0, r.output
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [Path(ln["path"]).name for ln in lines] == ["c.jpg", "a.png"]


def test_jsonl_lines(images_dir, fake_checkpoint, tmp_path):
    r = run(["predict", images_dir, "--task", "instance", "-c", fake_checkpoint("instance"), "-o", tmp_path / "o", "--jsonl"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]  # stdout holds nothing but JSON lines
    assert len(lines) == 3
    for ln in lines:
        assert set(ln) >= {"path", "image_id", "outputs", "segments", "timing", "height", "width"}
        assert Path(ln["outputs"]["overlay"]).is_file() and Path(ln["outputs"]["instances"]).is_file()
        assert ln["segments"] and {"class", "score", "area", "category_id"} <= set(ln["segments"][0])
        assert ln["segments"][0]["class"] in ("blob", "ring")
        assert ln["timing"]["predict_s"] >= 0


def test_instance_json_loads_in_pycocotools(images_dir, fake_checkpoint, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = tmp_path / "o"
    r = run(["predict", images_dir, "--task", "instance", "-c", fake_checkpoint("instance"), "-o", out])
    assert r.exit_code == 0, r.output
    results = json.loads((out / "instances.json").read_text())
    sizes = {1: (97, 131), 2: (120, 160), 3: (64, 81)}  # ids = position in the sorted directory
    assert {d["image_id"] for d in results} == {1, 2, 3}
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, "height": h, "width": w, "file_name": f"{i}.png"} for i, (h, w) in sizes.items()],
        "categories": [{"id": 1, "name": "blob"}, {"id": 2, "name": "ring"}],
        "annotations": [],
    }
    ann_id = 1
    for d in results:  # the detections themselves as ground truth: AP must be 1
        gt.dataset["annotations"].append({**d, "id": ann_id, "iscrowd": 0, "area": 1.0, "bbox": [0, 0, 1, 1]})
        ann_id += 1
    for a in gt.dataset["annotations"]:
        from pycocotools import mask as mu

        a["area"] = float(mu.area(a["segmentation"]))
    gt.createIndex()
    dt = gt.loadRes(str(out / "instances.json"))
    for a in dt.anns.values():
        h, w = sizes[a["image_id"]]
        assert a["segmentation"]["size"] == [h, w] and a["area"] > 0
    ev = COCOeval(gt, dt, "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_panoptic_png_json_format(images_dir, fake_checkpoint, tmp_path):
    out = tmp_path / "o"
    r = run(["predict", images_dir, "--task", "panoptic", "-c", fake_checkpoint("panoptic"), "-o", out])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "panoptic.json").read_text())
    assert {c["id"]: c["isthing"] for c in doc["categories"]} == {1: 1, 2: 1, 3: 0, 4: 0}
    assert len(doc["annotations"]) == 3 and len(doc["images"]) == 3
    for ann in doc["annotations"]:
        rgb = np.asarray(Image.open(out / "panoptic" / ann["file_name"]), dtype=np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
        listed = {s["id"] for s in ann["segments_info"]}
        assert set(np.unique(ids)) - {0} == listed  # every non-VOID id has a segment, and back
        for s in ann["segments_info"]:
            m = ids == s["id"]
            ys, xs = np.nonzero(m)
            assert s["area"] == int(m.sum()) and s["iscrowd"] == 0
            assert s["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert s["category_id"] in (1, 2, 3, 4)
        per_image = json.loads((out / (Path(ann["file_name"]).stem + ".panoptic.json")).read_text())
        assert per_image == ann


def test_panoptic_outputs_evaluate_against_themselves(images_dir, fake_checkpoint, tmp_path):
    """The written PNG/JSON pair is valid input for the evaluation code (PQ of a prediction with itself = 1)."""
    panoptic = pytest.importorskip("knet.evaluation.panoptic", reason="EVAL engineer's PQ code not available yet")
    out = tmp_path / "o"
    r = run(["predict", images_dir, "--task", "panoptic", "-c", fake_checkpoint("panoptic"), "-o", out])
    assert r.exit_code == 0, r.output
    res = panoptic.evaluate_panoptic(out / "panoptic.json", out / "panoptic", out / "panoptic.json", out / "panoptic")
    assert res.groups["All"]["pq"] == pytest.approx(1.0) and res.groups["Things"]["n"] == 2 and res.groups["Stuff"]["n"] == 2

    import typer

    eval_cmd = typer.main.get_command(app).commands.get("eval")
    if eval_cmd is None or "panoptic" not in getattr(eval_cmd, "commands", {}):
        pytest.skip("`knet eval panoptic` not registered yet")
    r = run(["eval", "panoptic", "--gt-json", out / "panoptic.json", "--gt-dir", out / "panoptic",
             "--pred-json", out / "panoptic.json", "--pred-dir", out / "panoptic", "--json", tmp_path / "pq.json"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "pq.json").read_text())["All"]["pq"] == pytest.approx(1.0)


def test_ids_from_coco_json(images_dir, fake_checkpoint, tmp_path):
    coco = tmp_path / "ann.json"
    images = [{"id": 70, "file_name": "x/a.png"}, {"id": 80, "file_name": "b.png"}, {"id": 90, "file_name": "c.jpg"}]
    cats = [{"id": 11, "name": "blob"}, {"id": 12, "name": "ring"}, {"id": 101, "name": "sky"}, {"id": 102, "name": "ground"}]
    coco.write_text(json.dumps({"images": images, "categories": cats}))
    out = tmp_path / "o"
    r = run(["predict", images_dir, "--task", "panoptic", "-c", fake_checkpoint("panoptic"), "-o", out, "--ids-from", coco])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "panoptic.json").read_text())
    assert sorted(a["image_id"] for a in doc["annotations"]) == [70, 80, 90]
    assert {s["category_id"] for a in doc["annotations"] for s in a["segments_info"]} <= {11, 12, 101, 102}
    assert [c["id"] for c in doc["categories"]] == [11, 12, 101, 102]

    coco.write_text(json.dumps({"images": images[:2], "categories": cats}))
    r = run(["predict", images_dir, "--task", "panoptic", "-c", fake_checkpoint("panoptic"), "-o", tmp_path / "o2", "--ids-from", coco])
    assert "c.jpg is not listed" in one_line_error(r)
    coco.write_text(json.dumps({"images": images, "categories": cats[:3]}))
    r = run(["predict", images_dir, "--task", "panoptic", "-c", fake_checkpoint("panoptic"), "-o", tmp_path / "o3", "--ids-from", coco])
    assert "ground" in one_line_error(r)


def test_semantic_stage_figure_and_tta(images_dir, fake_checkpoint, tmp_path):
    out = tmp_path / "o"
    r = run(["predict", images_dir / "b.png", "--task", "semantic", "-c", fake_checkpoint("semantic"), "-o", out, "--show-stages"])
    assert r.exit_code == 0, r.output
    fig = np.asarray(Image.open(out / "b.stages.png"))
    assert fig.shape[1] > 4 * fig.shape[0] / 2  # a row of 5 panels (input + 4 stages)
    r = run(["predict", images_dir / "b.png", "--task", "semantic", "-c", fake_checkpoint("semantic"), "-o", tmp_path / "t", "--tta"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t" / "b.label.png").is_file()


def test_model_rejecting_an_image_skips_it(images_dir, fake_checkpoint, tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(images_dir / "tiny.png")
    out = tmp_path / "o"
    r = run(["predict", images_dir, "--task", "panoptic", "-c", fake_checkpoint("panoptic"), "-o", out])
    assert r.exit_code == 1 and "tiny.png" in r.stderr and "too small" in r.stderr
    assert sorted(p.name for p in out.glob("*.overlay.png")) == ["a.overlay.png", "b.overlay.png", "c.overlay.png"]


def test_show_stages_panoptic(images_dir, fake_checkpoint, tmp_path):
    out = tmp_path / "o"
    r = run(["predict", images_dir / "a.png", "--task", "panoptic", "-c", fake_checkpoint("panoptic"), "-o", out, "--show-stages"])
    assert r.exit_code == 0, r.output
    assert (out / "a.stages.png").is_file()


def test_directory_with_one_corrupt_image(images_dir, corrupt_image, fake_checkpoint, tmp_path):
    (images_dir / "zz_broken.png").write_bytes(corrupt_image.read_bytes())
    out = tmp_path / "o"
    r = run(["predict", images_dir, "--task", "panoptic", "-c", fake_checkpoint("panoptic"), "-o", out, "--jsonl"])
    assert r.exit_code == 1
    assert "zz_broken.png" in r.stderr and "Traceback" not in r.output
    assert sorted(p.name for p in out.glob("*.overlay.png")) == ["a.overlay.png", "b.overlay.png", "c.overlay.png"]
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [("error" in ln) for ln in lines] == [False, False, False, True]
    assert len(json.loads((out / "panoptic.json").read_text())["annotations"]) == 3


def test_existing_outputs_not_overwritten(images_dir, fake_checkpoint, tmp_path):
    out = tmp_path / "o"
    args = ["predict", images_dir / "a.png", "--task", "semantic", "-c", fake_checkpoint("semantic"), "-o", out]
    assert run(args).exit_code == 0
    (out / "a.label.png").write_bytes(b"user data")
    before = {p: p.read_bytes() for p in out.iterdir()}
    r = run(args)
    assert "exists" in one_line_error(r) and r.exit_code == 2
    assert {p: p.read_bytes() for p in out.iterdir()} == before
    assert run(args + ["--overwrite"]).exit_code == 0
    assert (out / "a.label.png").read_bytes() != b"user data"


def test_no_clobber_checked_before_any_work(images_dir, fake_checkpoint, tmp_path):
    """Only the last image's output exists: nothing at all is written, the model is not even run."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "c.overlay.png").write_bytes(b"keep")
    r = run(["predict", images_dir, "--task", "panoptic", "-c", fake_checkpoint("panoptic"), "-o", out])
    assert "c.overlay.png" in one_line_error(r)
    assert sorted(os.listdir(out)) == ["c.overlay.png"]
    assert not fake_checkpoint.loaded


@pytest.mark.parametrize(
    "case, needle",
    [("missing", "image not found"), ("corrupt", "broken.png"), ("task", "unknown task"),
     ("ckpt_missing", "checkpoint not found"), ("wrong_task", "is a semantic model"), ("tta", "--tta"), ("tta_stages", "cannot be combined"),
     ("no_ckpt_semantic", "--checkpoint is required"), ("device", "unknown device"), ("batch", "--batch-size"),
     ("ckpt_dir", "is a directory"), ("ckpt_garbage", "junk.safetensors"), ("ckpt_other", "other.pth"),
     ("bench_ckpt", "nope.pth"), ("outdir_file", "not a directory")],
)
def test_one_line_errors(case, needle, images_dir, corrupt_image, fake_checkpoint, tmp_path):
    import torch

    sem = fake_checkpoint("semantic")
    img = images_dir / "a.png"
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    o = ["-o", tmp_path / "o"]
    args = {
        "missing": ["predict", tmp_path / "nope.png", "--task", "semantic", "-c", sem],
        "corrupt": ["predict", corrupt_image, "--task", "semantic", "-c", sem],
        "task": ["predict", img, "--task", "panoptik", "-c", sem],
        "ckpt_missing": ["predict", img, "--task", "semantic", "-c", tmp_path / "nope.safetensors"],
        "wrong_task": ["predict", img, "--task", "instance", "-c", sem],
        "tta": ["predict", img, "--task", "instance", "-c", sem, "--tta"],
        "tta_stages": ["predict", img, "--task", "semantic", "-c", sem, "--tta", "--show-stages"],
        "no_ckpt_semantic": ["predict", img, "--task", "semantic"],
        "device": ["predict", img, "--task", "semantic", "-c", sem, "--device", "tpu"],
        "batch": ["predict", img, "--task", "semantic", "-c", sem, "-b", "0"],
        "ckpt_dir": ["predict", img, "--task", "semantic", "-c", tmp_path],
        "ckpt_garbage": ["predict", img, "--task", "semantic", "-c", tmp_path / "junk.safetensors"],
        "ckpt_other": ["predict", img, "--task", "semantic", "-c", tmp_path / "other.pth"],
        "bench_ckpt": ["benchmark", "-c", tmp_path / "nope.pth"],
        "outdir_file": ["predict", img, "--task", "semantic", "-c", sem, "-o", img],
    }[case]
    r = run(args + (o if args[0] == "predict" and "-o" not in args else []))
    assert needle in one_line_error(r)


def test_missing_file_among_others_is_skipped(images_dir, fake_checkpoint, tmp_path):
    out = tmp_path / "o"
    r = run(["predict", images_dir / "a.png", tmp_path / "nope.png", "--task", "semantic", "-c", fake_checkpoint("semantic"), "-o", out])
    assert r.exit_code == 1 and "nope.png" in r.stderr
    assert (out / "a.overlay.png").is_file()


def test_same_stem_twice_is_refused(images_dir, fake_checkpoint, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes((images_dir / "a.png").read_bytes())
    r = run(["predict", images_dir / "a.png", other / "a.png", "--task", "semantic", "-c", fake_checkpoint("semantic"), "-o", tmp_path / "o"])
    assert "same outputs" in one_line_error(r)


def test_cuda_without_gpu_is_a_clear_error(images_dir, fake_checkpoint, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    r = run(["predict", images_dir / "a.png", "--task", "semantic", "-c", fake_checkpoint("semantic"), "--device", "cuda", "-o", tmp_path / "o"])
    assert "no CUDA GPU" in one_line_error(r)


def test_category_ids():
    from types import SimpleNamespace

    from knet.engine.outputs import category_ids_of
    from knet.models.coco_classes import COCO_PANOPTIC_CLASSES, COCO_THING_CLASSES

    ids = category_ids_of(SimpleNamespace(class_names=COCO_THING_CLASSES), 80)
    assert len(ids) == 80 and ids[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13] and ids[-1] == 90
    pan = category_ids_of(SimpleNamespace(class_names=COCO_PANOPTIC_CLASSES), 133)
    assert len(set(pan)) == 133 and pan[80] == 92 and pan[-1] == 200  # banner ... rug-merged
    assert category_ids_of(SimpleNamespace(class_names=("a", "b")), 2) == [1, 2]
    assert category_ids_of(SimpleNamespace(class_names=("a", "b"), category_ids=[7, 9]), 2) == [7, 9]


def test_progress_bar_only_on_a_terminal(monkeypatch):
    import io

    from knet.cli import predict as predict_cli

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert predict_cli._progress(10, quiet=False) is None  # not a terminal
    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    assert predict_cli._progress(10, quiet=True) is None  # --quiet
    bar = predict_cli._progress(10, quiet=False)
    assert bar is not None
    bar.update(3)
    bar.refresh()
    bar.close()
    assert "3/10" in tty.getvalue()
