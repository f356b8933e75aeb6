"""Semantic K-Net (paper Sec. 3.3; spec 3): one kernel per class, refined by kernel update heads.

    C2..C5        = backbone(x)                                     ResNetV1c (D8) or Swin
    F             = generate_head(C2..C5)                           FCN / PSP / ASPP / UPerNet
    M_0           = conv_seg(F)          K_0 = conv_seg.weight      stage 0 (with the conv bias)
    M_s, K_s      = update_stage_s(F, K_{s-1}, M_{s-1})             s = 1..3, softmax gather
    label         = argmax_k resize(M_3, image)                     no separate classifier

Inference follows MMSegmentation's `whole` mode: keep-ratio resize to `test_scale`, logits resized
bilinearly (align_corners=False) to the network input and then to the original image, argmax.
With `tta=True`, the multi-scale + flip test of the MMSegmentation release that published K-Net's
"ms+flip" numbers (0.x `MultiScaleFlipAug`): scales `test_scale * r` for r in `tta_ratios`,
each unflipped and flipped, softmax at the original size, averaged, argmax.

Module names: `backbone`, `kernel_generator` (`.head` + `.conv_seg`), `kernel_update_stages.{i}`,
`aux_head` (training-only auxiliary FCN on C4). `semantic_state_dict_from_official` maps the
MMSegmentation names onto these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from knet.errors import KnetError
from knet.models.backbones import ResNet, SwinTransformer
from knet.models.generate_heads import (
    ASPPHead,
    AuxiliaryFCNHead,
    FCNHead,
    GenerateHead,
    PSPHead,
    SemanticKernelGenerator,
    UPerHead,
)
from knet.models.kernel_update_head import KernelUpdateHead
from knet.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, prepare_batch
from knet.models.semantic_config import ADE20K_CLASSES, SEMANTIC_PRESETS, SemanticKNetConfig
from knet.models.semantic_convert import (
    semantic_config_from_state_dict,
    semantic_state_dict_from_official,
)
from knet.structures import SemanticResult

__all__ = [
    "ADE20K_CLASSES",
    "SEMANTIC_PRESETS",
    "SemanticKNet",
    "SemanticKNetConfig",
    "build_semantic_knet",
    "semantic_config_from_state_dict",
    "semantic_state_dict_from_official",
]


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear, align_corners=False; skipped when the size already matches (an exact identity).

    The class maps are resized channels-last: on CPU the NHWC kernel and the following argmax
    over classes are about twice as fast as NCHW for 150 classes (same weights; values agree to
    float32 rounding).
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    x = x.contiguous(memory_format=torch.channels_last)
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class SemanticKNet(nn.Module):
    """Backbone + kernel generator + kernel update stages (+ auxiliary head for training)."""

    task = "semantic"

    def __init__(
        self,
        *,
        config: SemanticKNetConfig,
        backbone: nn.Module,
        kernel_generator: SemanticKernelGenerator,
        kernel_update_stages: Sequence[KernelUpdateHead],
        aux_head: AuxiliaryFCNHead | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.class_names: tuple[str, ...] = tuple(config.class_names)
        self.backbone = backbone
        self.kernel_generator = kernel_generator
        self.kernel_update_stages = nn.ModuleList(kernel_update_stages)
        self.aux_head = aux_head

    # ------------------------------------------------------------------ network
    def forward_stages(self, x: torch.Tensor) -> list[dict[str, Any]]:
        """x: normalised [B, 3, H, W] -> one dict per stage (0 = generate head, then the updates).

        Each dict: `mask_logits` [B, K, h, w] at the head's resolution (stride 4 or 8),
        `cls_logits` None, `kernels` [B, K, C]; stage 0 also has `aux_logits` [B, K, H/16, W/16]
        (or /8 for D8) when the model has an aux head and is training.
        """
        feats = self.backbone(x)  # [C2, C3, C4, C5]
        generated, mask_logits, kernels = self.kernel_generator(feats)  # F, M_0, K_0
        stage0: dict[str, Any] = {"mask_logits": mask_logits, "cls_logits": None, "kernels": kernels}
        if self.aux_head is not None and self.training:
            stage0["aux_logits"] = self.aux_head(feats)
        outputs = [stage0]
        for stage in self.kernel_update_stages:
            _, mask_logits, kernels = stage(generated, kernels, mask_logits)
            outputs.append({"mask_logits": mask_logits, "cls_logits": None, "kernels": kernels})
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Final-stage logits [B, K, h, w] (head resolution)."""
        return self.forward_stages(x)[-1]["mask_logits"]

    # ------------------------------------------------------------------ post-processing
    def postprocess(
        self,
        stage_output: dict[str, Any] | torch.Tensor,
        *,
        ori_shape: Sequence[int],
        input_shape: Sequence[int] | None = None,
    ) -> SemanticResult:
        """One image's stage output (mask_logits [1, K, h, w] or [K, h, w]) -> label map at ori_shape.

        As MMSegmentation `whole` mode: bilinear (align_corners=False) to the network input size
        (`input_shape`, skipped when None), then to `ori_shape`, argmax over classes.
        """
        logits = stage_output["mask_logits"] if isinstance(stage_output, dict) else stage_output
        if logits.dim() == 3:
            logits = logits[None]
        if logits.dim() != 4 or logits.shape[0] != 1:
            raise ValueError(f"postprocess takes one image's logits, got shape {tuple(logits.shape)}")
        logits = logits.float()
        if input_shape is not None:
            logits = _resize(logits, input_shape[:2])
        logits = _resize(logits, ori_shape[:2])  # [1, K, H, W]
        label = logits[0].argmax(dim=0)
        return SemanticResult(label=label.cpu().numpy().astype(np.int64))

    # ------------------------------------------------------------------ images in, results out
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _prepare(self, image: np.ndarray, scale: Sequence[int] | None) -> torch.Tensor:
        batch, _ = prepare_batch(
            [image],
            scale=scale,
            size_divisor=1,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            device=self._device(),
        )
        return batch  # [1, 3, h, w]

    @torch.no_grad()
    def predict(
        self, images: Sequence[np.ndarray], *, all_stages: bool = False, tta: bool = False
    ) -> list:
        """HxWx3 uint8 RGB images -> one SemanticResult per image (all_stages: a list per image,
        stage 0 first). Images are processed one at a time (whole-image inference)."""
        if tta and all_stages:
            raise KnetError("test-time augmentation gives one result per image; drop all_stages")
        results: list = []
        for i, image in enumerate(images):
            if not isinstance(image, np.ndarray) or image.ndim != 3:
                shape = getattr(image, "shape", None)
                raise KnetError(f"image {i} must be an HxWx3 uint8 RGB array, got {type(image).__name__} {shape}")
            ori_shape = tuple(image.shape[:2])
            if tta:
                results.append(self._predict_tta(image))
                continue
            x = self._prepare(image, self.config.test_scale)
            stages = self.forward_stages(x)
            per_stage = [
                self.postprocess(s, ori_shape=ori_shape, input_shape=x.shape[-2:]) for s in stages
            ]
            results.append(per_stage if all_stages else per_stage[-1])
        return results

    def _predict_tta(self, image: np.ndarray) -> SemanticResult:
        """Multi-scale + flip: mean of softmax scores at the original size, then argmax."""
        h, w = image.shape[:2]
        long_max, short_max = self.config.test_scale
        scores = None
        count = 0
        for ratio in self.config.tta_ratios:
            # MultiScaleFlipAug: scale (int(long * r), int(short * r)), then keep-ratio resize
            scale = (int(long_max * ratio), int(short_max * ratio))
            x = self._prepare(image, scale)
            for flip in (False, True):
                inp = x.flip(-1) if flip else x
                logits = self.forward_stages(inp)[-1]["mask_logits"]
                logits = _resize(_resize(logits, inp.shape[-2:]), (h, w))
                prob = logits.softmax(dim=1)
                if flip:
                    prob = prob.flip(-1)
                scores = prob if scores is None else scores + prob
                count += 1
        label = (scores / count)[0].argmax(dim=0)  # type: ignore[index]
        return SemanticResult(label=label.cpu().numpy().astype(np.int64))


