"""knet.evaluation: COCO mask/box AP, panoptic quality and mIoU, identical to the reference tools.

File / in-memory functions: `evaluate_coco`, `evaluate_panoptic`, `evaluate_semantic`.
Training-loop evaluators: `CocoInstanceEvaluator`, `PanopticEvaluator`, `SemanticEvaluator`.
Model evaluation over a dataset split: `knet.evaluation.runner`. None of these import torch
(knet._eval_C is torch-free) except the instance evaluator's mask encoding.

The names are imported on first use, so that e.g. `knet.evaluation.panoptic` does not pay for
loading the COCO and semantic evaluators (start-up time is part of the measured eval time).
"""

from __future__ import annotations

import importlib

_WHERE = {
    "CocoEvalResult": "coco",
    "evaluate_coco": "coco",
    "CocoInstanceEvaluator": "evaluators",
    "PanopticEvaluator": "evaluators",
    "SemanticEvaluator": "evaluators",
    "PanopticEvalResult": "panoptic",
    "evaluate_panoptic": "panoptic",
    "SemanticEvalResult": "semantic",
    "evaluate_semantic": "semantic",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"knet.evaluation.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'knet.evaluation' has no attribute {name!r}")
