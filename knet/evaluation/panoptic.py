"""Panoptic quality (PQ, SQ, RQ for All / Things / Stuff and per class), identical to panopticapi.

    result = evaluate_panoptic(gt_json, gt_dir, pred_json, pred_dir)
    print("\\n".join(result.summary_lines())); result.as_dict()

Per image (C++, csrc/ops/pq_eval): pair counts of the two id maps, TP iff non-crowd GT, same
category and IoU > 0.5 with the prediction's VOID pixels removed from the union; FN = unmatched
non-crowd GT; FP = unmatched prediction unless more than half of it is VOID or crowd of its
category (the last crowd segment listed per category). Predicted areas come from the PNG, GT
areas from the GT JSON. Every non-VOID PNG id must be in segments_info and vice versa (else
KnetError). The images are reduced exactly as panopticapi does: split into `chunks` contiguous
parts like np.array_split (panopticapi uses one per CPU, multiprocessing.cpu_count()), IoUs
summed in order inside a part, parts added in order, classes averaged in GT category order, so
the floats are the same to the last bit. A group with no class (e.g. no stuff) gives nan
where panopticapi raises ZeroDivisionError.
"""

from __future__ import annotations

import os
from collections import defaultdict
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knet.errors import KnetError
from knet.evaluation.jsonio import load_json
from knet.evaluation.png import inflate_panoptic, read_panoptic_ids
from knet.evaluation.native import native as ext

GROUPS = (("All", None), ("Things", True), ("Stuff", False))


@dataclass
class _ImageStats:
    match_cat: np.ndarray
    match_iou: np.ndarray
    fn_cat: np.ndarray
    fp_cat: np.ndarray


@dataclass
class PanopticEvalResult:
    groups: dict[str, dict]  # {"All": {"pq", "sq", "rq", "n"}, "Things": ..., "Stuff": ...}
    per_class: dict[int, dict]  # category id -> {"pq", "sq", "rq"}
    cat_names: dict[int, str] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        lines = ["{:10s}| {:>5s}  {:>5s}  {:>5s} {:>5s}".format("", "PQ", "SQ", "RQ", "N"), "-" * (10 + 7 * 4)]
        for name, _ in GROUPS:
            g = self.groups[name]
            lines.append("{:10s}| {:5.1f}  {:5.1f}  {:5.1f} {:5d}".format(name, 100 * g["pq"], 100 * g["sq"], 100 * g["rq"], g["n"]))
        return lines

    def per_class_lines(self) -> list[str]:
        out = []
        for cid, r in self.per_class.items():
            out.append(f"{self.cat_names.get(cid, str(cid)):<24} PQ {100 * r['pq']:5.1f}  SQ {100 * r['sq']:5.1f}  RQ {100 * r['rq']:5.1f}")
        return out

    def as_dict(self) -> dict:
        out = {name: {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in g.items()} for name, g in self.groups.items()}
        out["per_class"] = {self.cat_names.get(c, str(c)): r for c, r in self.per_class.items()}
        return out


