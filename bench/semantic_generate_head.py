"""Semantic generate heads at inference: folded upsample+conv against the plain concatenation.

    python bench/semantic_generate_head.py [--threads 1] [--iters 3] [--size 512]

Builds the published UPerNet (ResNet-50 widths, C = 512), PSP and ASPP (D8) heads, random weights,
feeds random backbone features for a size x size image and times, interleaved in the same run,
(a) the MMSegmentation form: bilinear-upsample every level / pooled map, concatenate, 3x3 conv,
and (b) knet's inference form (`ConvBNReLU.forward_upsampled_concat`): the 3x3 conv's taps applied at
each level's own resolution, then one resize+shift contraction. Prints medians, the ratio and
the max relative difference of the two outputs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from knet.models.generate_heads import ASPPHead, PSPHead, UPerHead


def _plain_uper(head: UPerHead, inputs: list[torch.Tensor]) -> torch.Tensor:
    top = inputs[-1]
    laterals = [conv(inputs[i]) for i, conv in enumerate(head.lateral_convs)]
    laterals.append(head.bottleneck(torch.cat([top, *head.psp_modules(top)], dim=1)))
    for i in range(len(laterals) - 1, 0, -1):
        laterals[i - 1] = laterals[i - 1] + F.interpolate(
            laterals[i], size=laterals[i - 1].shape[2:], mode="bilinear", align_corners=False
        )
    outs = [conv(laterals[i]) for i, conv in enumerate(head.fpn_convs)] + [laterals[-1]]
    size = outs[0].shape[2:]
    outs = [outs[0]] + [F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outs[1:]]
    return head.fpn_bottleneck(torch.cat(outs, dim=1))


def _plain_psp(head: PSPHead, inputs: list[torch.Tensor]) -> torch.Tensor:
    x = inputs[head.in_index]
    return head.bottleneck(torch.cat([x, *head.psp_modules(x)], dim=1))


def _plain_aspp(head: ASPPHead, inputs: list[torch.Tensor]) -> torch.Tensor:
    x = inputs[head.in_index]
    pooled = F.interpolate(head.image_pool(x), size=x.shape[2:], mode="bilinear", align_corners=False)
    return head.bottleneck(torch.cat([pooled, *[branch(x) for branch in head.aspp_modules]], dim=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    s = args.size
    uper_in = [torch.randn(1, c, s // st, s // st) for c, st in ((256, 4), (512, 8), (1024, 16), (2048, 32))]
    # the plain forms below mirror MMSegmentation's UPerHead / PSPHead / ASPPHead forwards
    d8_in = [torch.randn(1, c, s // st, s // st) for c, st in ((256, 4), (512, 8), (1024, 8), (2048, 8))]
    cases = [
        ("UPerNet R-50 (stride 4)", UPerHead(in_channels=[256, 512, 1024, 2048], channels=512).eval(), uper_in, _plain_uper),
        ("PSP R-50-D8 (stride 8)", PSPHead(in_channels=2048, channels=512).eval(), d8_in, _plain_psp),
        ("ASPP R-50-D8 (stride 8)", ASPPHead(in_channels=2048, channels=512).eval(), d8_in, _plain_aspp),
    ]
    print(f"{args.size}x{args.size} input, {args.threads} thread(s), median of {args.iters}")
    print(f"{'head':<24} {'plain':>8} {'folded':>8} {'speed-up':>9} {'max rel diff':>13}")
    with torch.inference_mode():
        for name, head, inputs, plain_fn in cases:
            times = {"plain": [], "folded": []}
            for it in range(args.iters + 1):
                t0 = time.perf_counter()
                ref = plain_fn(head, inputs)
                t1 = time.perf_counter()
                out = head(inputs)
                t2 = time.perf_counter()
                if it:  # first round = warm-up
                    times["plain"].append(t1 - t0)
                    times["folded"].append(t2 - t1)
            p, f = statistics.median(times["plain"]), statistics.median(times["folded"])
            rel = float((out - ref).abs().max() / ref.abs().max())
            print(f"{name:<24} {p:>7.2f}s {f:>7.2f}s {p / f:>8.2f}x {rel:>13.1e}")


if __name__ == "__main__":
    main()
