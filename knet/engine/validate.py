"""Validation during training: the model's own test pipeline on the val split, scored by the
knet.evaluation evaluators (PQ for panoptic, mask AP for instance, mIoU for semantic).

    validate = make_validator(cfg)        # reads the val split once
    metrics = validate(model, cfg)        # {"PQ": ..., "SQ": ..., "RQ": ...} etc.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from knet.data.catalog import open_dataset
from knet.data.sample import IGNORE
from knet.structures import InstanceResult, PanopticResult, SemanticResult


def predict_dataset(model: torch.nn.Module, dataset, *, max_images: int = 0, batch_size: int = 4) -> list[tuple[Any, Any]]:
    """[(sample, result)] for the first `max_images` images (0 = all), with model.predict."""
    n = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    pairs = []
    for lo in range(0, n, batch_size):
        samples = [dataset[i] for i in range(lo, min(n, lo + batch_size))]
        with torch.inference_mode():
            results = model.predict([s.image for s in samples])
        pairs.extend(zip(samples, results))
    return pairs


def gt_as_result(sample, task: str, num_things: int) -> SemanticResult | InstanceResult | PanopticResult:
    """A dataset sample's ground truth in the result currency (what the evaluators compare)."""
    if task == "semantic":
        return SemanticResult(label=sample.sem_seg.astype(np.int64))
    if task == "instance":
        n = len(sample.thing_labels)
        return InstanceResult(scores=np.ones(n, np.float32), labels=sample.thing_labels.astype(np.int64), masks=sample.thing_masks)
    from knet.structures import Segment

    seg_map = np.zeros(sample.sem_seg.shape, np.int32)
    segments, sid = [], 1
    for m, lab in zip(sample.thing_masks, sample.thing_labels):
        seg_map[m] = sid
        segments.append(Segment(id=sid, label=int(lab), is_thing=True, score=1.0, area=int(m.sum())))
        sid += 1
    for lab in np.unique(sample.sem_seg):
        if lab == IGNORE or lab < num_things:
            continue
        m = sample.sem_seg == lab
        seg_map[m] = sid
        segments.append(Segment(id=sid, label=int(lab), is_thing=False, score=1.0, area=int(m.sum())))
        sid += 1
    return PanopticResult(segment_map=seg_map, segments=segments)


def make_validator(cfg):
    """A function (model, cfg) -> metrics dict on cfg's val split (read lazily, once)."""
    state: dict[str, Any] = {}

    def validate(model: torch.nn.Module, cfg_now) -> dict[str, float]:
        from knet.engine.evaluate_results import evaluate_pairs

        if "dataset" not in state:
            state["dataset"] = open_dataset(cfg.data.data, task=cfg.task, split="val", data_root_dir=cfg.data.root or None)
        ds = state["dataset"]
        pairs = predict_dataset(model, ds, max_images=cfg.data.max_val_images)
        num_things = getattr(cfg_now.model, "num_thing_classes", 0)
        return evaluate_pairs(cfg.task, [(gt_as_result(s, cfg.task, num_things), r) for s, r in pairs], cfg_now.model)

    return validate