class PanopticAccumulator:
    """Collects per-image PQ statistics; `result()` reduces them exactly as panopticapi."""

    def __init__(self, categories: list[dict], *, chunks: int | None = None) -> None:
        self.categories = {int(c["id"]): c for c in categories}  # GT order, like panopticapi's dict
        self.chunks = chunks or os.cpu_count() or 1  # = multiprocessing.cpu_count()
        self.reset()

    def reset(self) -> None:
        self._images: list[_ImageStats] = []

    def add_image(self, gt_ids: np.ndarray, gt_segments: list[dict], pred_ids: np.ndarray, pred_segments: list[dict], *, image: str = "") -> None:
        """One image: id maps [H, W] and segments_info lists (COCO panoptic format)."""
        if gt_ids.shape != pred_ids.shape:
            raise KnetError(f"image {image}: prediction is {pred_ids.shape[1]}x{pred_ids.shape[0]}, ground truth {gt_ids.shape[1]}x{gt_ids.shape[0]}")
        g, p = self._segments(gt_segments, pred_segments, image)
        stats = ext().pq_image_stats(np.ascontiguousarray(gt_ids, np.uint32), np.ascontiguousarray(pred_ids, np.uint32), *g, *p)
        self._append(stats, image)

    def add_image_png(self, gt_png: tuple[int, int, int, bytes], gt_segments: list[dict], pred_png: tuple[int, int, int, bytes], pred_segments: list[dict], *, image: str = "") -> None:
        """One image from its two inflated PNGs (png.inflate_panoptic): the rows are unfiltered
        and paired in one pass (csrc/ops/pq_eval), never stored as id maps."""
        self._append(self.image_stats_png(gt_png, gt_segments, pred_png, pred_segments, image=image), image)

    def image_stats_png(self, gt_png: tuple[int, int, int, bytes], gt_segments: list[dict], pred_png: tuple[int, int, int, bytes], pred_segments: list[dict], *, image: str = "") -> tuple:
        """The per-image statistics of add_image_png without adding them (thread-safe; the
        C++ part releases the GIL). Add them, in image order, with add_stats."""
        (gh, gw, gch, graw), (ph, pw, pch, praw) = gt_png, pred_png
        if (gh, gw) != (ph, pw):
            raise KnetError(f"image {image}: prediction is {pw}x{ph}, ground truth {gw}x{gh}")
        g, p = self._segments(gt_segments, pred_segments, image)
        try:
            return ext().pq_image_stats_png(graw, gch, praw, pch, gh, gw, *g, *p)
        except ValueError as exc:
            raise KnetError(f"image {image}: {exc}") from None

    def add_stats(self, stats: tuple, *, image: str = "") -> None:
        """Adds the result of image_stats_png."""
        self._append(stats, image)

    def _segments(self, gt_segments: list[dict], pred_segments: list[dict], image: str) -> tuple[tuple, tuple]:
        for s in pred_segments:
            if int(s["category_id"]) not in self.categories:
                raise KnetError(f"image {image}: segment {s['id']} has unknown category_id {s['category_id']}")
        try:
            g = (np.array([int(s["id"]) for s in gt_segments], np.int64),
                 np.array([int(s["category_id"]) for s in gt_segments], np.int64),
                 np.array([float(s["area"]) for s in gt_segments], np.float64),
                 np.array([int(s.get("iscrowd", 0)) for s in gt_segments], np.int64))
            p = (np.array([int(s["id"]) for s in pred_segments], np.int64), np.array([int(s["category_id"]) for s in pred_segments], np.int64))
        except (KeyError, TypeError, ValueError) as exc:
            raise KnetError(f"image {image}: malformed segments_info entry ({exc.__class__.__name__}: {exc})") from None
        return g, p

    def _append(self, stats: tuple, image: str) -> None:
        err, bad, mc, mi, fn, fp = stats
        if err == 1:
            raise KnetError(f"image {image}: segment id {bad} is in the predicted PNG but not in its segments_info")
        if err == 2:
            raise KnetError(f"image {image}: segment id {bad} is in segments_info but not in the predicted PNG")
        self._images.append(_ImageStats(mc, mi, fn, fp))

    def result(self, cat_names: dict[int, str] | None = None) -> PanopticEvalResult:
        total = defaultdict(lambda: [0.0, 0, 0, 0])  # iou, tp, fp, fn
        n = len(self._images)
        k = self.chunks
        sizes = [n // k + 1] * (n % k) + [n // k] * (k - n % k)  # np.array_split
        start = 0
        for size in sizes:
            part = defaultdict(lambda: [0.0, 0, 0, 0])
            for st in self._images[start : start + size]:
                for c, v in zip(st.match_cat.tolist(), st.match_iou.tolist()):
                    part[c][1] += 1
                    part[c][0] += v
                for c in st.fn_cat.tolist():
                    part[c][3] += 1
                for c in st.fp_cat.tolist():
                    part[c][2] += 1
            for c, (iou, tp, fp, fn) in part.items():
                t = total[c]
                t[0] += iou
                t[1] += tp
                t[2] += fp
                t[3] += fn
            start += size
        groups, per_class = {}, {}
        for name, isthing in GROUPS:
            pq = sq = rq = 0
            count = 0
            classes = {}
            for label, info in self.categories.items():
                if isthing is not None and isthing != (info.get("isthing") == 1):
                    continue
                iou, tp, fp, fn = total[label] if label in total else (0.0, 0, 0, 0)
                if tp + fp + fn == 0:
                    classes[label] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                    continue
                count += 1
                pq_c = iou / (tp + 0.5 * fp + 0.5 * fn)
                sq_c = iou / tp if tp != 0 else 0
                rq_c = tp / (tp + 0.5 * fp + 0.5 * fn)
                classes[label] = {"pq": pq_c, "sq": sq_c, "rq": rq_c}
                pq += pq_c
                sq += sq_c
                rq += rq_c
            nan = float("nan")
            groups[name] = {"pq": pq / count if count else nan, "sq": sq / count if count else nan, "rq": rq / count if count else nan, "n": count}
            if isthing is None:
                per_class = classes
        names = cat_names if cat_names is not None else {c: str(i.get("name", c)) for c, i in self.categories.items()}
        return PanopticEvalResult(groups=groups, per_class=per_class, cat_names=names)


def _ordered_map(fn, items: list, threads: int):
    """fn over items on `threads` threads, yielded in order (an exception is re-raised at its
    item). Plain threads: concurrent.futures / multiprocessing cost start-up time and memory."""
    n = len(items)
    results: list = [None] * n
    errors: list = [None] * n
    done = [threading.Event() for _ in range(n)]
    next_item = iter(range(n))
    lock = threading.Lock()
    stop = False

    def worker() -> None:
        while not stop:
            with lock:
                i = next(next_item, None)
            if i is None:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as exc:  # handed to the consumer, re-raised in item order
                errors[i] = exc
            done[i].set()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(threads, n)))]
    for t in pool:
        t.start()
    try:
        for i in range(n):
            done[i].wait()
            if errors[i] is not None:
                raise errors[i]
            yield results[i]
            results[i] = None
    finally:
        stop = True
        for t in pool:
            t.join()


