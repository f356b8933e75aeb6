"""knet: K-Net for semantic, instance and panoptic segmentation.

One set of learnable kernels, refined by three rounds of dynamic kernel updates, serves all three
tasks (Zhang et al., "K-Net: Towards Unified Image Segmentation", NeurIPS 2021).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
