"""Per-image CPU latency of the K-Net models, split into backbone / heads / post-processing.

    python bench/model.py          # panoptic + instance R-50 at 800x1216, semantic UPerNet R-50 at 512
    python bench/model.py --iters 3 --threads 1 --tasks panoptic

Batch 1, torch.inference_mode(), random weights (latency does not depend on them), float32.
Every configuration runs in a fresh subprocess, once with the compiled ops (knet._C) and once with
the PyTorch twins (KNET_DISABLE_EXT=1), with 1 and with 2 threads, on the default inference path
(det: NNPACK Winograd for the neck's and kernel generator's stride-1 3x3 convs,
DetKNetConfig.winograd_convs, taken with up to 2 threads: knet.models.fast_conv; the 1x1 convs on
oneDNN also with 1 thread: knet.models.onednn_conv; glibc keeping freed memory from the first
inference call on: DetKNetConfig.keep_freed_memory, knet.models.host_memory). Other modes:
"direct-compiled" turns the Winograd path off (plain F.conv2d: its in-run baseline);
"winograd2t-compiled" allows it at any thread count;
"fused-*" adds the det models' opt-in BN-folded channels-last backbone
(DetKNetConfig.fused_inference; fails the end-to-end fixture parity, see DetKNet.extract_features);
"unfolded-compiled" turns off the kernel update stages' inference fold of feat_transform
(KernelUpdateHead.fold_feat_transform): the in-run baseline of that fold;
"malloc-default-compiled" (det) leaves glibc's malloc as it is (DetKNetConfig.keep_freed_memory off:
every large activation page-faulted in again per image, knet.models.host_memory): its in-run baseline;
"gemm1x1-compiled" (det) runs the 1x1 convs on PyTorch's single-thread GEMM instead of oneDNN
(knet.models.onednn_conv off): its in-run baseline.
Each worker also times the original code's post-processing transcribed literally (every mask
resized at full resolution at once, one full-resolution comparison per kernel): that ratio is
measured in the same run, so it holds however loaded the machine is. The "vs original" column divides the original code's
published 1-thread latency on this machine (panoptic 6.7 s, instance 5.3 s, semantic 6.4 s) by
ours. Medians over --iters after one warm-up. With 1 thread the table also gives the process
CPU time ("cpu"): on a shared machine it is close to the latency without preemption by other
processes (wall time is what you get on this machine right now).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ORIGINAL_1T = {"panoptic": 6.7, "instance": 5.3, "semantic": 6.4}  # seconds per image, original code
ORIGINAL_SPLIT = {"panoptic": (3.7, 1.2, 1.8)}  # backbone+FPN, kernel heads, post-processing
PRESET = {
    "panoptic": "knet_s3_r50_fpn_1x_coco-panoptic",
    "instance": "knet_s3_r50_fpn_1x_coco",
    "semantic": "knet_s3_upernet_r50_ade20k",
}
SIZE = {"panoptic": (800, 1216), "instance": (800, 1216), "semantic": (512, 512)}
# det image metas for the post-processing: a 640x960 photo resized to 800x1200, padded to 800x1216
DET_SHAPES = dict(img_shape=(800, 1200), ori_shape=(640, 960), batch_shape=(800, 1216))


def _literal_det_post(model, out) -> None:
    """The original K-Net post-processing, transcribed literally (the in-run baseline)."""
    import torch
    import torch.nn.functional as F

    cls = out["cls_logits"][0].sigmoid()
    masks = F.interpolate(out["mask_logits"], scale_factor=2, mode="bilinear", align_corners=False)[0]
    cfg = model.config

    def rescale(m):
        m = F.interpolate(m.unsqueeze(0).sigmoid(), size=DET_SHAPES["batch_shape"], mode="bilinear", align_corners=False)
        m = m[:, :, : DET_SHAPES["img_shape"][0], : DET_SHAPES["img_shape"][1]]
        return F.interpolate(m, size=DET_SHAPES["ori_shape"], mode="bilinear", align_corners=False).squeeze(0)

    if model.task == "instance":
        scores, idx = cls.flatten(0, 1).topk(100, sorted=True)
        seg = rescale(masks[idx // cls.shape[1]]) > 0.5
        seg.cpu().numpy()
        return
    nk, nt = cfg.num_kernels, cfg.num_thing_classes
    thing_scores, thing_labels = cls[:nk, :nt].max(1)
    stuff_scores = cls[nk:, nt:].diag()
    scores = torch.cat([thing_scores, stuff_scores])
    labels = torch.cat([thing_labels, torch.arange(stuff_scores.numel()) + nt])
    total = rescale(masks)
    ids = (scores.view(-1, 1, 1) * total).argmax(0)
    pan = torch.full(ids.shape, cfg.num_classes, dtype=torch.long)
    seg_id = 0
    for k in torch.argsort(-scores):
        if labels[k] < nt and scores[k] < 0.3:
            continue
        mask = ids == k
        area, orig = mask.sum().item(), (total[k] >= 0.5).sum().item()
        if area > 0 and orig > 0:
            if area / orig < 0.6:
                continue
            pan[mask] = labels[k] + seg_id * 1000
            seg_id += 1
    pan.numpy()


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def worker(
    task: str,
    threads: int,
    iters: int,
    fused: bool,
    unfolded: bool = False,
    winograd: str = "default",
    malloc_default: bool = False,
    gemm1x1: bool = False,
) -> dict:
    import torch

    torch.set_num_threads(threads)
    from knet.extension import has_ext
    from knet.models import PRESETS, build_model
    from knet.models.fast_conv import set_winograd
    from knet.models.onednn_conv import set_onednn_1x1

    torch.manual_seed(0)
    model = build_model(PRESETS[PRESET[task]]()).eval()
    if task != "semantic":
        model.config.keep_freed_memory = not malloc_default  # default on (applied by extract_features)
        set_onednn_1x1(model, enabled=not gemm1x1)  # default on for det models
    if task != "semantic" and winograd != "default":  # "off": direct convs; "any": at any thread count
        for part in (model.fpn, model.kernel_generator):
            set_winograd(part, enabled=winograd == "any", max_threads=1024)
    stages = model.kernel_update_stages if task == "semantic" else model.update_stages
    for stage in stages:
        stage.fold_feat_transform = not unfolded  # unfolded: full-resolution feat_transform
    h, w = SIZE[task]
    x = torch.randn(1, 3, h, w)
    sections = ("backbone", "head", "post", "post_literal")
    times: dict[str, list[float]] = {f"{s}_{c}": [] for s in sections for c in ("wall", "cpu")}
    with torch.inference_mode():
        for it in range(iters + 1):
            marks = [_clock()]
            if task == "semantic":
                feats = model.backbone(x)
                marks.append(_clock())
                generated, masks, kernels = model.kernel_generator(feats)
                for stage in model.kernel_update_stages:
                    _, masks, kernels = stage(generated, kernels, masks)
                marks.append(_clock())
                model.postprocess({"mask_logits": masks}, ori_shape=(h, w), input_shape=(h, w))
                marks.append(_clock())
                marks.append(_clock())  # no literal baseline for semantic
            else:
                pyramid = model.extract_features(x, fused=fused)
                marks.append(_clock())
                out = model.forward_heads(pyramid)[-1]
                marks.append(_clock())
                model.postprocess(out, **DET_SHAPES)
                marks.append(_clock())
                _literal_det_post(model, out)
                marks.append(_clock())
            if it == 0:
                continue  # warm-up
            for i, name in enumerate(sections):
                times[f"{name}_wall"].append(marks[i + 1][0] - marks[i][0])
                times[f"{name}_cpu"].append(marks[i + 1][1] - marks[i][1])
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"task": task, "threads": threads, "compiled": has_ext(), **med}


def run_all(args) -> list[dict]:
    rows = []
    for task in args.tasks.split(","):
        for mode in args.modes.split(","):
            for threads in [int(t) for t in args.threads.split(",")]:
                if mode.startswith(("fused", "direct", "winograd2t", "malloc-default", "gemm1x1")) and task == "semantic":
                    continue
                env = dict(os.environ, KNET_DISABLE_EXT="1" if mode.endswith("twins") else "0", OMP_NUM_THREADS=str(threads))
                cmd = [sys.executable, __file__, "--worker", "--tasks", task, "--threads", str(threads), "--iters", str(args.iters)]
                cmd += ["--fused"] if mode.startswith("fused") else []
                cmd += ["--unfolded"] if mode.startswith("unfolded") else []
                cmd += ["--winograd", "off"] if mode.startswith("direct") else []
                cmd += ["--winograd", "any"] if mode.startswith("winograd2t") else []
                cmd += ["--malloc-default"] if mode.startswith("malloc-default") else []
                cmd += ["--gemm1x1"] if mode.startswith("gemm1x1") else []
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"{task} {mode} {threads}t failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                # a "compiled" mode whose knet._C did not load ran the twins: say so in the row
                row["mode"] = mode if row["compiled"] or mode.endswith("twins") else f"{mode}(no _C)"
                rows.append(row)
                print_row(row, flush=True)
    return rows


HEADER = (
    f"{'task':<9} {'ops':<24} {'thr':>3} {'clock':<5} {'backbone':>9} {'heads':>7} {'post':>7} {'total':>7}"
    f" {'post orig':>9} {'post x':>7} {'vs orig':>7}"
)


def print_row(row: dict, flush: bool = False) -> None:
    # 1 thread: the process CPU time is the latency without preemption by other processes
    for clock in ("wall", "cpu") if row["threads"] == 1 else ("wall",):
        b, hd, p, lit = (row[f"{s}_{clock}"] for s in ("backbone", "head", "post", "post_literal"))
        total = b + hd + p
        has_literal = row["task"] != "semantic"  # the literal baseline exists for det only
        post_ratio = f"{lit / p:.1f}x" if has_literal else "-"
        vs = f"{ORIGINAL_1T[row['task']] / total:.2f}x" if row["threads"] == 1 else "-"
        lit_s = f"{lit:>8.2f}s" if has_literal else f"{'-':>9}"
        print(
            f"{row['task']:<9} {row['mode']:<24} {row['threads']:>3} {clock:<5} {b:>8.2f}s {hd:>6.2f}s {p:>6.2f}s"
            f" {total:>6.2f}s {lit_s} {post_ratio:>7} {vs:>7}",
            flush=flush,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=2, help="timed iterations per configuration (after 1 warm-up)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--tasks", default="panoptic,instance,semantic")
    ap.add_argument(
        "--modes",
        default="compiled,direct-compiled,twins,fused-compiled",
        help="compiled (knet._C), twins (KNET_DISABLE_EXT=1), direct-compiled (det: no Winograd convs, the"
        " in-run baseline), winograd2t-compiled (det: Winograd at any thread count), fused-compiled /"
        " fused-twins (plus the opt-in BN-folded channels-last backbone, det only), unfolded-compiled (no"
        " feat_transform fold in the kernel update stages: its in-run baseline), malloc-default-compiled (det:"
        " glibc malloc left as it is, DetKNetConfig.keep_freed_memory off: its in-run baseline), gemm1x1-compiled"
        " (det: 1x1 convs on PyTorch's single-thread GEMM, knet.models.onednn_conv off: its in-run baseline)",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--fused", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--unfolded", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--winograd", default="default", choices=["default", "off", "any"], help=argparse.SUPPRESS)
    ap.add_argument("--malloc-default", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gemm1x1", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        row = worker(
            args.tasks, int(args.threads), args.iters, args.fused, args.unfolded, args.winograd, args.malloc_default, args.gemm1x1
        )
        print(json.dumps(row))
        return
    print(f"per-image latency, batch 1, CPU, median of {args.iters}; det 800x1216, semantic 512x512")
    print(f"original code, 1 thread: {ORIGINAL_1T} (panoptic split backbone+FPN/heads/post = {ORIGINAL_SPLIT['panoptic']})")
    print(HEADER, flush=True)
    run_all(args)


if __name__ == "__main__":
    main()
