"""The 1x1 convolutions at inference on one thread: oneDNN, as PyTorch itself does on two or more.

PyTorch chooses the CPU float32 convolution kernel with a fixed rule (ATen's
ConvParams::use_mkldnn): a 1x1, stride-1, undilated conv of a batch below 16 goes to oneDNN
(`mkldnn_convolution`) only when more than one intra-op thread is set, and otherwise to the
im2col-free GEMM of `thnn_conv2d` (its comment: "MKLDNN is faster than THNN when multi-threaded,
but THNN is faster when single-threaded"). On this AVX-512 machine the opposite holds for the
det models' 1x1 convs: oneDNN takes 0.55-0.98x the GEMM's time at 1 thread (64 -> 256 channels
at stride 4: 28 vs 50 ms; 512 -> 2048 at stride 32: 20 vs 32 ms; R-50 at 800x1216: ten shapes).

`OneDnnConv2d` is an `nn.Conv2d` (same parameters, keys, training behaviour) that, when its
switch `onednn_1x1` is on and every condition of `onednn_1x1_applies` holds, calls oneDNN for
those convs on one thread too, i.e. the kernel PyTorch picks for the same conv with 2+ threads:

* inference: eval mode and autograd off;
* CPU float32 input and weight, 4-D NCHW-contiguous input, oneDNN available and enabled;
* kernel 1x1, stride 1, dilation 1, zero padding mode;
* `torch.get_num_threads() == 1` (with more, PyTorch already takes oneDNN);
* the rest of PyTorch's rule: batch > 1, groups > 1, or more than 20480 input elements (below
  that PyTorch keeps the GEMM at any thread count, and so does this class).

Values: the results are those of the multi-threaded default (measured bit-identical on the
det R-50 shapes: oneDNN splits no reduction across threads there), which is also how the parity
fixtures were produced (the original code on 2 threads); they differ from the single-threaded
GEMM by float rounding only (~1e-6 relative).
"""

from __future__ import annotations

import torch
from torch import nn

# PyTorch keeps the GEMM path for a batch-1 1x1 conv of at most this many input elements
ONEDNN_MIN_NUMEL = 20480


def onednn_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and bool(torch.backends.mkldnn.enabled)


class OneDnnConv2d(nn.Conv2d):
    """nn.Conv2d whose 1x1 stride-1 convs take oneDNN on one thread at inference (module docstring).

    `onednn_1x1` is plain Python state (never in the state dict), default False: exactly nn.Conv2d.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.onednn_1x1 = False

    def stride1_cpu_float32_inference(self, x: torch.Tensor) -> bool:
        """The conditions the fast CPU paths share: eval mode with autograd off, CPU float32
        4-D input and weight, stride 1, dilation 1, zero padding mode."""
        return (
            not self.training
            and not torch.is_grad_enabled()
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and x.dim() == 4
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
        )

    def onednn_1x1_applies(self, x: torch.Tensor) -> bool:
        return (
            self.onednn_1x1
            and self.kernel_size == (1, 1)
            and self.stride1_cpu_float32_inference(x)
            and x.is_contiguous()
            and torch.get_num_threads() == 1
            and (x.shape[0] > 1 or self.groups > 1 or x.numel() > ONEDNN_MIN_NUMEL)
            and onednn_available()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.onednn_1x1_applies(x):
            return torch.mkldnn_convolution(
                x, self.weight, self.bias, list(self.padding), list(self.stride), list(self.dilation), self.groups
            )
        return super().forward(x)


def set_onednn_1x1(module: nn.Module, *, enabled: bool) -> int:
    """Switch the oneDNN 1x1 path of every OneDnnConv2d under `module`; returns how many there are."""
    count = 0
    for m in module.modules():
        if isinstance(m, OneDnnConv2d):
            m.onednn_1x1 = enabled
            count += 1
    return count


__all__ = ["ONEDNN_MIN_NUMEL", "OneDnnConv2d", "onednn_available", "set_onednn_1x1"]
