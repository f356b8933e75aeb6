"""knet.evaluation: COCO mask/box AP, panoptic quality and mIoU, identical to the reference tools.

File / in-memory functions: `evaluate_coco`, `evaluate_panoptic`, `evaluate_semantic`.
Training-loop evaluators: `CocoInstanceEvaluator`, `PanopticEvaluator`, `SemanticEvaluator`.
Model evaluation over a dataset split: `knet.evaluation.runner`. None of these import torch
(knet._eval_C is torch-free) except the instance evaluator's mask encoding.
"""

from knet.evaluation.coco import CocoEvalResult, evaluate_coco
from knet.evaluation.evaluators import CocoInstanceEvaluator, PanopticEvaluator, SemanticEvaluator
from knet.evaluation.panoptic import PanopticEvalResult, evaluate_panoptic
from knet.evaluation.semantic import SemanticEvalResult, evaluate_semantic

__all__ = [
    "CocoEvalResult",
    "CocoInstanceEvaluator",
    "PanopticEvalResult",
    "PanopticEvaluator",
    "SemanticEvalResult",
    "SemanticEvaluator",
    "evaluate_coco",
    "evaluate_panoptic",
    "evaluate_semantic",
]
