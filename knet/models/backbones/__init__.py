"""Backbones: ResNet (torchvision / V1c deep stem / D8 dilated) and Swin Transformer."""

from knet.models.backbones.resnet import Bottleneck, ResNet, resnet, resnet_v1c

__all__ = ["Bottleneck", "ResNet", "resnet", "resnet_v1c"]
