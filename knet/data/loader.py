"""From datasets to batches: deterministic augmentation, bad-file skipping, padding, collation.

    ds = AugmentedDataset(base, transform=..., seed=0, skip_bad=True)
    loader = make_loader(ds, batch_size=2, workers=2, sampler=sampler, pad_divisor=32)
    for batch in loader: batch.images [B, 3, Hp, Wp], batch.thing_masks[i] [n_i, Hp, Wp] ...

The augmentation random state of item i in epoch e is `default_rng([seed, e, i])`, independent of
the worker, the process and the batch size (what makes resume and DDP runs reproducible). A bad
image or annotation raises KnetError naming the file, or with skip_bad is dropped from its batch
and counted in `batch.num_bad`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from knet.data.sample import IGNORE, Sample
from knet.errors import KnetError

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class AugmentedDataset(torch.utils.data.Dataset):
    def __init__(self, base, *, transform=None, seed: int = 0, skip_bad: bool = False) -> None:
        self.base, self.transform, self.seed, self.skip_bad = base, transform, int(seed), skip_bad
        self.epoch = 0
        self.classes = base.classes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Sample | tuple[str, str]:
        try:
            sample = self.base[index]
        except KnetError as exc:
            if self.skip_bad:
                return ("bad", str(exc))
            raise
        if self.transform is not None:
            sample = self.transform(sample, np.random.default_rng([self.seed, self.epoch, int(index)]))
        return sample


@dataclass
class Batch:
    images: torch.Tensor  # [B, 3, Hp, Wp] float32, normalised (or raw 0-255 when normalize=False)
    image_sizes: list[tuple[int, int]]  # (h, w) of each image before padding
    ori_sizes: list[tuple[int, int]]
    paths: list[str]
    image_ids: list[int]
    thing_masks: list[torch.Tensor] | None = None  # each [n_i, Hp, Wp] bool
    thing_labels: list[torch.Tensor] | None = None  # each [n_i] int64
    sem_seg: torch.Tensor | None = None  # [B, Hp, Wp] int64, 255 = ignore / padding
    num_bad: int = 0
    bad_messages: list[str] = field(default_factory=list)

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return Batch(
            images=move(self.images),
            image_sizes=self.image_sizes,
            ori_sizes=self.ori_sizes,
            paths=self.paths,
            image_ids=self.image_ids,
            thing_masks=None if self.thing_masks is None else [move(m) for m in self.thing_masks],
            thing_labels=None if self.thing_labels is None else [move(m) for m in self.thing_labels],
            sem_seg=None if self.sem_seg is None else move(self.sem_seg),
            num_bad=self.num_bad,
            bad_messages=self.bad_messages,
        )


class Collate:
    """Pad to a multiple of `pad_divisor` (or at least `pad_to`), normalise, stack."""

    def __init__(self, *, pad_divisor: int = 32, pad_to: tuple[int, int] | None = None, normalize: bool = True) -> None:
        self.pad_divisor, self.pad_to, self.normalize = pad_divisor, pad_to, normalize

    def __call__(self, items: list) -> Batch:
        bad = [it[1] for it in items if isinstance(it, tuple)]
        samples: list[Sample] = [it for it in items if not isinstance(it, tuple)]
        hs = [s.image.shape[0] for s in samples] or [self.pad_divisor]
        ws = [s.image.shape[1] for s in samples] or [self.pad_divisor]
        hp, wp = max(hs), max(ws)
        if self.pad_to is not None:
            hp, wp = max(hp, self.pad_to[0]), max(wp, self.pad_to[1])
        d = self.pad_divisor
        hp, wp = int(math.ceil(hp / d) * d), int(math.ceil(wp / d) * d)
        b = len(samples)
        images = torch.zeros(b, 3, hp, wp, dtype=torch.float32)
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        has_things = bool(samples) and samples[0].thing_masks is not None
        has_sem = bool(samples) and samples[0].sem_seg is not None
        sem = torch.full((b, hp, wp), IGNORE, dtype=torch.int64) if has_sem else None
        masks, labels = [], []
        for i, s in enumerate(samples):
            h, w = s.image.shape[:2]
            img = torch.from_numpy(np.array(s.image, dtype=np.float32)).permute(2, 0, 1)  # [3, h, w]
            images[i, :, :h, :w] = (img - mean) / std if self.normalize else img  # pad value 0 after Normalize
            if has_sem:
                sem[i, :h, :w] = torch.from_numpy(np.array(s.sem_seg, dtype=np.int64))
            if has_things:
                m = torch.zeros(len(s.thing_masks), hp, wp, dtype=torch.bool)
                m[:, :h, :w] = torch.from_numpy(np.array(s.thing_masks, dtype=bool))
                masks.append(m)
                labels.append(torch.from_numpy(np.asarray(s.thing_labels, np.int64)))
        return Batch(
            images=images,
            image_sizes=[(s.image.shape[0], s.image.shape[1]) for s in samples],
            ori_sizes=[tuple(s.ori_size) for s in samples],
            paths=[s.path for s in samples],
            image_ids=[s.image_id for s in samples],
            thing_masks=masks if has_things else None,
            thing_labels=labels if has_things else None,
            sem_seg=sem,
            num_bad=len(bad),
            bad_messages=bad,
        )


def make_loader(
    dataset,
    *,
    batch_size: int,
    workers: int = 0,
    sampler: Sampler | None = None,
    shuffle: bool = False,
    collate: Collate | None = None,
    drop_last: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader with knet's collate; workers > 0 uses worker processes (persistent)."""
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=shuffle if sampler is None else False,
        num_workers=workers,
        collate_fn=collate or Collate(),
        drop_last=drop_last,
        persistent_workers=workers > 0,
        generator=gen,
    )
