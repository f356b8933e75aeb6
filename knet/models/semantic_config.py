"""Configuration and published presets of semantic K-Net (ADE20K, MMSegmentation release).

Every size is a field, so the compact parity models and the published ones come from the same
code. Presets are plain builder functions in one dict (spec 6.2 lists the released checkpoints):

| preset | backbone | generate head | test scale |
|---|---|---|---|
| knet_s3_fcn_r50-d8_ade20k | ResNetV1c-50 D8 | FCN (2 convs, concat input) | 2048x512 |
| knet_s3_pspnet_r50-d8_ade20k | ResNetV1c-50 D8 | PSP (1,2,3,6) | 2048x512 |
| knet_s3_deeplabv3_r50-d8_ade20k | ResNetV1c-50 D8 | ASPP (1,12,24,36) | 2048x512 |
| knet_s3_upernet_r50_ade20k | ResNetV1c-50 (not dilated) | UPerNet | 2048x512 |
| knet_s3_upernet_swin-t_ade20k | Swin-T w7 | UPerNet | 2048x512 |
| knet_s3_upernet_swin-l_ade20k | Swin-L w7 | UPerNet | 2048x512 |
| knet_s3_upernet_swin-l_ade20k_640 | Swin-L w7 | UPerNet | 2048x640 |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing",
    "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink",
    "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver", "airplane", "dirt track", "apparel", "pole", "land", "bannister",
    "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
)


@dataclass
class SemanticKNetConfig:
    """Semantic K-Net: backbone -> generate head (stage 0) -> `num_stages` kernel update heads."""

    # backbone
    backbone: Literal["resnet_v1c", "swin"] = "resnet_v1c"
    depth: int = 50  # ResNet depth (50 or 101)
    stem_channels: int = 64  # ResNetV1c deep stem width (convs stem/2, stem/2, stem)
    base_channels: int = 64  # ResNet stage-1 planes (stage outputs 4x, 8x, 16x, 32x this)
    dilated: bool = False  # D8: strides (1,2,1,1), dilations (1,1,2,4), contract_dilation
    frozen_stages: int = -1
    norm_eval: bool = False
    swin_embed_channels: int = 96
    swin_depths: tuple[int, ...] = (2, 2, 6, 2)
    swin_num_heads: tuple[int, ...] = (3, 6, 12, 24)
    swin_window_size: int = 7
    swin_mlp_ratio: float = 4.0
    swin_patch_size: int = 4
    drop_path_rate: float = 0.3  # Swin stochastic depth (training only)
    # kernel generate head
    head: Literal["fcn", "psp", "aspp", "upernet"] = "upernet"
    channels: int = 512  # C: generate-head width = kernel width
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)  # PSP / UPerNet
    aspp_dilations: tuple[int, ...] = (1, 12, 24, 36)
    fcn_num_convs: int = 2
    fcn_concat_input: bool = True
    head_dropout: float = 0.1  # Dropout2d before conv_seg (training only)
    num_classes: int = 150
    class_names: tuple[str, ...] = ADE20K_CLASSES
    # kernel update heads
    num_stages: int = 3
    num_heads: int = 8
    feedforward_channels: int = 2048
    updator_channels: int = 256  # each C-d kernel goes through the updator as C/256 chunks
    num_mask_fcs: int = 1
    # auxiliary FCN head on C4 (training only; its weights are in the released checkpoints)
    aux_head: bool = True
    aux_channels: int = 256
    aux_num_convs: int = 1
    aux_loss_weight: float = 0.4
    ignore_index: int = 255
    # data
    crop_size: tuple[int, int] = (512, 512)  # training crop (H, W)
    test_scale: tuple[int, int] = (2048, 512)  # keep-ratio test resize (long max, short max)
    tta_ratios: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        if len(self.class_names) != self.num_classes:
            if self.class_names != ADE20K_CLASSES:
                from knet.errors import KnetError

                raise KnetError(
                    f"{len(self.class_names)} class names given for num_classes={self.num_classes}"
                )
            # the default ADE20K names with another class count: generic names
            self.class_names = tuple(f"class_{i}" for i in range(self.num_classes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SemanticKNetConfig":
        """Inverse of `to_dict`; unknown keys raise KnetError (a file from another knet version)."""
        from knet.errors import KnetError

        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise KnetError(f"unknown semantic K-Net config keys: {', '.join(unknown)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    @property
    def backbone_out_channels(self) -> tuple[int, int, int, int]:
        if self.backbone == "swin":
            return tuple(self.swin_embed_channels * 2**s for s in range(4))  # type: ignore[return-value]
        return tuple(self.base_channels * 4 * 2**s for s in range(4))  # type: ignore[return-value]


def _r50_d8(head: str) -> SemanticKNetConfig:
    return SemanticKNetConfig(backbone="resnet_v1c", depth=50, dilated=True, head=head)  # type: ignore[arg-type]


def knet_fcn_r50_d8() -> SemanticKNetConfig:
    return _r50_d8("fcn")


def knet_pspnet_r50_d8() -> SemanticKNetConfig:
    return _r50_d8("psp")


def knet_deeplabv3_r50_d8() -> SemanticKNetConfig:
    return _r50_d8("aspp")


def knet_upernet_r50() -> SemanticKNetConfig:
    # "r50-d8" in the released name, but the UPerNet model is not dilated (spec 1)
    return SemanticKNetConfig(backbone="resnet_v1c", depth=50, dilated=False, head="upernet")


def knet_upernet_swin_t() -> SemanticKNetConfig:
    return SemanticKNetConfig(
        backbone="swin",
        swin_embed_channels=96,
        swin_depths=(2, 2, 6, 2),
        swin_num_heads=(3, 6, 12, 24),
        drop_path_rate=0.3,
        head="upernet",
    )


def knet_upernet_swin_l() -> SemanticKNetConfig:
    return SemanticKNetConfig(
        backbone="swin",
        swin_embed_channels=192,
        swin_depths=(2, 2, 18, 2),
        swin_num_heads=(6, 12, 24, 48),
        drop_path_rate=0.3,
        head="upernet",
    )


def knet_upernet_swin_l_640() -> SemanticKNetConfig:
    return dataclasses.replace(
        knet_upernet_swin_l(), drop_path_rate=0.4, crop_size=(640, 640), test_scale=(2048, 640)
    )


SEMANTIC_PRESETS: dict[str, Callable[[], SemanticKNetConfig]] = {
    "knet_s3_fcn_r50-d8_ade20k": knet_fcn_r50_d8,
    "knet_s3_pspnet_r50-d8_ade20k": knet_pspnet_r50_d8,
    "knet_s3_deeplabv3_r50-d8_ade20k": knet_deeplabv3_r50_d8,
    "knet_s3_upernet_r50_ade20k": knet_upernet_r50,
    "knet_s3_upernet_swin-t_ade20k": knet_upernet_swin_t,
    "knet_s3_upernet_swin-l_ade20k": knet_upernet_swin_l,
    "knet_s3_upernet_swin-l_ade20k_640": knet_upernet_swin_l_640,
}
