"""Benchmark knet's compiled CPU ops against their PyTorch twins, in the same run.

    python bench/ops.py [--threads 2] [--repeat 7] [--json PATH]

Shapes are the real ones (spec 2.9 / 3.2): panoptic B=1, N=153, C=256, 100x168 (stride 8 of
an 800x1344 input); semantic B=2, N=150, C=512, 128x128 (UPerNet 512x512 crop); the kernel
update gate on M=153 rows (panoptic) and M=600 rows (semantic: 2 images x 150 kernels x 2
chunks), Cf=256, forward + backward. mask_conv is timed forward at both shapes and forward +
backward at the panoptic one; the line above the table says which CPU float32 path ran (knet's
AVX-512 GEMM or at::bmm, see `knet info`); under an AVX-512 row, the same op timed on at::bmm
and the GEMM's speedup over it. The mask_iou row compares knet.ops.mask_iou with
pycocotools' maskUtils.iou on the same RLEs. Every time is the median of --repeat runs; the
baseline and the compiled op are timed in alternating blocks of back-to-back calls (ABBA...), so
that a change of machine speed during the run falls on both.
Prints a table; --json writes {op: {"shape", "twin_ms", "ext_ms", "speedup"}} (+ "bmm_ms",
"speedup_vs_bmm" for mask_conv on the AVX-512 GEMM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from knet import extension
from knet.ops import adaptive_gate, adaptive_gate_twin, assemble, assemble_twin, mask_conv, mask_conv_twin

PANOPTIC = dict(b=1, n=153, c=256, h=100, w=168)
SEMANTIC = dict(b=2, n=150, c=512, h=128, w=128)


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def paired_median_ms(
    baseline: Callable[[], object], candidate: Callable[[], object], repeat: int, warmup: int = 2, blocks: int = 5
) -> tuple[float, float]:
    """Median ms over `repeat` calls of the baseline and of the candidate, timed in alternating
    blocks (A-block, B-block, B-block, A-block, ...; `blocks` blocks each) so that a change of
    machine speed during the run (a shared VM) falls on both alike, while the calls inside a
    block run back to back on warm caches (the usual hot-loop measurement)."""
    for _ in range(warmup):
        baseline()
        candidate()
    per_block = max(1, -(-repeat // blocks))
    times: dict[int, list[float]] = {0: [], 1: []}
    fns = (baseline, candidate)
    for b in range(-(-repeat // per_block)):
        order = (0, 1) if b % 2 == 0 else (1, 0)
        for which in order:
            for _ in range(per_block):
                t0 = time.perf_counter()
                fns[which]()
                times[which].append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def _maps(b: int, n: int, c: int, h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, c, h, w, generator=g)  # [B, C, H, W]
    kernels = torch.randn(b, n, c, generator=g) / c**0.5  # [B, N, C]
    masks = torch.randn(b, n, h, w, generator=g) * 3  # [B, N, H, W] logits, about half positive
    return feats, kernels, masks


def _knet_like_logits(b: int, n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Mask logits shaped like K-Net's panoptic masks: of the first 100 (thing) kernels about a
    third hold one object blob, the rest predict nothing; the stuff kernels split the image into
    regions (one stuff class per pixel, about 20 classes present). Logits +-4 plus noise."""
    g = torch.Generator().manual_seed(seed)
    yy = torch.arange(h, dtype=torch.float32)[:, None]
    xx = torch.arange(w, dtype=torch.float32)[None, :]
    masks = torch.zeros(b, n, h, w, dtype=torch.bool)
    things = min(n, 100)
    for bi in range(b):
        for k in range(things):
            if torch.rand((), generator=g) < 0.35:
                cy, cx = torch.rand((), generator=g) * h, torch.rand((), generator=g) * w
                ry, rx = 2 + torch.rand((), generator=g) * h / 4, 2 + torch.rand((), generator=g) * w / 4
                masks[bi, k] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        stuff = n - things
        if stuff > 0:
            seeds = torch.rand(20, 2, generator=g) * torch.tensor([h, w])
            dist = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
            owner = things + torch.randperm(stuff, generator=g)[:20][dist.argmin(0)]  # [H, W]
            masks[bi].scatter_(0, owner[None], True)
    noise = torch.randn(b, n, h, w, generator=g)
    return torch.where(masks, 4.0 + noise, -4.0 + noise)


