"""knet: K-Net for semantic, instance and panoptic segmentation.

One set of learnable kernels, refined by three rounds of dynamic kernel updates, serves all three
tasks (Zhang et al., "K-Net: Towards Unified Image Segmentation", NeurIPS 2021).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]


def __getattr__(name: str):
    # `knet.load_model(path)` (issue 3's API) without importing torch at `import knet`
    if name == "load_model":
        from knet.models import load_model

        return load_model
    raise AttributeError(f"module 'knet' has no attribute {name!r}")