def _load_panoptic_json(path, what: str) -> dict:
    data = load_json(path, what=what) if not isinstance(path, dict) else path
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise KnetError(f"{what} {path if not isinstance(path, dict) else ''} is not a COCO panoptic file (no 'annotations' list)")
    return data


def evaluate_panoptic(
    gt_json: str | os.PathLike | dict,
    gt_dir: str | os.PathLike,
    pred_json: str | os.PathLike | dict,
    pred_dir: str | os.PathLike,
    *,
    chunks: int | None = None,
    threads: int | None = None,
) -> PanopticEvalResult:
    """panopticapi's pq_compute on files: JSONs (paths or loaded dicts) and PNG folders."""
    gt = _load_panoptic_json(gt_json, "ground-truth panoptic JSON")
    pred = _load_panoptic_json(pred_json, "prediction panoptic JSON")
    if not isinstance(gt.get("categories"), list):
        raise KnetError("ground-truth panoptic JSON has no 'categories' list")
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for d, what in ((gt_dir, "ground-truth PNG folder"), (pred_dir, "prediction PNG folder")):
        if not d.is_dir():
            raise KnetError(f"{what} not found: {d}")
    pred_by_img = {a["image_id"]: a for a in pred["annotations"]}
    pairs = []
    for a in gt["annotations"]:
        if a["image_id"] not in pred_by_img:
            raise KnetError(f"no prediction for the image with id {a['image_id']}")
        pairs.append((a, pred_by_img[a["image_id"]]))
    acc = PanopticAccumulator(gt["categories"], chunks=chunks)

    def image_name(g: dict, p: dict) -> str:
        return f"{g['image_id']} ({p['file_name']})"

    def work(pair):
        # reading, inflate (ISA-L) and the fused unfilter + pair counting all release the GIL,
        # so the pool runs images in parallel; only the small per-image statistics come back
        g, p = pair
        gp, pp = inflate_panoptic(gt_dir / g["file_name"]), inflate_panoptic(pred_dir / p["file_name"])
        if gp is None or pp is None:  # a PNG flavour decoded by PIL
            return None, read_panoptic_ids(gt_dir / g["file_name"]), read_panoptic_ids(pred_dir / p["file_name"])
        return acc.image_stats_png(gp, g["segments_info"], pp, p["segments_info"], image=image_name(g, p)), None, None

    # the statistics are added in annotation order (panopticapi's reduction order)
    for (g, p), (stats, gid, pid) in zip(pairs, _ordered_map(work, pairs, threads or min(2, os.cpu_count() or 1))):
        if stats is not None:
            acc.add_stats(stats, image=image_name(g, p))
        else:
            acc.add_image(gid, g["segments_info"], pid, p["segments_info"], image=image_name(g, p))
    return acc.result()
