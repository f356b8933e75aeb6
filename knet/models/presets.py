"""Named model configurations: one plain builder function per published K-Net (no registry).

`PRESETS[name]()` returns a fresh config; `build_model(PRESETS[name]())` builds the model.
Presets of the same architecture (1x vs ms-3x) differ only in their training recipe, which the
training engine reads from the name; the model configs are identical. The `*_tiny` presets are
the compact widths of the parity fixtures (random init, for demos and fast training checks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from knet.models.coco_classes import COCO_PANOPTIC_CLASSES, COCO_THING_CLASSES
from knet.models.knet_det import DetKNetConfig
from knet.models.semantic_config import SEMANTIC_PRESETS, SemanticKNetConfig


def knet_instance_r50() -> DetKNetConfig:
    """K-Net instance, ResNet-50 FPN, 100 kernels, 80 COCO classes (34.0 AP 1x, 37.8 ms-3x)."""
    return DetKNetConfig(task="instance", class_names=COCO_THING_CLASSES, num_thing_classes=80, num_stuff_classes=0)


def knet_instance_r101() -> DetKNetConfig:
    """K-Net instance, ResNet-101 FPN (39.2 AP ms-3x)."""
    return dataclasses.replace(knet_instance_r50(), depth=101)


def knet_panoptic_r50() -> DetKNetConfig:
    """K-Net panoptic, ResNet-50 FPN, 100 thing + 53 stuff kernels (44.3 PQ 1x, 47.1 ms-3x)."""
    return DetKNetConfig(task="panoptic", class_names=COCO_PANOPTIC_CLASSES, num_thing_classes=80, num_stuff_classes=53)


def knet_panoptic_r101() -> DetKNetConfig:
    """K-Net panoptic, ResNet-101 FPN (48.4 PQ ms-3x)."""
    return dataclasses.replace(knet_panoptic_r50(), depth=101)


def knet_panoptic_swin_l() -> DetKNetConfig:
    """K-Net panoptic, Swin-L (window 7, IN-22k) FPN (54.6 PQ val ms-3x)."""
    return dataclasses.replace(
        knet_panoptic_r50(),
        backbone="swin",
        swin_embed_dims=192,
        swin_depths=(2, 2, 18, 2),
        swin_num_heads=(6, 12, 24, 48),
        swin_window_size=7,
        swin_drop_path_rate=0.2,
    )


def _tiny(cfg: DetKNetConfig) -> DetKNetConfig:
    # the parity fixtures' widths: backbone 8 -> 32/64/128/256, C = 64, FFN 256, updator 64
    return dataclasses.replace(
        cfg, base_channels=8, fpn_channels=64, channels=64, pe_num_feats=32, feedforward_channels=256, updator_channels=64
    )


def knet_instance_tiny() -> DetKNetConfig:
    return _tiny(knet_instance_r50())


def knet_panoptic_tiny() -> DetKNetConfig:
    return _tiny(knet_panoptic_r50())


DET_PRESETS: dict[str, Callable[[], DetKNetConfig]] = {
    "knet_s3_r50_fpn_1x_coco": knet_instance_r50,
    "knet_s3_r50_fpn_ms-3x_coco": knet_instance_r50,
    "knet_s3_r101_fpn_ms-3x_coco": knet_instance_r101,
    "knet_s3_r50_fpn_1x_coco-panoptic": knet_panoptic_r50,
    "knet_s3_r50_fpn_ms-3x_coco-panoptic": knet_panoptic_r50,
    "knet_s3_r101_fpn_ms-3x_coco-panoptic": knet_panoptic_r101,
    "knet_s3_swin-l_fpn_ms-3x_16x2_coco-panoptic": knet_panoptic_swin_l,
    "knet_s3_r50_fpn_coco_instance_tiny": knet_instance_tiny,
    "knet_s3_r50_fpn_coco-panoptic_tiny": knet_panoptic_tiny,
}

PRESETS: dict[str, Callable[[], DetKNetConfig | SemanticKNetConfig]] = {**DET_PRESETS, **SEMANTIC_PRESETS}
