"""One training/validation example as the datasets produce it and the transforms change it.

Arrays are numpy at the current (possibly augmented) image size. Labels are contiguous class
indices in the dataset's `class_names` order: for panoptic data things come first (0..T-1),
then stuff (T..K-1), the model's convention; 255 marks ignored pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IGNORE = 255


@dataclass
class Sample:
    image: np.ndarray  # [H, W, 3] uint8 RGB
    path: str  # image file, for error messages and results
    image_id: int = 0
    ori_size: tuple[int, int] = (0, 0)  # (H, W) of the file on disk
    thing_masks: np.ndarray | None = None  # [n, H, W] bool (instance / panoptic; no crowds)
    thing_labels: np.ndarray | None = None  # [n] int64, thing class index
    sem_seg: np.ndarray | None = None  # [H, W] uint8 class index per pixel (255 = ignore)
    ignore_mask: np.ndarray | None = None  # [H, W] bool, crowd regions (instance data)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ori_size == (0, 0):
            self.ori_size = (int(self.image.shape[0]), int(self.image.shape[1]))


@dataclass(frozen=True)
class ClassInfo:
    """The categories of a dataset, as read from its own files."""

    names: tuple[str, ...]  # contiguous order
    category_ids: tuple[int, ...]  # dataset ids in the same order (ADE20K: 1..K)
    is_thing: tuple[bool, ...]

    @property
    def num_things(self) -> int:
        return sum(self.is_thing)

    @property
    def num_stuff(self) -> int:
        return len(self.names) - self.num_things

    @property
    def thing_names(self) -> tuple[str, ...]:
        return tuple(n for n, t in zip(self.names, self.is_thing) if t)

    @property
    def stuff_names(self) -> tuple[str, ...]:
        return tuple(n for n, t in zip(self.names, self.is_thing) if not t)