def _shape(d: dict) -> str:
    return f"B={d['b']} N={d['n']} C={d['c']} {d['h']}x{d['w']}"


def _on_bmm_path(fn: Callable[[], object], repeat: int) -> dict:
    """{"bmm_ms": ...}: fn timed once more with the CPU mask_conv on at::bmm instead of knet's
    AVX-512 GEMM (only when that GEMM is what ran; the same op and dispatch, MKL underneath)."""
    if extension.ext().mask_conv_cpu_isa() != "avx512":
        return {}
    prev = extension.ext().mask_conv_set_avx512(False)
    try:
        return {"bmm_ms": median_ms(fn, repeat)}
    finally:
        extension.ext().mask_conv_set_avx512(prev)


def bench_mask_conv(name: str, dims: dict, repeat: int) -> dict:
    feats, kernels, _ = _maps(**dims)
    with torch.no_grad():
        twin, ext = paired_median_ms(lambda: mask_conv_twin(feats, kernels), lambda: mask_conv(feats, kernels), repeat)
        bmm = _on_bmm_path(lambda: mask_conv(feats, kernels), repeat)
    return {"shape": _shape(dims) + " fwd", "twin_ms": twin, "ext_ms": ext, **bmm}


def bench_mask_conv_train(dims: dict, repeat: int) -> dict:
    feats, kernels, _ = _maps(**dims)
    feats.requires_grad_(True)
    kernels.requires_grad_(True)
    grad = torch.randn(dims["b"], dims["n"], dims["h"], dims["w"])

    def run(fn):
        return lambda: torch.autograd.grad(fn(feats, kernels), (feats, kernels), grad)

    twin, ext = paired_median_ms(run(mask_conv_twin), run(mask_conv), repeat)
    bmm = _on_bmm_path(run(mask_conv), repeat)
    return {"shape": _shape(dims) + " fwd+bwd", "twin_ms": twin, "ext_ms": ext, **bmm}


def bench_assemble(mode: str, dims: dict, repeat: int, knet_like: bool = False) -> dict:
    feats, _, masks = _maps(**dims)
    if knet_like:
        masks = _knet_like_logits(dims["b"], dims["n"], dims["h"], dims["w"])
    with torch.no_grad():
        twin, ext = paired_median_ms(lambda: assemble_twin(masks, feats, mode), lambda: assemble(masks, feats, mode), repeat)
    kind = " K-Net-like masks" if knet_like else (" dense random" if mode == "binary" else "")
    return {"shape": _shape(dims) + kind + " fwd", "twin_ms": twin, "ext_ms": ext}


def bench_assemble_backward(mode: str, dims: dict, repeat: int) -> dict:
    feats, _, masks = _maps(**dims)
    masks = _knet_like_logits(dims["b"], dims["n"], dims["h"], dims["w"])
    feats.requires_grad_(True)
    masks.requires_grad_(mode != "binary")
    grad = torch.randn(dims["b"], dims["n"], dims["c"])

    def run(fn):
        return lambda: fn(masks, feats, mode).backward(grad)

    twin, ext = paired_median_ms(run(assemble_twin), run(assemble), repeat)
    feats.grad = None
    return {"shape": _shape(dims) + " K-Net-like masks fwd+bwd", "twin_ms": twin, "ext_ms": ext}


def bench_gate(m: int, cf: int, repeat: int) -> dict:
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(m, cf, generator=g).requires_grad_(True) for _ in range(4)]
    tensors += [torch.randn(cf, generator=g).requires_grad_(True) for _ in range(8)]
    grad = torch.randn(m, cf, generator=g)

    def run(fn):
        def step():
            torch.autograd.grad(fn(*tensors), tensors, grad)

        return step

    twin, ext = paired_median_ms(run(adaptive_gate_twin), run(adaptive_gate), repeat * 5)
    return {"shape": f"M={m} Cf={cf} fwd+bwd", "twin_ms": twin, "ext_ms": ext}


