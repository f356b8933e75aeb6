"""Per-image results, the one currency between models, evaluators, writers and the CLI.

All arrays are numpy, at the original image size (H, W). Labels are contiguous class indices
(0..K-1) in the order of the model's `class_names`; mapping to dataset category ids happens only
where a file format needs it (COCO results JSON, COCO panoptic JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SemanticResult:
    label: np.ndarray  # [H, W] int64, class index per pixel (ignore/void = 255 where applicable)


@dataclass
class InstanceResult:
    scores: np.ndarray  # [K] float32, descending
    labels: np.ndarray  # [K] int64, class index
    masks: np.ndarray  # [K, H, W] bool
    kernel_index: np.ndarray | None = None  # [K] int64, the kernel each detection comes from (optional)


@dataclass
class Segment:
    id: int  # segment id in `PanopticResult.segment_map` (>= 1)
    label: int  # class index; things first, then stuff, as in the model's class_names
    is_thing: bool
    score: float
    area: int  # pixels with this id in segment_map
    kernel_index: int = -1  # the kernel the segment comes from (-1 when unknown)


@dataclass
class PanopticResult:
    segment_map: np.ndarray  # [H, W] int32, 0 = VOID, else a Segment.id
    segments: list[Segment] = field(default_factory=list)
