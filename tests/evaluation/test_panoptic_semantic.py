"""PQ against panopticapi (bit-identical), mIoU against a direct numpy mmseg implementation."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import multiprocessing

import numpy as np
import pytest
from PIL import Image

from knet.errors import KnetError
from knet.evaluation.panoptic import evaluate_panoptic
from knet.evaluation.png import read_label_map, read_panoptic_ids
from knet.evaluation.semantic import SemanticAccumulator, evaluate_semantic
from knet.evaluation.synthetic_panoptic import write_panoptic_set, write_semantic_set


@pytest.fixture(scope="module")
def pan_set(tmp_path_factory):
    return write_panoptic_set(tmp_path_factory.mktemp("pan"), num_images=12, seed=2)


def _panopticapi(paths):
    from panopticapi.evaluation import pq_compute

    with contextlib.redirect_stdout(io.StringIO()):
        return pq_compute(str(paths["gt_json"]), str(paths["pred_json"]), str(paths["gt_dir"]), str(paths["pred_dir"]))


def test_pq_bit_identical(pan_set):
    ref = _panopticapi(pan_set)
    ours = evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], pan_set["pred_json"], pan_set["pred_dir"], chunks=multiprocessing.cpu_count())
    for name in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq", "n"):
            assert ours.groups[name][k] == ref[name][k], (name, k)
    assert {c: v for c, v in ours.per_class.items()} == ref["per_class"]
    assert 0 < ours.groups["All"]["pq"] < 1
    assert len(ours.summary_lines()) == 5


def test_png_decoding_matches_pil(pan_set, tmp_path):
    for p in sorted(pan_set["gt_dir"].glob("*.png"))[:3]:
        arr = np.array(Image.open(p), dtype=np.uint32)
        assert np.array_equal(read_panoptic_ids(p), arr[:, :, 0] + 256 * arr[:, :, 1] + 65536 * arr[:, :, 2])
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert np.array_equal(read_panoptic_ids(tmp_path / "a.png"), rgba[..., 0] + 256 * rgba[..., 1].astype(np.uint32) + 65536 * rgba[..., 2].astype(np.uint32))
    grey = rng.integers(0, 256, (31, 17), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert np.array_equal(read_label_map(tmp_path / "g.png"), grey)
    pal = Image.fromarray(grey % 20).convert("P")
    pal.save(tmp_path / "p.png")
    assert np.array_equal(read_label_map(tmp_path / "p.png"), np.array(Image.open(tmp_path / "p.png")))
    Image.fromarray((grey.astype(np.uint16) * 200)).save(tmp_path / "g16.png")  # 16-bit: PIL path
    assert np.array_equal(read_label_map(tmp_path / "g16.png"), np.array(Image.open(tmp_path / "g16.png")))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    with pytest.raises(KnetError):
        read_panoptic_ids(tmp_path / "bad.png")


def test_pq_png_json_mismatch(pan_set, tmp_path):
    pred = json.loads(pan_set["pred_json"].read_text())
    pred["annotations"][1]["segments_info"].pop(0)
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    with pytest.raises(KnetError, match="in the predicted PNG but not in its segments_info"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], tmp_path / "pred.json", pan_set["pred_dir"])
    pred = json.loads(pan_set["pred_json"].read_text())
    pred["annotations"][0]["segments_info"].append({"id": 77, "category_id": 1})
    (tmp_path / "pred2.json").write_text(json.dumps(pred))
    with pytest.raises(KnetError, match="not in the predicted PNG"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], tmp_path / "pred2.json", pan_set["pred_dir"])
    pred = json.loads(pan_set["pred_json"].read_text())
    pred["annotations"].pop()
    (tmp_path / "pred3.json").write_text(json.dumps(pred))
    with pytest.raises(KnetError, match="no prediction"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], tmp_path / "pred3.json", pan_set["pred_dir"])
    with pytest.raises(KnetError, match="not found"):
        evaluate_panoptic(pan_set["gt_json"], pan_set["gt_dir"], pan_set["pred_json"], tmp_path / "nope")


def _mmseg_numpy(preds, labels, c, ignore, rzl):
    inter, pa, la = np.zeros(c), np.zeros(c), np.zeros(c)
    for p, lab in zip(preds, labels):
        lab = lab.copy()
        if rzl:
            lab[lab == 0] = 255
            lab = lab - 1
            lab[lab == 254] = 255
        m = lab != ignore
        p, lab = p[m].astype(np.int64), lab[m].astype(np.int64)
        i = p[p == lab]
        inter += np.bincount(i[(i >= 0) & (i < c)], minlength=c)
        pa += np.bincount(p[(p >= 0) & (p < c)], minlength=c)
        la += np.bincount(lab[(lab >= 0) & (lab < c)], minlength=c)
    union = pa + la - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou, acc = inter / union, inter / la
        freq = la / la.sum()
    return np.nanmean(iou), np.nanmean(acc), inter.sum() / la.sum(), (freq[freq > 0] * iou[freq > 0]).sum(), iou


@pytest.mark.parametrize("rzl", [False, True])
def test_miou_matches_numpy(tmp_path, rzl):
    paths = write_semantic_set(tmp_path, num_images=6, num_classes=7, seed=4)
    names = sorted(p.name for p in paths["gt_dir"].glob("*.png"))
    preds = [np.array(Image.open(paths["pred_dir"] / n)) for n in names]
    labels = [np.array(Image.open(paths["gt_dir"] / n)) for n in names]
    ref = _mmseg_numpy(preds, labels, 7, 255, rzl)
    ours = evaluate_semantic(paths["gt_dir"], paths["pred_dir"], num_classes=7, reduce_zero_label=rzl)
    assert (ours.mIoU, ours.mAcc, ours.aAcc, ours.fwIoU) == tuple(float(x) for x in ref[:4])
    assert np.array_equal(ours.iou, ref[4], equal_nan=True)


def test_miou_in_memory_edges():
    acc = SemanticAccumulator(num_classes=3, ignore_index=255)
    pred = np.array([[0, 1, 5], [2, -1, 1]], np.int64)  # 5 and -1 are out of range
    lab = np.array([[0, 1, 1], [255, 2, 9]], np.uint8)  # 9 is out of range but not ignored
    acc.add(pred, lab)
    ref = _mmseg_numpy([pred], [lab], 3, 255, False)
    r = acc.result()
    assert (r.mIoU, r.mAcc, r.aAcc, r.fwIoU) == tuple(float(x) for x in ref[:4])
    with pytest.raises(KnetError):
        acc.add(np.zeros((2, 2)), np.zeros((3, 2), np.uint8))


def _segments_of(ids, rng, crowd=False):
    segs = []
    for k, i in enumerate(np.unique(ids).tolist()):
        if i == 0:
            continue
        s = {"id": i, "category_id": 1 + k % 3, "area": int((ids == i).sum())}
        if crowd:
            s["iscrowd"] = int(rng.integers(0, 4) == 0)
        segs.append(s)
    return segs


@pytest.mark.parametrize("shape,gch,pch", [((37, 53), 3, 4), ((1, 7), 4, 3), ((64, 31), 3, 3), ((1, 1), 3, 3), ((5, 1), 4, 4)])
def test_pq_fused_png_path_matches_id_maps(tmp_path, shape, gch, pch):
    # the fused path (file bytes -> inflate + unfilter + pair counting, pq_image_stats_files)
    # against the id-map path, on blocky maps with noise (PIL then picks every filter type:
    # None/Sub/Up/Average/Paeth)
    from knet.evaluation.panoptic import PanopticAccumulator

    rng = np.random.default_rng(sum(shape) + gch)
    h, w = shape
    maps = []
    for ch, name in ((gch, "g.png"), (pch, "p.png")):
        blocks = rng.integers(0, 5, (h // 4 + 1, w // 4 + 1))
        lab = np.kron(blocks, np.ones((4, 4), np.int64))[:h, :w]
        lab[rng.random((h, w)) < 0.1] = 0
        rgb = np.zeros((h, w, ch), np.uint8)
        rgb[..., 0] = lab * 37 % 256
        rgb[..., 1] = lab * 11
        rgb[..., 2] = lab
        if ch == 4:
            rgb[..., 3] = rng.integers(0, 256, (h, w))  # alpha is ignored
        Image.fromarray(rgb).save(tmp_path / name)
        arr = np.array(Image.open(tmp_path / name), dtype=np.uint32)
        maps.append(arr[..., 0] + 256 * arr[..., 1] + 65536 * arr[..., 2])
    gt_segs, pred_segs = _segments_of(maps[0], rng, crowd=True), _segments_of(maps[1], rng)
    acc = PanopticAccumulator([{"id": c, "isthing": c % 2} for c in (1, 2, 3)], chunks=1)
    acc.add_image(maps[0], gt_segs, maps[1], pred_segs)
    gb, pb = (tmp_path / "g.png").read_bytes(), (tmp_path / "p.png").read_bytes()
    acc.add_stats(acc.image_stats_files(gb, gt_segs, pb, pred_segs))
    a, b = acc._images
    assert (a.match_cat, a.match_iou, a.fn_cat, a.fp_cat) == (b.match_cat, b.match_iou, b.fn_cat, b.fp_cat)
    with pytest.raises(KnetError, match="g.png is a corrupt PNG"):
        acc.image_stats_files(gb[:-20], gt_segs, pb, pred_segs, gt_path=str(tmp_path / "g.png"))


def _unfilter_reference(raw: bytes, h: int, w: int, bpp: int) -> np.ndarray:
    stride = w * bpp
    out = np.zeros((h, stride), np.int64)
    for y in range(h):
        ft, src = raw[y * (stride + 1)], raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        for i in range(stride):
            a = out[y, i - bpp] if i >= bpp else 0
            b = out[y - 1, i] if y else 0
            c = out[y - 1, i - bpp] if (y and i >= bpp) else 0
            if ft == 0:
                pred = 0
            elif ft == 1:
                pred = a
            elif ft == 2:
                pred = b
            elif ft == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            out[y, i] = (src[i] + pred) % 256
    return out.reshape(h, w, bpp).astype(np.uint8)


@pytest.mark.parametrize("bpp", [1, 3, 4])
def test_png_unfilter_every_filter_on_every_row(bpp):
    from knet.evaluation.native import native

    rng = np.random.default_rng(bpp)
    # dense random deltas, and sparse ones (long runs of zero deltas: the flat-chunk fast paths
    # of Sub and Paeth, which need 8 pixels in a row)
    for first, (h, w, density) in itertools.product(range(5), ((11, 7, 1.0), (9, 41, 0.03))):  # each filter also on row 0
        rows = []
        for y in range(h):
            ft = first if y == 0 else int(rng.integers(0, 5))
            deltas = rng.integers(0, 256, w * bpp, dtype=np.uint8) * (rng.random(w * bpp) < density)
            if y % 3 == 1:
                deltas[: 8 * bpp] = 0
            rows.append(bytes([ft]) + deltas.astype(np.uint8).tobytes())
        raw = b"".join(rows)
        ref = _unfilter_reference(raw, h, w, bpp)
        got = native().png_unfilter(raw, h, w, bpp)
        assert np.array_equal(got.reshape(h, w, bpp), ref), first
        if bpp >= 3:
            ids = native().png_unfilter_ids(raw, h, w, bpp)
            r = ref.astype(np.uint32)
            assert np.array_equal(ids, r[..., 0] + 256 * r[..., 1] + 65536 * r[..., 2])
