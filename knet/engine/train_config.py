"""Training configuration: dataclasses + plain preset builders (spec 5), overridable by key=value.

    cfg = TRAIN_PRESETS["coco-panoptic-1x"]()
    cfg = apply_overrides(cfg, ["optim.lr=2e-4", "max_iters=100", "model.channels=128"])

The model config (`model`) is the model family's own dataclass; its class names and class counts
are filled in from the training dataset's own files when training starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from knet.errors import KnetError
from knet.models import DetKNetConfig, SemanticKNetConfig
from knet.models.presets import knet_instance_r50, knet_panoptic_r50
from knet.models.semantic_config import knet_upernet_r50


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    backbone_lr_mult: float = 0.25
    grad_clip: float = 1.0  # max L2 norm; 0 disables
    warmup_iters: int = 1000
    warmup_ratio: float = 1e-3  # linear warm-up from lr * ratio
    steps: tuple[float, ...] = (8, 11)  # lr x gamma at these points (unit: schedule_unit)
    gamma: float = 0.1


@dataclass
class DataConfig:
    data: str = "coco"  # ade20k | coco | coco-panoptic | PATH
    root: str = ""  # --data-root ('' = $KNET_DATA or ./data)
    batch_size: int = 2  # per process
    workers: int = 2  # DataLoader worker processes per process (0 = in the main process)
    # COCO recipes: keep-ratio resize to (long, short); multiscale = shorter side range
    scale: tuple[int, int] = (1333, 800)
    multiscale: tuple[int, ...] = ()  # e.g. (640, 800) for ms-3x
    pad_divisor: int = 32
    # semantic recipe
    ratio_range: tuple[float, float] = (0.5, 2.0)
    crop: tuple[int, int] = (512, 512)
    cat_max_ratio: float = 0.75
    photometric: bool = True
    flip: bool = True
    val_scale: tuple[int, int] = (1333, 800)
    max_val_images: int = 0  # 0 = the whole val split


@dataclass
class TrainConfig:
    task: Literal["semantic", "instance", "panoptic"] = "panoptic"
    model: Any = None  # DetKNetConfig | SemanticKNetConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule_unit: Literal["iter", "epoch"] = "epoch"
    max_length: float = 12  # iterations or epochs (schedule_unit)
    grad_accum: int = 1  # micro-batches per optimiser step
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"  # auto: bf16 on CUDA when supported, fp32 on CPU
    sync_bn: bool = False
    seed: int = 0
    log_interval: int = 20
    val_interval: float = 1  # in schedule_unit (0 = only at the end)
    ckpt_interval: float = 1  # in schedule_unit
    keep_last: int = 3
    device: str = "auto"
    threads: int = 0  # torch CPU threads (0 = torch default)

    def validate(self) -> None:
        if self.model is None:
            raise KnetError("train config has no model")
        if self.task == "semantic" and not isinstance(self.model, SemanticKNetConfig):
            raise KnetError("semantic training needs a semantic model config")
        if self.task != "semantic" and not isinstance(self.model, DetKNetConfig):
            raise KnetError(f"{self.task} training needs an instance/panoptic model config")
        if self.data.batch_size < 1 or self.grad_accum < 1:
            raise KnetError("data.batch_size and grad_accum must be >= 1")
        if self.max_length <= 0:
            raise KnetError("max_length must be > 0")


# ---- paper recipes ----------------------------------------------------------------------------------
def _coco(task: str, multiscale: bool) -> TrainConfig:
    model = knet_panoptic_r50() if task == "panoptic" else knet_instance_r50()
    return TrainConfig(
        task=task,  # type: ignore[arg-type]
        model=model,
        optim=OptimConfig(lr=1e-4, weight_decay=0.05, backbone_lr_mult=0.25, steps=(27, 33) if multiscale else (8, 11)),
        data=DataConfig(data="coco-panoptic" if task == "panoptic" else "coco", multiscale=(640, 800) if multiscale else ()),
        schedule_unit="epoch",
        max_length=36 if multiscale else 12,
    )


def ade20k_upernet_r50() -> TrainConfig:
    return TrainConfig(
        task="semantic",
        model=knet_upernet_r50(),
        optim=OptimConfig(lr=1e-4, weight_decay=5e-4, backbone_lr_mult=1.0, steps=(60000, 72000)),
        data=DataConfig(data="ade20k", scale=(2048, 512), val_scale=(2048, 512), crop=(512, 512)),
        schedule_unit="iter",
        max_length=80000,
        val_interval=8000,
        ckpt_interval=8000,
        log_interval=50,
    )


# ---- tiny models for synthetic data (CPU demo / CI) ----------------------------------------------------
def _tiny_det(task: str) -> DetKNetConfig:
    base = knet_panoptic_r50() if task == "panoptic" else knet_instance_r50()
    return dataclasses.replace(
        base,
        base_channels=8,
        frozen_stages=-1,
        norm_eval=False,  # trained from scratch: BN learns
        fpn_channels=64,
        channels=64,
        gn_groups=16,
        pe_num_feats=32,
        num_kernels=24,
        num_heads=4,
        feedforward_channels=128,
        updator_channels=64,
        test_scale=(128, 128),
        max_per_img=24,
    )


def _synth_det(task: str) -> TrainConfig:
    iters = 1400 if task == "panoptic" else 1000
    return TrainConfig(
        task=task,  # type: ignore[arg-type]
        model=_tiny_det(task),
        optim=OptimConfig(lr=1e-3, weight_decay=0.05, backbone_lr_mult=1.0, warmup_iters=100, steps=(1100 if task == "panoptic" else 800,)),
        data=DataConfig(data="", batch_size=8, workers=0, scale=(128, 128), val_scale=(128, 128), max_val_images=0),
        schedule_unit="iter",
        max_length=iters,
        val_interval=iters // 2,
        ckpt_interval=200,
        log_interval=10,
    )


def synth_semantic_tiny() -> TrainConfig:
    model = SemanticKNetConfig(
        backbone="resnet_v1c",
        depth=50,
        stem_channels=16,
        base_channels=8,
        head="upernet",
        channels=64,
        num_heads=4,
        feedforward_channels=128,
        updator_channels=64,
        aux_channels=32,
        num_classes=6,
        class_names=("sky", "grass", "wall", "circle", "rectangle", "triangle"),
        crop_size=(128, 128),
        test_scale=(128, 128),
    )
    return TrainConfig(
        task="semantic",
        model=model,
        optim=OptimConfig(lr=1e-3, weight_decay=5e-4, backbone_lr_mult=1.0, warmup_iters=100, steps=(450,)),
        data=DataConfig(data="", batch_size=8, workers=0, scale=(128, 128), val_scale=(128, 128), ratio_range=(0.75, 1.5),
                        crop=(128, 128), photometric=True),  # fmt: skip
        schedule_unit="iter",
        max_length=600,
        val_interval=300,
        ckpt_interval=200,
        log_interval=10,
    )


TRAIN_PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "coco-instance-1x": lambda: _coco("instance", False),
    "coco-instance-ms3x": lambda: _coco("instance", True),
    "coco-panoptic-1x": lambda: _coco("panoptic", False),
    "coco-panoptic-ms3x": lambda: _coco("panoptic", True),
    "ade20k-upernet-r50": ade20k_upernet_r50,
    "synth-panoptic-tiny": lambda: _synth_det("panoptic"),
    "synth-instance-tiny": lambda: _synth_det("instance"),
    "synth-semantic-tiny": synth_semantic_tiny,
}
DEFAULT_PRESET = {"semantic": "ade20k-upernet-r50", "instance": "coco-instance-1x", "panoptic": "coco-panoptic-1x"}


def get_preset(name: str, task: str) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        import difflib

        hint = difflib.get_close_matches(name, list(TRAIN_PRESETS), n=1)
        raise KnetError(f"unknown train preset '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "") + f"; choose from {', '.join(TRAIN_PRESETS)}")
    cfg = TRAIN_PRESETS[name]()
    if cfg.task != task:
        raise KnetError(f"preset '{name}' trains {cfg.task}, not {task}")
    return cfg
