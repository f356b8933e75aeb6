"""Validation during training: the model's own test pipeline on the val split, scored by the
knet.evaluation evaluators (PQ for panoptic, mask AP for instance, mIoU for semantic).

    validate = make_validator(cfg)        # reads the val split once
    metrics = validate(model, cfg)        # {"PQ": ..., "SQ": ..., "RQ": ...} etc.
"""

from __future__ import annotations

from typing import Any

import torch

from knet.data.catalog import open_dataset


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


def make_validator(cfg):
    """A function (model, cfg) -> metrics dict on cfg's val split (read lazily, once)."""
    state: dict[str, Any] = {}

    def validate(model: torch.nn.Module, cfg_now) -> dict[str, float]:
        from knet.engine.evaluate_results import evaluate_predictions

        if "dataset" not in state:
            state["dataset"] = open_dataset(cfg.data.data, task=cfg.task, split="val", data_root_dir=cfg.data.root or None)
        ds = state["dataset"]
        pairs = predict_dataset(model, ds, max_images=cfg.data.max_val_images)
        return evaluate_predictions(cfg.task, ds, [r for _, r in pairs])

    return validate
