"""Winograd (NNPACK) execution of the stride-1 3x3 convolutions at inference, on CPU.

`WinogradConv2d` is an `nn.Conv2d` (same parameters, same state-dict keys, same training
behaviour) whose forward runs NNPACK's Winograd F(6x6, 3x3) transform
(`torch._nnpack_spatial_convolution`, the kernel PyTorch itself dispatches to for large CPU
batches) instead of the direct convolution when, and only when, every condition of
`winograd_applies` holds:

* the switch `winograd` is on (the models set it from their config; off by default);
* inference: the module is in eval mode and autograd is off (`torch.inference_mode()` or
  `torch.no_grad()`), so training and anything that needs gradients run `F.conv2d` unchanged;
* CPU float32 input and weight, 4-D input, zero padding of at most 1 pixel on each side;
* kernel 3x3, stride 1, dilation 1, groups 1, and at least `min_channels` input channels
  (default 64: every such conv of the published det models, 2-3x faster at 1 thread);
* NNPACK is available in this PyTorch build (`torch._nnpack_available()`, which also
  initialises it) and the process runs `torch.get_num_threads() <= max_threads` intra-op
  threads (default 2): NNPACK runs on one thread in this PyTorch build (measured), and its
  2.5-3x fewer operations beat the direct convolution on 1 and 2 threads (bench/model.py,
  direct-compiled mode), not on many more.

Batch > 1 runs image by image: NNPACK's batched entry point uses its training-oriented
algorithm, ~2x slower than the direct convolution, while the single-image one is the fast path.

Accuracy: Winograd F(6x6, 3x3) rounds differently from the direct convolution: about 1e-5 of
the output's max magnitude in float32, where the direct convolution stays near 3e-7 (both
against a float64 reference; tests/models/test_fast_conv.py states the bound). That is well
inside the module-by-module parity tolerance (1e-4 x max) but is not bit parity; where it is
applied by default (FPN output convs, localisation FPN) the end-to-end fixture parity holds, see
DetKNetConfig.winograd_convs.
"""

from __future__ import annotations

import torch
from torch import nn

from knet.models.onednn_conv import OneDnnConv2d

# smallest input width that takes the Winograd path (measured: 64 channels at stride 4 gains 2x)
WINOGRAD_MIN_CHANNELS = 64
# NNPACK runs single-threaded; the direct conv scales with threads: Winograd wins up to 2 of them
WINOGRAD_MAX_THREADS = 2

_NNPACK: list[bool] = []  # cached torch._nnpack_available() (the first call initialises NNPACK)


def nnpack_available() -> bool:
    if not _NNPACK:
        _NNPACK.append(bool(torch.backends.nnpack.is_available()) and bool(torch._nnpack_available()))
    return _NNPACK[0]


class WinogradConv2d(OneDnnConv2d):
    """nn.Conv2d with an optional NNPACK Winograd path at inference (see module docstring); its
    1x1 convs can take the oneDNN path of knet.models.onednn_conv (switched separately).

    The extra attributes are plain Python state, never in the state dict:
        winograd: use the Winograd path when it applies (default False: exactly nn.Conv2d).
        min_channels: smallest in_channels that takes it.
        max_threads: largest torch.get_num_threads() that takes it.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.winograd = False
        self.min_channels = WINOGRAD_MIN_CHANNELS
        self.max_threads = WINOGRAD_MAX_THREADS

    def winograd_applies(self, x: torch.Tensor) -> bool:
        p = self.padding
        return (
            self.winograd
            and self.kernel_size == (3, 3)
            and self.stride1_cpu_float32_inference(x)
            and self.groups == 1
            and isinstance(p, tuple)
            and p[0] <= 1
            and p[1] <= 1
            and self.in_channels >= self.min_channels
            and torch.get_num_threads() <= self.max_threads
            and nnpack_available()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.winograd_applies(x):
            return winograd_conv3x3(x, self.weight, self.bias, padding=self.padding)
        return super().forward(x)


def winograd_conv3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, padding: tuple[int, int]
) -> torch.Tensor:
    """x [B, Cin, H, W] (any memory format), weight [Cout, Cin, 3, 3] -> [B, Cout, H', W'] via NNPACK.

    The output is NCHW-contiguous whatever the input's layout (NNPACK reads and writes NCHW)."""
    w = weight.contiguous()
    b = bias if bias is not None else weight.new_zeros(weight.shape[0])
    pad = [padding[0], padding[1]]  # [pad_h, pad_w], symmetric
    xs = x.contiguous()
    if xs.shape[0] == 1:
        out = torch._nnpack_spatial_convolution(xs, w, b, pad, [1, 1])
    else:  # one image at a time: the batch-1 entry point is the fast one
        out = torch.cat([torch._nnpack_spatial_convolution(xs[i : i + 1], w, b, pad, [1, 1]) for i in range(xs.shape[0])])
    return out


def set_winograd(
    module: nn.Module,
    *,
    enabled: bool,
    min_channels: int = WINOGRAD_MIN_CHANNELS,
    max_threads: int = WINOGRAD_MAX_THREADS,
) -> int:
    """Switch the Winograd path of every WinogradConv2d under `module`; returns how many there are."""
    count = 0
    for m in module.modules():
        if isinstance(m, WinogradConv2d):
            m.winograd = enabled
            m.min_channels = min_channels
            m.max_threads = max_threads
            count += 1
    return count


__all__ = [
    "WINOGRAD_MAX_THREADS",
    "WINOGRAD_MIN_CHANNELS",
    "WinogradConv2d",
    "nnpack_available",
    "set_winograd",
    "winograd_conv3x3",
]
