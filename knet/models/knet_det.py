"""Instance and panoptic K-Net (paper Sec. 3; spec 2): configuration, model, test pipeline.

    image -> backbone (ResNet / Swin) -> FPN (P2..P5)
          -> kernel generator: x_feats [B,C,h,w], K0 [B,N,C], M0 [B,N,h,w]     (stride 8)
          -> update stage s = 1..S: (x_feats, K_{s-1}, M_{s-1}) -> (cls_s, M_s, K_s)
          -> post-processing of (cls_S, M_S): instance top-k / panoptic merge

N = num_kernels thing kernels (+ num_stuff_classes stuff kernels for panoptic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from knet.errors import KnetError
from knet.models.backbones.resnet import resnet
from knet.models.backbones.swin import SwinTransformer
from knet.models.coco_classes import COCO_PANOPTIC_CLASSES
from knet.models.det_postprocess import instance_postprocess, panoptic_postprocess
from knet.models.fast_conv import set_winograd
from knet.models.fpn import FPN
from knet.models.host_memory import keep_freed_memory
from knet.models.kernel_generator import KernelGenerator
from knet.models.kernel_update_head import KernelUpdateHead
from knet.models.localization_fpn import LocalizationFPN
from knet.models.onednn_conv import set_onednn_1x1
from knet.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, prepare_batch
from knet.structures import InstanceResult, PanopticResult

DetResult = InstanceResult | PanopticResult


@dataclass
class DetKNetConfig:
    """Every size of an instance / panoptic K-Net (defaults: the published panoptic R-50)."""

    task: str = "panoptic"  # "instance" | "panoptic"
    class_names: tuple[str, ...] = COCO_PANOPTIC_CLASSES
    num_thing_classes: int = 80
    num_stuff_classes: int = 53  # 0 for instance
    # backbone
    backbone: str = "resnet"  # "resnet" | "swin"
    depth: int = 50  # ResNet depth (50 / 101)
    base_channels: int = 64  # ResNet stem / stage-1 width; stage outputs 4x, 8x, 16x, 32x
    frozen_stages: int = 1
    norm_eval: bool = True
    swin_embed_dims: int = 192
    swin_depths: tuple[int, ...] = (2, 2, 18, 2)
    swin_num_heads: tuple[int, ...] = (6, 12, 24, 48)
    swin_window_size: int = 7
    swin_drop_path_rate: float = 0.2
    # neck and kernel generator
    fpn_channels: int = 256
    channels: int = 256  # kernel / feature channels C of the mask pathway
    gn_groups: int = 32
    pe_num_feats: int = 128  # sine positional encoding, 2 * pe_num_feats = fpn_channels
    num_kernels: int = 100  # thing kernels
    # kernel update stages
    num_stages: int = 3
    num_heads: int = 8
    feedforward_channels: int = 2048
    updator_channels: int = 256
    num_cls_fcs: int = 1
    num_mask_fcs: int = 1
    # test pipeline and post-processing
    test_scale: tuple[int, int] = (1333, 800)
    size_divisor: int = 32
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD
    max_per_img: int = 100
    mask_thr: float = 0.5
    instance_score_thr: float = 0.3
    overlap_thr: float = 0.6
    # inference paths (eval mode, autograd off; training never changes). See extract_features.
    winograd_convs: bool = True  # NNPACK Winograd for the neck's and kernel generator's stride-1 3x3 convs (parity holds)
    fused_inference: bool = False  # predict(): BN-folded channels-last backbone: faster, NOT end-to-end fixture parity
    keep_freed_memory: bool = True  # CPU inference: glibc keeps freed memory (process-wide; knet.models.host_memory)

    @property
    def num_classes(self) -> int:
        return self.num_thing_classes + self.num_stuff_classes

    def backbone_channels(self) -> list[int]:
        if self.backbone == "resnet":
            return [self.base_channels * 4 * 2**s for s in range(4)]
        return [self.swin_embed_dims * 2**s for s in range(4)]

    def validate(self) -> None:
        if self.task not in ("instance", "panoptic"):
            raise KnetError(f"det K-Net task must be 'instance' or 'panoptic', got {self.task!r}")
        if self.task == "instance" and self.num_stuff_classes != 0:
            raise KnetError(f"instance K-Net has no stuff classes, got num_stuff_classes={self.num_stuff_classes}")
        if self.task == "panoptic" and self.num_stuff_classes <= 0:
            raise KnetError("panoptic K-Net needs num_stuff_classes > 0")
        if len(self.class_names) != self.num_classes:
            raise KnetError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if self.backbone not in ("resnet", "swin"):
            raise KnetError(f"backbone must be 'resnet' or 'swin', got {self.backbone!r}")
        if 2 * self.pe_num_feats != self.fpn_channels:
            raise KnetError(f"2 * pe_num_feats ({2 * self.pe_num_feats}) must equal fpn_channels ({self.fpn_channels})")
        for name in ("fpn_channels", "channels"):
            if getattr(self, name) % self.gn_groups != 0:
                raise KnetError(f"{name} ({getattr(self, name)}) must be a multiple of gn_groups ({self.gn_groups})")
        if self.channels % self.num_heads != 0:
            raise KnetError(f"channels ({self.channels}) must be a multiple of num_heads ({self.num_heads})")
        if self.channels % self.updator_channels != 0:
            raise KnetError(f"channels ({self.channels}) must be a multiple of updator_channels ({self.updator_channels})")

    def to_dict(self) -> dict:
        """JSON-serialisable dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DetKNetConfig":
        """Inverse of `to_dict`; unknown keys raise KnetError (a file from another knet version)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise KnetError(f"unknown det K-Net config keys: {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class DetKNet(nn.Module):
    """Instance / panoptic K-Net. `forward_stages` is the network, `predict` the whole pipeline."""

    def __init__(
        self,
        *,
        config: DetKNetConfig,
        backbone: nn.Module,
        fpn: FPN,
        kernel_generator: KernelGenerator,
        update_stages: Sequence[KernelUpdateHead],
    ) -> None:
        super().__init__()
        self.config = config
        self.task = config.task
        self.class_names = tuple(config.class_names)
        self.backbone = backbone
        self.fpn = fpn
        self.kernel_generator = kernel_generator
        self.update_stages = nn.ModuleList(update_stages)

    # ---- network -------------------------------------------------------------------------------
    def extract_features(self, x: torch.Tensor, *, fused: bool = False) -> list[torch.Tensor]:
        """[B, 3, H, W] -> FPN levels P2..P5.

        Inference paths (eval mode with autograd off; training always runs the plain network):

        * default: the backbone runs its direct convs exactly as the original code (bit-level
          agreement with the fixtures); with config.winograd_convs the FPN output convs (and the
          kernel generator's localisation convs) run the NNPACK Winograd transform
          (knet.models.fast_conv): ~2e-5 relative rounding, end-to-end fixture parity holds.
        * `fused=True` (ResNet only): an inference copy of the backbone with every BatchNorm
          folded into its conv, in channels-last layout: ~0.8 s faster at 800x1216, but the
          backbone rounding changes (C5 within ~0.5x the parity tolerance on the fixtures) and
          the hard mask thresholds of the kernel updates amplify that: the end-to-end fixture
          comparison FAILS (module by module it holds), so it is opt-in
          (config.fused_inference). Winograd is not used in the backbone on either path: its
          error compounds over the 16 blocks past the module-by-module tolerance.

        Both paths on CPU run the 1x1 convs on oneDNN also with one thread (knet.models.onednn_conv:
        PyTorch's own kernel with 2+ threads, same values), and with config.keep_freed_memory the
        first CPU inference call sets glibc to keep freed memory (knet.models.host_memory: the
        stride-4 activations are not page-faulted in again on every image; process-wide).
        """
        if self.config.keep_freed_memory and not self.training and not torch.is_grad_enabled() and x.device.type == "cpu":
            keep_freed_memory()  # once per process: large activations reuse freed memory, no page faults
        if fused and not self.training and self.config.backbone == "resnet":
            return self.fpn(self._inference_backbone()(x.contiguous(memory_format=torch.channels_last)))
        return self.fpn(self.backbone(x))

    def _inference_backbone(self) -> nn.Module:
        """The folded channels-last copy of the backbone, rebuilt whenever a backbone tensor
        changed (load_state_dict, optimiser step, .to(device)): tracked by storage pointers and
        version counters. Not a submodule, so it never appears in the state dict."""
        tensors = list(self.backbone.state_dict().values())
        key = tuple((t.data_ptr(), 0 if t.is_inference() else t._version) for t in tensors)
        cached = self.__dict__.get("_fused_backbone")
        if cached is None or cached[0] != key:
            fused = self.backbone.folded_copy().to(memory_format=torch.channels_last)
            self.__dict__["_fused_backbone"] = (key, fused)
            cached = self.__dict__["_fused_backbone"]
        return cached[1]

    def forward_heads(self, pyramid: list[torch.Tensor]) -> list[dict]:
        """FPN levels -> per-stage outputs (see forward_stages)."""
        pyramid = [p.contiguous() for p in pyramid]  # NCHW for the kernel ops
        init = self.kernel_generator(pyramid)
        feats, kernels, masks = init.feats, init.kernels, init.mask_logits
        outputs = [dict(mask_logits=masks, cls_logits=None, kernels=kernels, seg_logits=init.seg_logits, feats=feats)]
        for stage in self.update_stages:
            cls_logits, masks, kernels = stage(feats, kernels, masks)
            outputs.append(dict(mask_logits=masks, cls_logits=cls_logits, kernels=kernels))
        return outputs

    def forward_stages(self, x: torch.Tensor, *, fused: bool = False) -> list[dict]:
        """x [B,3,H,W] normalised, padded -> [stage 0, stage 1, ..., stage S].

        Each entry: `mask_logits` [B,N,h,w] (stride 8), `cls_logits` [B,N,K] (None at stage 0),
        `kernels` [B,N,C]. Stage 0 also has `seg_logits` [B,K,h,w] (dense classifier) and `feats`
        (x_feats [B,C,h,w]); its first `num_kernels` masks are the thing-only initial masks.
        `fused`: see extract_features (eval mode only; the parity path is the default).
        """
        return self.forward_heads(self.extract_features(x, fused=fused))

    def forward(self, x: torch.Tensor) -> list[dict]:
        return self.forward_stages(x)

    # ---- post-processing -----------------------------------------------------------------------
    def postprocess(
        self,
        stage_output: dict,
        *,
        img_shape: Sequence[int],
        ori_shape: Sequence[int],
        batch_shape: Sequence[int],
        cls_logits: torch.Tensor | None = None,
    ) -> DetResult:
        """One image's stage output (tensors [N,...] or [1,N,...]) -> result at ori_shape.

        `cls_logits` overrides the stage's own class logits (stage 0 has none).
        """
        masks = stage_output["mask_logits"]
        cls = cls_logits if cls_logits is not None else stage_output["cls_logits"]
        if cls is None:
            raise KnetError("this stage has no class logits; pass cls_logits= (e.g. the last stage's)")
        if masks.dim() == 4:
            if masks.shape[0] != 1:
                raise KnetError(f"postprocess takes one image, got a batch of {masks.shape[0]}")
            masks = masks[0]
        if cls.dim() == 3:
            cls = cls[0]
        cfg = self.config
        shapes = dict(batch_shape=tuple(batch_shape[:2]), img_shape=tuple(img_shape[:2]), ori_shape=tuple(ori_shape[:2]))
        if self.task == "instance":
            return instance_postprocess(cls, masks, max_per_img=cfg.max_per_img, mask_thr=cfg.mask_thr, **shapes)
        return panoptic_postprocess(
            cls,
            masks,
            num_kernels=cfg.num_kernels,
            num_thing_classes=cfg.num_thing_classes,
            instance_score_thr=cfg.instance_score_thr,
            overlap_thr=cfg.overlap_thr,
            **shapes,
        )

    # ---- whole pipeline ------------------------------------------------------------------------
    def prepare(self, images: Sequence[np.ndarray]):
        """Images (HxWx3 uint8 RGB) -> (normalised padded batch, metas) with the test pipeline."""
        cfg = self.config
        device = next(self.parameters()).device
        return prepare_batch(
            images, scale=cfg.test_scale, size_divisor=cfg.size_divisor, mean=cfg.pixel_mean, std=cfg.pixel_std, device=device
        )

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray], *, all_stages: bool = False) -> list:
        """Test pipeline: resize (keep ratio), normalise, pad, run, post-process.

        Returns one result per image; with `all_stages=True` one list per image with a result
        per stage 0..S, each from that stage's own masks and the LAST stage's class scores (the
        supplementary's per-stage analysis; stage 0 has no classifier of its own).
        """
        if len(images) == 0:
            return []
        x, metas = self.prepare(images)
        outputs = self.forward_stages(x, fused=self.config.fused_inference)
        final_cls = outputs[-1]["cls_logits"]
        results = []
        for i, meta in enumerate(metas):
            shapes = dict(img_shape=meta.img_shape, ori_shape=meta.ori_shape, batch_shape=meta.batch_shape)
            if all_stages:
                per_stage = [
                    self.postprocess(
                        {"mask_logits": out["mask_logits"][i]}, cls_logits=final_cls[i], **shapes
                    )
                    for out in outputs
                ]
                results.append(per_stage)
            else:
                results.append(
                    self.postprocess({"mask_logits": outputs[-1]["mask_logits"][i], "cls_logits": final_cls[i]}, **shapes)
                )
        return results


def build_det_backbone(cfg: DetKNetConfig) -> nn.Module:
    if cfg.backbone == "resnet":
        return resnet(depth=cfg.depth, base_channels=cfg.base_channels, frozen_stages=cfg.frozen_stages, norm_eval=cfg.norm_eval)
    return SwinTransformer(
        embed_channels=cfg.swin_embed_dims,
        depths=tuple(cfg.swin_depths),
        num_heads=tuple(cfg.swin_num_heads),
        window_size=cfg.swin_window_size,
        drop_path_rate=cfg.swin_drop_path_rate,
    )


def build_det_model(cfg: DetKNetConfig) -> DetKNet:
    """Build an instance / panoptic K-Net from its configuration (weights initialised per spec 2.8)."""
    cfg.validate()
    fpn = FPN(in_channels=cfg.backbone_channels(), out_channels=cfg.fpn_channels)
    fpn.init_weights()
    localization_fpn = LocalizationFPN(
        in_channels=cfg.fpn_channels,
        feat_channels=cfg.channels,
        out_channels=cfg.channels,
        gn_groups=cfg.gn_groups,
        pe_num_feats=cfg.pe_num_feats,
    )
    generator = KernelGenerator(
        localization_fpn=localization_fpn,
        channels=cfg.channels,
        num_kernels=cfg.num_kernels,
        num_thing_classes=cfg.num_thing_classes,
        num_stuff_classes=cfg.num_stuff_classes,
        gn_groups=cfg.gn_groups,
    )
    stages = [
        KernelUpdateHead(
            channels=cfg.channels,
            num_classes=cfg.num_classes,
            num_heads=cfg.num_heads,
            feedforward_channels=cfg.feedforward_channels,
            updator_channels=cfg.updator_channels,
            num_cls_fcs=cfg.num_cls_fcs,
            num_mask_fcs=cfg.num_mask_fcs,
            gather="binary",
        )
        for _ in range(cfg.num_stages)
    ]
    # the Winograd inference path of the neck and kernel generator convs (the backbone's stays off)
    set_winograd(fpn, enabled=cfg.winograd_convs)
    set_winograd(generator, enabled=cfg.winograd_convs)
    # 1x1 convs on one thread: oneDNN, the kernel PyTorch itself uses on 2+ threads (same values)
    backbone = build_det_backbone(cfg)
    for part in (backbone, fpn, generator):
        set_onednn_1x1(part, enabled=True)
    return DetKNet(config=cfg, backbone=backbone, fpn=fpn, kernel_generator=generator, update_stages=stages)
