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

evaluate_panoptic reads each pair of PNG files and hands the bytes to one C++ call without the
GIL (csrc/ops/pq_eval image_stats_files): chunk walk, knet's own streaming inflate
(csrc/ops/png/inflate_core), unfiltering and pair counting a scanline at a time, two images at
once. Nothing on this path imports numpy: segments go in and statistics come back as lists
(numpy is imported only when a caller hands in id maps, or for a PNG flavour PIL decodes).
"""

from __future__ import annotations

import math
import os
import threading
from collections import defaultdict
from pathlib import Path

from knet.errors import KnetError
from knet.evaluation.native import native as ext

GROUPS = (("All", None), ("Things", True), ("Stuff", False))


class _ImageStats:
    """One image's TP categories and IoUs (in panopticapi's order), FN and FP categories."""

    __slots__ = ("match_cat", "match_iou", "fn_cat", "fp_cat")

    def __init__(self, match_cat: list[int], match_iou: list[float], fn_cat: list[int], fp_cat: list[int]) -> None:
        self.match_cat, self.match_iou, self.fn_cat, self.fp_cat = match_cat, match_iou, fn_cat, fp_cat


class PanopticEvalResult:
    """PQ / SQ / RQ per group and per class. (A plain class, not a dataclass: importing
    dataclasses costs start-up time, which is part of the measured evaluation time.)"""

    __slots__ = ("groups", "per_class", "cat_names")

    def __init__(self, *, groups: dict[str, dict], per_class: dict[int, dict], cat_names: dict[int, str] | None = None) -> None:
        self.groups = groups  # {"All": {"pq", "sq", "rq", "n"}, "Things": ..., "Stuff": ...}
        self.per_class = per_class  # category id -> {"pq", "sq", "rq"}
        self.cat_names = cat_names if cat_names is not None else {}

    def __repr__(self) -> str:
        return f"PanopticEvalResult(groups={self.groups!r}, per_class={self.per_class!r}, cat_names={self.cat_names!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PanopticEvalResult):
            return NotImplemented
        return (self.groups, self.per_class, self.cat_names) == (other.groups, other.per_class, other.cat_names)

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
        out = {name: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in g.items()} for name, g in self.groups.items()}
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

    def add_image(self, gt_ids, gt_segments: list[dict], pred_ids, pred_segments: list[dict], *, image: str = "") -> None:
        """One image: id maps [H, W] (numpy arrays) and segments_info lists (COCO panoptic format)."""
        import numpy as np  # only for callers that hand in id maps

        if gt_ids.shape != pred_ids.shape:
            raise KnetError(f"image {image}: prediction is {pred_ids.shape[1]}x{pred_ids.shape[0]}, ground truth {gt_ids.shape[1]}x{gt_ids.shape[0]}")
        g, p = self._segments(gt_segments, pred_segments, image)
        stats = ext().pq_image_stats(np.ascontiguousarray(gt_ids, np.uint32), np.ascontiguousarray(pred_ids, np.uint32), *g, *p)
        self._append(stats, image)

    def image_stats_files(self, gt_png: bytes, gt_segments: list[dict], pred_png: bytes, pred_segments: list[dict], *, image: str = "", gt_path: str = "", pred_path: str = "") -> tuple | None:
        """The per-image statistics of two PNG files' bytes, without adding them (thread-safe;
        the C++ part releases the GIL); None for a PNG flavour other than 8-bit RGB/RGBA (read
        those with png.read_panoptic_ids and add_image). Add them, in image order, with add_stats."""
        g, p = self._segments(gt_segments, pred_segments, image)
        stats = ext().pq_image_stats_files(gt_png, pred_png, *g, *p)
        err, info = stats[0], stats[1]
        if err == 3 or err == 4:
            which = (gt_path, pred_path)[err - 3] or f"the {('ground-truth', 'predicted')[err - 3]} PNG of image {image}"
            raise KnetError(f"{which} is a corrupt PNG ({info})")
        if err == 5:
            gw, gh, pw, ph = info
            raise KnetError(f"image {image}: prediction is {pw}x{ph}, ground truth {gw}x{gh}")
        return None if err == 6 else stats

    def add_stats(self, stats: tuple, *, image: str = "") -> None:
        """Adds the result of image_stats_files."""
        self._append(stats, image)

    def _segments(self, gt_segments: list[dict], pred_segments: list[dict], image: str) -> tuple[tuple, tuple]:
        for s in pred_segments:
            if int(s["category_id"]) not in self.categories:
                raise KnetError(f"image {image}: segment {s['id']} has unknown category_id {s['category_id']}")
        try:
            g = ([int(s["id"]) for s in gt_segments], [int(s["category_id"]) for s in gt_segments],
                 [float(s["area"]) for s in gt_segments], [int(s.get("iscrowd", 0)) for s in gt_segments])
            p = ([int(s["id"]) for s in pred_segments], [int(s["category_id"]) for s in pred_segments])
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
                for c, v in zip(st.match_cat, st.match_iou):
                    part[c][1] += 1
                    part[c][0] += v
                for c in st.fn_cat:
                    part[c][3] += 1
                for c in st.fp_cat:
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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KnetError(f"PNG not found: {path}") from None
    except OSError as exc:
        raise KnetError(f"cannot read {path} ({exc.strerror or exc})") from None


# Panoptic JSONs below this size are parsed with the standard library: importing orjson costs
# ~12 ms of CPU and ~2.5 MB (it pulls in dataclasses, uuid, datetime, ...), more than it saves
# on a file of a few hundred KB; above it (e.g. COCO's 13 MB panoptic_val2017.json) orjson wins.
_ORJSON_FROM_BYTES = 2 << 20


def _read_json(path, what: str):
    path = Path(path)
    try:
        small = path.stat().st_size < _ORJSON_FROM_BYTES
    except OSError:
        small = False  # load_json reports the missing file
    if not small:
        from knet.evaluation.jsonio import load_json

        return load_json(path, what=what)
    import json

    try:
        return json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise KnetError(f"{what} {path} is not valid JSON ({str(exc).splitlines()[0]})") from None


def _load_panoptic_json(path, what: str) -> dict:
    data = _read_json(path, what) if not isinstance(path, dict) else path
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
        # reading and the C++ part (inflate, unfilter, pair counting) release the GIL, so the
        # pool runs images in parallel; only the small per-image statistics come back
        g, p = pair
        gpath, ppath = gt_dir / g["file_name"], pred_dir / p["file_name"]
        name = image_name(g, p)
        stats = acc.image_stats_files(_read(gpath), g["segments_info"], _read(ppath), p["segments_info"], image=name, gt_path=str(gpath), pred_path=str(ppath))
        if stats is None:  # a PNG flavour decoded by PIL
            from knet.evaluation.png import read_panoptic_ids

            return None, read_panoptic_ids(gpath), read_panoptic_ids(ppath)
        return stats, None, None

    # the statistics are added in annotation order (panopticapi's reduction order)
    for (g, p), (stats, gid, pid) in zip(pairs, _ordered_map(work, pairs, threads or min(2, os.cpu_count() or 1))):
        if stats is not None:
            acc.add_stats(stats, image=image_name(g, p))
        else:
            acc.add_image(gid, g["segments_info"], pid, p["segments_info"], image=image_name(g, p))
    return acc.result()