# ---------------------------------------------------------------------- building
def _build_backbone(cfg: SemanticKNetConfig) -> nn.Module:
    if cfg.backbone == "resnet_v1c":
        dil = cfg.dilated
        return ResNet(
            depth=cfg.depth,
            stem_channels=cfg.stem_channels,
            base_channels=cfg.base_channels,
            deep_stem=True,
            strides=(1, 2, 1, 1) if dil else (1, 2, 2, 2),
            dilations=(1, 1, 2, 4) if dil else (1, 1, 1, 1),
            contract_dilation=True,
            frozen_stages=cfg.frozen_stages,
            norm_eval=cfg.norm_eval,
        )
    if cfg.backbone == "swin":
        return SwinTransformer(
            embed_channels=cfg.swin_embed_channels,
            depths=cfg.swin_depths,
            num_heads=cfg.swin_num_heads,
            window_size=cfg.swin_window_size,
            mlp_ratio=cfg.swin_mlp_ratio,
            drop_path_rate=cfg.drop_path_rate,
            patch_size=cfg.swin_patch_size,
        )
    raise KnetError(f"unknown semantic backbone '{cfg.backbone}' (choose resnet_v1c or swin)")


def _build_generate_head(cfg: SemanticKNetConfig) -> GenerateHead:
    in_channels = cfg.backbone_out_channels
    if cfg.head == "fcn":
        return FCNHead(
            in_channels=in_channels[3],
            channels=cfg.channels,
            num_convs=cfg.fcn_num_convs,
            concat_input=cfg.fcn_concat_input,
        )
    if cfg.head == "psp":
        return PSPHead(in_channels=in_channels[3], channels=cfg.channels, pool_scales=cfg.pool_scales)
    if cfg.head == "aspp":
        return ASPPHead(in_channels=in_channels[3], channels=cfg.channels, dilations=cfg.aspp_dilations)
    if cfg.head == "upernet":
        return UPerHead(in_channels=in_channels, channels=cfg.channels, pool_scales=cfg.pool_scales)
    raise KnetError(f"unknown generate head '{cfg.head}' (choose fcn, psp, aspp or upernet)")


def build_semantic_knet(cfg: SemanticKNetConfig) -> SemanticKNet:
    """Build a randomly initialised semantic K-Net from its config."""
    generator = SemanticKernelGenerator(
        head=_build_generate_head(cfg), num_classes=cfg.num_classes, dropout=cfg.head_dropout
    )
    stages = [
        KernelUpdateHead(
            channels=cfg.channels,
            num_classes=None,
            num_heads=cfg.num_heads,
            feedforward_channels=cfg.feedforward_channels,
            updator_channels=cfg.updator_channels,
            num_mask_fcs=cfg.num_mask_fcs,
            gather="softmax",
        )
        for _ in range(cfg.num_stages)
    ]
    aux = None
    if cfg.aux_head:
        aux = AuxiliaryFCNHead(
            in_channels=cfg.backbone_out_channels[2],
            channels=cfg.aux_channels,
            num_classes=cfg.num_classes,
            num_convs=cfg.aux_num_convs,
        )
    return SemanticKNet(
        config=cfg,
        backbone=_build_backbone(cfg),
        kernel_generator=generator,
        kernel_update_stages=stages,
        aux_head=aux,
    )
