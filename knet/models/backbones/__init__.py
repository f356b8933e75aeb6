"""Backbones: ResNet (torchvision / V1c deep stem / D8 dilated) and Swin Transformer."""

from knet.models.backbones.resnet import Bottleneck, ResNet, resnet, resnet_v1c
from knet.models.backbones.swin import SwinTransformer, swin_large, swin_tiny

__all__ = [
    "Bottleneck",
    "ResNet",
    "SwinTransformer",
    "resnet",
    "resnet_v1c",
    "swin_large",
    "swin_tiny",
]
