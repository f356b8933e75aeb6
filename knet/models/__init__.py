"""knet.models: K-Net for semantic, instance and panoptic segmentation.

    cfg = PRESETS["knet_s3_r50_fpn_1x_coco-panoptic"]()      # a config dataclass
    model = build_model(cfg)                                  # random init (spec 2.8)
    model = load_model("model.safetensors")                   # or an official .pth
    results = model.predict([image_rgb_uint8])               # PanopticResult / ...

Every model has `task`, `config`, `class_names`, `forward_stages(x)`, `postprocess(...)` and
`predict(images, all_stages=False)`.
"""

from __future__ import annotations

from torch import nn

from knet.models.checkpoint import build_from_config, convert_checkpoint, load_model, save_model
from knet.models.knet_det import DetKNet, DetKNetConfig
from knet.models.knet_semantic import SemanticKNet
from knet.models.presets import DET_PRESETS, PRESETS
from knet.models.semantic_config import SEMANTIC_PRESETS, SemanticKNetConfig


def build_model(cfg: DetKNetConfig | SemanticKNetConfig) -> nn.Module:
    """Build the model a config describes (dispatch on the config type)."""
    return build_from_config(cfg)


__all__ = [
    "DET_PRESETS",
    "PRESETS",
    "SEMANTIC_PRESETS",
    "DetKNet",
    "DetKNetConfig",
    "SemanticKNet",
    "SemanticKNetConfig",
    "build_model",
    "convert_checkpoint",
    "load_model",
    "save_model",
]