def _random_rles(count: int, h: int, w: int, rng: np.random.Generator):
    from pycocotools import mask as mask_utils

    yy, xx = np.mgrid[:h, :w]
    masks = np.zeros((h, w, count), dtype=np.uint8, order="F")
    for i in range(count):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(5, h / 3), rng.uniform(5, w / 3)
        masks[:, :, i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    masks[:, :, 0] = 0  # an empty mask
    return mask_utils.encode(masks)


def bench_mask_iou(repeat: int) -> dict | str:
    try:
        from knet.ops import mask_iou  # written by the evaluation engineer (issue 2, item 3)
    except ImportError as exc:
        return f"skipped: knet.ops.mask_iou is not importable ({exc})"
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    dt = _random_rles(100, 480, 640, rng)
    gt = _random_rles(20, 480, 640, rng)
    iscrowd = [int(i % 5 == 0) for i in range(len(gt))]
    ref = mask_utils.iou(dt, gt, iscrowd)
    got = np.asarray(mask_iou(dt, gt, iscrowd))
    if not np.array_equal(got, ref):
        return "skipped: knet.ops.mask_iou differs from pycocotools on the benchmark RLEs"
    twin, ext = paired_median_ms(lambda: mask_utils.iou(dt, gt, iscrowd), lambda: mask_iou(dt, gt, iscrowd), repeat * 3)
    return {"shape": "100 dt x 20 gt RLEs 480x640 (vs pycocotools)", "twin_ms": twin, "ext_ms": ext}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement (median)")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    parser.add_argument("--only", default=None, help="run only the rows whose name contains this (e.g. adaptive_gate)")
    args = parser.parse_args()

    if not extension.has_ext():
        raise SystemExit(f"bench/ops.py needs the compiled extension: {extension.load_error()}")
    torch.set_num_threads(args.threads)
    r = args.repeat
    cases: list[tuple[str, Callable[[], dict | str]]] = [
        ("mask_conv@panoptic", lambda: bench_mask_conv("mask_conv", PANOPTIC, r)),
        ("mask_conv@semantic", lambda: bench_mask_conv("mask_conv", SEMANTIC, r)),
        ("mask_conv_train@panoptic", lambda: bench_mask_conv_train(PANOPTIC, r)),
        ("assemble_binary@panoptic", lambda: bench_assemble("binary", PANOPTIC, r, knet_like=True)),
        ("assemble_binary_dense@panoptic", lambda: bench_assemble("binary", PANOPTIC, r)),
        ("assemble_binary_dense@semantic", lambda: bench_assemble("binary", SEMANTIC, r)),
        ("assemble_binary_train@panoptic", lambda: bench_assemble_backward("binary", PANOPTIC, r)),
        ("assemble_softmax@semantic", lambda: bench_assemble("softmax", SEMANTIC, r)),
        ("adaptive_gate@M153", lambda: bench_gate(153, 256, r)),
        ("adaptive_gate@M600", lambda: bench_gate(600, 256, r)),
        ("mask_iou", lambda: bench_mask_iou(r)),
    ]
    if args.only is not None:
        cases = [(name, fn) for name, fn in cases if args.only in name]
    print(f"knet ops benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, median of {r}")
    print(f"CPU mask_conv float32 path: {extension.ext().mask_conv_cpu_isa()} (KNET_NO_AVX512=1: blas)")
    print(f"{'op':<32} {'shape':<58} {'twin ms':>9} {'knet ms':>9} {'speedup':>8}")
    bench_mask_conv("mask_conv", PANOPTIC, 1)  # warm up BLAS threads and allocator (first row was ~25% off)
    results: dict[str, dict] = {}
    for name, fn in cases:
        res = fn()
        if isinstance(res, str):
            print(f"{name:<32} {res}")
            continue
        res["speedup"] = res["twin_ms"] / res["ext_ms"]
        results[name] = res
        print(f"{name:<32} {res['shape']:<58} {res['twin_ms']:>9.2f} {res['ext_ms']:>9.2f} {res['speedup']:>7.2f}x")
        if "bmm_ms" in res:  # the same op on at::bmm: its time, and the AVX-512 GEMM's speedup over it
            res["speedup_vs_bmm"] = res["bmm_ms"] / res["ext_ms"]
            label = f"  same op on at::bmm: {res['bmm_ms']:.2f} ms ({res['twin_ms'] / res['bmm_ms']:.2f}x the twin)"
            print(f"{'':<32} {label:<78} {res['speedup_vs_bmm']:>7.2f}x")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
