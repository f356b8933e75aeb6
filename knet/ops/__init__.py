"""knet.ops: the hand-written kernels of knet, each with a PyTorch twin.

- `mask_conv(feats, kernels)`: dynamic 1x1 mask convolution (K-Net Eq. (1)).
- `assemble(mask_logits, feats, mode)`: group feature assembling (Eq. (3)), binary/softmax/sigmoid.
- `adaptive_gate(...)`: fused gates + LayerNorms + gated sum of the kernel update (Eqs. (5)-(6)).

Each op calls the compiled knet._C kernel when it is available (see knet.extension.use_compiled)
and its pure-PyTorch twin (`*_twin`) otherwise.
"""

from knet.ops.assemble import assemble, assemble_twin
from knet.ops.gating import adaptive_gate, adaptive_gate_twin
from knet.ops.mask_conv import mask_conv, mask_conv_twin
from knet.ops import rle  # noqa: E402  (COCO RLE codec; eval engineer)
from knet.ops.mask_iou import mask_iou, mask_iou_twin  # noqa: E402

__all__ = [
    "adaptive_gate",
    "adaptive_gate_twin",
    "assemble",
    "assemble_twin",
    "mask_conv",
    "mask_conv_twin",
]
