"""The det model API at small sizes: predict pipeline, all_stages, training backward, init, config checks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from knet.errors import KnetError
from knet.models import DetKNetConfig, build_model
from knet.models.presets import knet_instance_tiny, knet_panoptic_tiny
from knet.structures import InstanceResult, PanopticResult


def small(cfg: DetKNetConfig) -> DetKNetConfig:
    return dataclasses.replace(
        cfg, base_channels=4, fpn_channels=16, channels=16, pe_num_feats=8, gn_groups=4, num_heads=2,
        feedforward_channels=32, updator_channels=16, num_kernels=10, test_scale=(96, 64),
    )


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (37, 53, 3), dtype=np.uint8), rng.integers(0, 255, (61, 29, 3), dtype=np.uint8)]


@pytest.mark.parametrize("make", [knet_instance_tiny, knet_panoptic_tiny])
def test_predict_batch_odd_sizes(make):
    torch.manual_seed(0)
    model = build_model(small(make())).eval()
    images = _images()
    results = model.predict(images)
    assert len(results) == 2
    for image, result in zip(images, results):
        if model.task == "instance":
            assert isinstance(result, InstanceResult)
            assert result.masks.shape == (100, *image.shape[:2])
            assert (np.diff(result.scores) <= 0).all()
        else:
            assert isinstance(result, PanopticResult)
            assert result.segment_map.shape == image.shape[:2]
            for seg in result.segments:
                assert seg.area == int((result.segment_map == seg.id).sum()) and seg.area > 0
    stages = model.predict(images, all_stages=True)
    assert len(stages) == 2 and len(stages[0]) == 4
    # the last stage of all_stages is the normal result (same batch: the padding is part of the input)
    last, normal = stages[0][-1], results[0]
    if model.task == "instance":
        np.testing.assert_array_equal(last.masks, normal.masks)
    else:
        np.testing.assert_array_equal(last.segment_map, normal.segment_map)
    assert model.predict([]) == []


def test_bad_images_raise_knet_error():
    model = build_model(small(knet_instance_tiny())).eval()
    with pytest.raises(KnetError, match="image 0"):
        model.predict([np.zeros((10, 10), dtype=np.uint8)])
    with pytest.raises(KnetError, match="image 0"):
        model.predict([np.zeros((10, 10, 3), dtype=np.float32)])


def test_forward_stages_shapes_and_training_backward():
    torch.manual_seed(0)
    cfg = small(knet_panoptic_tiny())
    model = build_model(cfg).train()
    x = torch.randn(2, 3, 64, 96)
    outs = model.forward_stages(x)
    n = cfg.num_kernels + cfg.num_stuff_classes
    assert len(outs) == 1 + cfg.num_stages
    assert outs[0]["cls_logits"] is None and outs[0]["seg_logits"].shape == (2, cfg.num_classes, 8, 12)
    for out in outs:
        assert out["mask_logits"].shape == (2, n, 8, 12) and out["kernels"].shape == (2, n, cfg.channels)
    for out in outs[1:]:
        assert out["cls_logits"].shape == (2, n, cfg.num_classes)
    loss = sum(o["mask_logits"].sigmoid().mean() for o in outs) + sum(o["cls_logits"].mean() for o in outs[1:])
    loss = loss + outs[0]["seg_logits"].mean()
    loss.backward()
    gen = model.kernel_generator
    for p in (gen.init_kernels.weight, gen.conv_seg.weight, model.update_stages[0].fc_mask.weight,
              model.update_stages[2].fc_cls.weight, model.fpn.lateral_convs[0].conv.weight, model.backbone.layer4[0].conv1.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    # frozen_stages=1: stem and layer1 get no gradient, their BN stays in eval mode
    assert model.backbone.conv1.weight.grad is None and not model.backbone.layer1[0].conv1.weight.requires_grad
    assert not model.backbone.bn1.training


def test_initialisation_follows_spec():
    model = build_model(small(knet_panoptic_tiny()))
    prior = -math.log(0.99 / 0.01)
    for stage in model.update_stages:
        assert torch.allclose(stage.fc_cls.bias, torch.full_like(stage.fc_cls.bias, prior))
    assert torch.allclose(model.kernel_generator.conv_seg.bias, torch.full_like(model.kernel_generator.conv_seg.bias, prior))
    assert 0.5 < model.kernel_generator.init_kernels.weight.std() < 1.5  # N(0, 1)
    assert model.kernel_generator.conv_seg.weight.std() < 0.05  # N(0, 0.01)


def test_config_validation_and_dict_round_trip():
    cfg = knet_panoptic_tiny()
    assert DetKNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KnetError, match="unknown det K-Net config keys"):
        DetKNetConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(KnetError, match="class names"):
        build_model(dataclasses.replace(cfg, class_names=("a", "b")))
    with pytest.raises(KnetError, match="pe_num_feats"):
        build_model(dataclasses.replace(cfg, pe_num_feats=8))


@torch.inference_mode(False)
def test_fused_backbone_close_and_rebuilt_after_weight_change():
    torch.manual_seed(0)
    model = build_model(small(knet_instance_tiny())).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for p in model.backbone.modules():  # non-trivial BN statistics
            if isinstance(p, torch.nn.BatchNorm2d):
                p.running_mean.uniform_(-0.5, 0.5)
                p.running_var.uniform_(0.5, 2.0)
        plain = model.extract_features(x)
        fused = model.extract_features(x, fused=True)
        for a, b in zip(plain, fused):
            assert (a - b).abs().max() <= 1e-4 * a.abs().max()
        model.backbone.layer4[0].conv1.weight.mul_(2.0)  # in-place change: cache must rebuild
        plain2, fused2 = model.extract_features(x), model.extract_features(x, fused=True)
        assert (plain2[-1] - plain[-1]).abs().max() > 1e-3
        assert (plain2[-1] - fused2[-1]).abs().max() <= 1e-4 * plain2[-1].abs().max()
    assert len(model.state_dict()) == len(build_model(small(knet_instance_tiny())).state_dict())


@pytest.mark.parametrize("winograd", [True, False])
def test_winograd_switch_follows_config(winograd):
    from knet.models.fast_conv import WinogradConv2d

    torch.manual_seed(0)
    model = build_model(dataclasses.replace(small(knet_panoptic_tiny()), winograd_convs=winograd)).eval()
    convs = {name: m for name, m in model.named_modules() if isinstance(m, WinogradConv2d)}
    assert convs and all(name.startswith(("fpn.", "kernel_generator.")) for name in convs)  # never the backbone
    assert all(m.winograd == winograd for m in convs.values())
    # both paths give the same network up to the Winograd rounding (forced on for these 16-channel convs)
    for m in convs.values():
        m.min_channels, m.max_threads = 1, 1024
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        pyramid = model.extract_features(x)
        for m in convs.values():
            m.winograd = not winograd
        other = model.extract_features(x)
    for a, b in zip(pyramid, other):
        assert (a - b).abs().max() <= 1e-4 * a.abs().max()
    assert any(not torch.equal(a, b) for a, b in zip(pyramid, other))  # the two paths really differ
