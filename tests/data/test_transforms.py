"""Augmentations keep masks and label maps aligned with the image; the recipes' sizes hold."""

import numpy as np
import pytest

from knet.data.sample import Sample
from knet.data.transforms import (
    KeepRatioResize,
    PhotoMetricDistortion,
    RandomCrop,
    RandomFlip,
    ShorterSideRange,
    coco_train_transforms,
    keep_ratio_size,
    semantic_train_transforms,
)


def _sample(h=90, w=130):
    """Image colour encodes the labels: blue-ish background, a red box, a green disc."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (0, 0, 200)
    yy, xx = np.mgrid[0:h, 0:w]
    box = (yy >= 10) & (yy < 50) & (xx >= 15) & (xx < 70)
    disc = (yy - 60) ** 2 + (xx - 95) ** 2 < 22**2
    img[box] = (220, 0, 0)
    img[disc] = (0, 220, 0)
    sem = np.zeros((h, w), np.uint8)
    sem[box], sem[disc] = 1, 2
    return Sample(image=img, path="x", thing_masks=np.stack([box, disc]), thing_labels=np.array([0, 1]), sem_seg=sem)


def _check_aligned(s: Sample):
    img = s.image.astype(int)
    red = (img[..., 0] > 150) & (img[..., 1] < 60)
    green = (img[..., 1] > 150) & (img[..., 0] < 60)
    for m, colour in zip(s.thing_masks, (red, green)):
        if m.sum() < 30:
            continue
        iou = (m & colour).sum() / (m | colour).sum()
        assert iou > 0.85, iou
    for lab, colour in ((1, red), (2, green)):
        region = s.sem_seg == lab
        if region.sum() >= 30:
            assert (region & colour).sum() / (region | colour).sum() > 0.85


@pytest.mark.parametrize("seed", range(6))
def test_semantic_recipe_aligned(seed):
    t = semantic_train_transforms(scale=(260, 90), crop=(64, 80), photometric=False)
    s = t(_sample(), np.random.default_rng(seed))
    assert s.image.shape[0] <= 64 and s.image.shape[1] <= 80
    assert s.sem_seg.shape == s.image.shape[:2]
    _check_aligned(s)


@pytest.mark.parametrize("seed", range(6))
def test_coco_recipes_aligned(seed):
    for t in (coco_train_transforms(scale=(200, 100)), coco_train_transforms(scale=(200, 100), multiscale=(60, 100))):
        s = t(_sample(), np.random.default_rng(seed))
        assert max(s.image.shape[:2]) <= 200 and min(s.image.shape[:2]) <= 100
        assert s.thing_masks.shape[1:] == s.image.shape[:2]
        _check_aligned(s)


def test_flip_moves_everything():
    s = _sample()
    f = RandomFlip(1.0)(s, np.random.default_rng(0))
    np.testing.assert_array_equal(f.image, s.image[:, ::-1])
    np.testing.assert_array_equal(f.thing_masks, s.thing_masks[:, :, ::-1])
    np.testing.assert_array_equal(f.sem_seg, s.sem_seg[:, ::-1])
    assert RandomFlip(0.0)(s, np.random.default_rng(0)) is s


def test_keep_ratio_sizes():
    assert keep_ratio_size(480, 640, (1333, 800)) == (800, 1067)
    assert keep_ratio_size(500, 2000, (1333, 800)) == (333, 1333)
    s = KeepRatioResize((1333, 800))(_sample(90, 130), np.random.default_rng(0))
    assert s.image.shape[:2] == keep_ratio_size(90, 130, (1333, 800))
    sizes = {ShorterSideRange((60, 80), max_long=1333)(_sample(), np.random.default_rng(i)).image.shape[0] for i in range(20)}
    assert min(sizes) >= 60 and max(sizes) <= 80 and len(sizes) > 3


def test_cat_max_ratio_prefers_mixed_crops():
    s = _sample()
    sem = np.zeros((90, 130), np.uint8)
    sem[:, 100:] = 1  # a crop of width 40 in x < 100 would be one class only
    s.sem_seg = sem
    crop = RandomCrop((90, 40), cat_max_ratio=0.75)
    mixed = sum(len(np.unique(crop(s, np.random.default_rng(i)).sem_seg)) > 1 for i in range(20))
    assert mixed >= 15


def test_photometric_keeps_shape_and_labels():
    s = _sample()
    out = PhotoMetricDistortion()(s, np.random.default_rng(1))
    assert out.image.shape == s.image.shape and out.image.dtype == np.uint8
    np.testing.assert_array_equal(out.sem_seg, s.sem_seg)
