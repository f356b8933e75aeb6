"""Semantic K-Net images-in / results-out: test resize, whole-mode post-processing, TTA."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from knet.errors import KnetError
from knet.models.knet_semantic import SemanticKNetConfig, build_semantic_knet
from knet.models.preprocess import IMAGENET_MEAN, IMAGENET_STD
from knet.structures import SemanticResult

TINY = SemanticKNetConfig(
    stem_channels=8,
    base_channels=8,
    head="upernet",
    channels=32,
    num_classes=5,
    feedforward_channels=64,
    updator_channels=16,
    num_heads=4,
    aux_channels=16,
    test_scale=(64, 40),
    tta_ratios=(0.75, 1.0),
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_semantic_knet(TINY)
    # non-trivial BN statistics so that eval mode is not an identity
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    # Kaiming-initialised features give logits in the hundreds (saturated softmax, exact ties in
    # the TTA mean); scale the dynamic mask kernels down to keep the class scores informative
    with torch.no_grad():
        for stage in m.kernel_update_stages:
            stage.fc_mask.weight.mul_(1e-3)
            stage.fc_mask.bias.mul_(1e-3)
    return m.eval()


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _normalise(img: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None]
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).round().clamp(0, 255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _assert_argmax(label: np.ndarray, scores: torch.Tensor, tie: float = 1e-4) -> None:
    """label == argmax over classes of scores [K, H, W] wherever the top-2 gap exceeds `tie`."""
    top2 = scores.topk(2, dim=0).values
    sure = ((top2[0] - top2[1]) > tie).numpy()
    assert sure.mean() > 0.9
    assert np.array_equal(label[sure], scores.argmax(0).numpy()[sure])


def test_predict_resizes_keep_ratio_and_returns_original_size(model):
    img = _image(30, 47)  # odd size; keep-ratio factor min(64/47, 40/30) -> 40 x 63
    (result,) = model.predict([img])
    assert isinstance(result, SemanticResult)
    assert result.label.shape == (30, 47) and result.label.dtype == np.int64
    assert result.label.min() >= 0 and result.label.max() < 5
    with torch.no_grad():
        x = _normalise(img, (40, 63))
        logits = model.forward_stages(x)[-1]["mask_logits"]
        logits = F.interpolate(logits, size=(40, 63), mode="bilinear", align_corners=False)
        logits = F.interpolate(logits, size=(30, 47), mode="bilinear", align_corners=False)
    _assert_argmax(result.label, logits[0])


def test_predict_all_stages_and_several_images(model):
    imgs = [_image(32, 32, 1), _image(21, 50, 2)]
    results = model.predict(imgs, all_stages=True)
    assert len(results) == 2
    for img, per_stage in zip(imgs, results):
        assert len(per_stage) == 1 + TINY.num_stages
        assert all(r.label.shape == img.shape[:2] for r in per_stage)
    final = model.predict(imgs)
    for per_stage, r in zip(results, final):
        assert np.array_equal(per_stage[-1].label, r.label)
    assert model.predict([]) == []


def test_predict_noncontiguous_image(model):
    img = _image(40, 30, 3)
    view = np.ascontiguousarray(img.transpose(1, 0, 2)).transpose(1, 0, 2)  # same pixels, F-order
    assert not view.flags["C_CONTIGUOUS"]
    assert np.array_equal(model.predict([view])[0].label, model.predict([img])[0].label)


def test_tta_is_mean_of_softmax_over_scales_and_flips(model):
    img = _image(26, 34, 4)
    (result,) = model.predict([img], tta=True)
    assert result.label.shape == (26, 34)
    total = torch.zeros(1, 5, 26, 34)
    with torch.no_grad():
        for ratio in TINY.tta_ratios:
            scale = (int(64 * ratio), int(40 * ratio))
            factor = min(max(scale) / 34, min(scale) / 26)
            size = (int(26 * factor + 0.5), int(34 * factor + 0.5))
            x = _normalise(img, size)
            for flip in (False, True):
                inp = x.flip(-1) if flip else x
                logits = model.forward_stages(inp)[-1]["mask_logits"]
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
                prob = F.interpolate(logits, size=(26, 34), mode="bilinear", align_corners=False).softmax(1)
                total += prob.flip(-1) if flip else prob
    _assert_argmax(result.label, total[0] / 4, tie=1e-6)  # mean probabilities


def test_postprocess_accepts_batchless_logits(model):
    logits = torch.randn(5, 7, 9)
    a = model.postprocess({"mask_logits": logits}, ori_shape=(14, 18))
    b = model.postprocess(logits[None], ori_shape=(14, 18))
    assert np.array_equal(a.label, b.label) and a.label.shape == (14, 18)
    with pytest.raises(ValueError):
        model.postprocess(torch.randn(2, 5, 7, 9), ori_shape=(14, 18))


def test_bad_images_raise_knet_error(model):
    with pytest.raises(KnetError):
        model.predict([np.zeros((10, 10), dtype=np.uint8)])
    with pytest.raises(KnetError):
        model.predict([np.zeros((10, 10, 3), dtype=np.float32)])
    with pytest.raises(KnetError):
        model.predict([_image(8, 8)], tta=True, all_stages=True)
    with pytest.raises(KnetError):
        model.predict([[1, 2, 3]], tta=True)
    with pytest.raises(KnetError):
        model.predict([np.zeros((0, 5, 3), dtype=np.uint8)])


def test_psp_aspp_fcn_tiny_variants_run():
    for head in ("fcn", "psp", "aspp"):
        cfg = dataclasses.replace(TINY, head=head, dilated=True, aspp_dilations=(1, 2, 3, 4))
        m = build_semantic_knet(cfg).eval()
        with torch.no_grad():
            outs = m.forward_stages(torch.randn(1, 3, 35, 41))
        assert [tuple(o["mask_logits"].shape) for o in outs] == [(1, 5, 5, 6)] * 4
        assert all(tuple(o["kernels"].shape) == (1, 5, 32) for o in outs)
