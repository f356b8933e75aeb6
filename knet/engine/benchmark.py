"""Inference speed with the K-Net paper's FPS protocol (as mmdet's benchmark script measures it).

    res = benchmark_model(model, size=(800, 1333), device=torch.device("cpu"), iters=400, runs=3)
    res.fps_mean, res.fps_std

Pure inference: one fixed, already normalised input [1, 3, H, W] (padded to a multiple of 32 as the
test pipeline pads) lives on the device before timing starts, so no data loading, decoding or
resizing is measured. Each call is `model.forward_stages(x)` under `torch.inference_mode()`: the
backbone, neck, kernel generator and all kernel-update stages (no post-processing, which depends
on the image content). `warmup` iterations run first and are excluded; then `runs` timed runs of
`iters` iterations each; on CUDA the GPU is synchronised before reading each clock.
FPS of a run = iters / wall seconds; we report every run, their mean and standard deviation.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from knet.errors import KnetError

PAD_DIVISOR = 32
DEFAULT_SIZES = {"semantic": (512, 512), "instance": (800, 1333), "panoptic": (800, 1333)}


def parse_size(text: str) -> tuple[int, int]:
    """'800x1333' (H x W) or '512' (square) -> (H, W)."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        hw = tuple(int(p) for p in parts)
    except ValueError:
        raise KnetError(f"--size must look like 800x1333 (height x width), got '{text}'") from None
    if len(hw) == 1:
        hw = (hw[0], hw[0])
    if len(hw) != 2 or min(hw) < 1 or max(hw) > 16384:
        raise KnetError(f"--size must be HEIGHTxWIDTH with 1..16384 pixels per side, got '{text}'")
    return hw  # type: ignore[return-value]


def padded(size: tuple[int, int], divisor: int = PAD_DIVISOR) -> tuple[int, int]:
    return (math.ceil(size[0] / divisor) * divisor, math.ceil(size[1] / divisor) * divisor)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class BenchmarkResult:
    task: str
    device: str
    threads: int
    size: tuple[int, int]  # requested H, W
    input_shape: tuple[int, int, int, int]  # what the model saw (padded)
    iters: int
    runs: int
    warmup: int
    seconds: list[float] = field(default_factory=list)  # wall time of each run
    fps: list[float] = field(default_factory=list)  # iters / seconds, per run

    @property
    def fps_mean(self) -> float:
        return statistics.fmean(self.fps)

    @property
    def fps_std(self) -> float:
        return statistics.stdev(self.fps) if len(self.fps) > 1 else 0.0

    @property
    def ms_per_image(self) -> float:
        return 1000.0 * sum(self.seconds) / (self.iters * self.runs)

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(
            fps_mean=self.fps_mean, fps_std=self.fps_std, fps_min=min(self.fps), fps_max=max(self.fps),
            ms_per_image=self.ms_per_image, torch=torch.__version__, cpu=platform.processor() or platform.machine(),
            protocol="forward_stages on a fixed normalised input, warm-up excluded, runs x iters, CUDA synchronised",
        )
        return d

    def table(self) -> str:
        lines = [f"{'run':>4} {'iters':>6} {'seconds':>9} {'FPS':>9}"]
        for i, (s, f) in enumerate(zip(self.seconds, self.fps), 1):
            lines.append(f"{i:>4} {self.iters:>6} {s:>9.3f} {f:>9.3f}")
        lines.append(
            f"FPS {self.fps_mean:.3f} +- {self.fps_std:.3f} (mean +- std over {self.runs} runs; min {min(self.fps):.3f}, "
            f"max {max(self.fps):.3f}); {self.ms_per_image:.1f} ms/image"
        )
        return "\n".join(lines)


def benchmark_model(
    model,
    *,
    size: tuple[int, int],
    device: torch.device,
    iters: int = 400,
    runs: int = 3,
    warmup: int = 5,
    on_run: Callable[[int, float, float], None] | None = None,
) -> BenchmarkResult:
    """Time `model.forward_stages` on one [1, 3, H, W] input (H, W padded to /32); see module doc."""
    if iters < 1 or runs < 1 or warmup < 0:
        raise KnetError(f"need --iters >= 1, --runs >= 1 and --warmup >= 0 (got {iters}, {runs}, {warmup})")
    h, w = padded(size)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, h, w, generator=gen).to(device)  # [1, 3, H, W], already "normalised"
    model.eval()
    result = BenchmarkResult(
        task=str(model.task), device=str(device), threads=torch.get_num_threads(), size=tuple(size),
        input_shape=(1, 3, h, w), iters=iters, runs=runs, warmup=warmup,
    )
    with torch.inference_mode():
        for _ in range(warmup):
            model.forward_stages(x)
        _sync(device)
        for r in range(runs):
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                model.forward_stages(x)
            _sync(device)
            dt = time.perf_counter() - t0
            result.seconds.append(dt)
            result.fps.append(iters / dt)
            if on_run is not None:
                on_run(r, dt, iters / dt)
    return result
