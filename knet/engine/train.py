"""The training loop: data -> model.forward_stages -> matcher + losses -> AdamW, on one process or
many (torchrun), with checkpoints that resume bit-for-bit.

    summary = train(cfg, out_dir="runs/pan", resume=None, overwrite=False)

One iteration = one optimiser step = `grad_accum` micro-batches of `data.batch_size` images per
process. Everything random is a function of (seed, iteration): the data order and augmentation
(knet.engine.schedule, knet.data.loader) and the model initialisation, so `--resume auto` after a
kill continues with the same losses as an uninterrupted run, and DDP with b images per process
matches one process with b * world images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from knet.config_overrides import flatten_fields
from knet.data.catalog import open_dataset
from knet.data.loader import AugmentedDataset, Collate
from knet.data.transforms import coco_train_transforms, semantic_train_transforms, Compose, KeepRatioResize, RandomFlip
from knet.engine import checkpointing as ckpt
from knet.engine.distributed import DistContext, all_reduce_mean, all_reduce_sum_int, barrier, cleanup_distributed, setup_distributed
from knet.engine.schedule import EpochBatchSampler, lr_factor
from knet.engine.train_config import TrainConfig
from knet.errors import KnetError
from knet.fileio import atomic_write_json
from knet.models import build_model
from knet.models.criterion import DetCriterion, SemanticCriterion


# ---- pieces ---------------------------------------------------------------------------------------
def fit_model_to_classes(cfg: TrainConfig, classes) -> TrainConfig:
    """Take the class names / counts from the dataset's own files."""
    m = cfg.model
    if cfg.task == "semantic":
        model = dataclasses.replace(m, num_classes=len(classes.names), class_names=tuple(classes.names))
    else:
        things = classes.num_things
        stuff = classes.num_stuff if cfg.task == "panoptic" else 0
        if cfg.task == "panoptic" and stuff == 0:
            raise KnetError("panoptic training data has no stuff categories (isthing=0)")
        names = tuple(classes.thing_names) + (tuple(classes.stuff_names) if cfg.task == "panoptic" else ())
        model = dataclasses.replace(m, task=cfg.task, class_names=names, num_thing_classes=things, num_stuff_classes=stuff)
    return dataclasses.replace(cfg, model=model)


def build_transforms(cfg: TrainConfig):
    d = cfg.data
    if cfg.task == "semantic":
        return semantic_train_transforms(scale=d.scale, ratio_range=d.ratio_range, crop=d.crop,
                                         cat_max_ratio=d.cat_max_ratio, photometric=d.photometric)  # fmt: skip
    if not d.flip:
        return Compose([KeepRatioResize(d.scale)])
    return coco_train_transforms(scale=d.scale, multiscale=tuple(d.multiscale) if d.multiscale else None)


def build_criterion(cfg: TrainConfig) -> torch.nn.Module:
    if cfg.task == "semantic":
        return SemanticCriterion(aux_weight=getattr(cfg.model, "aux_loss_weight", 0.4))
    m = cfg.model
    return DetCriterion(num_thing_classes=m.num_thing_classes, num_stuff_classes=m.num_stuff_classes, num_kernels=m.num_kernels)


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.startswith("backbone.") else rest).append(p)
    groups = [{"params": rest, "lr": o.lr}]
    if backbone:
        groups.insert(0, {"params": backbone, "lr": o.lr * o.backbone_lr_mult})
    return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def amp_setup(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    if device.type != "cuda" or cfg.amp == "none":
        return None, None  # fp32 on CPU
    if cfg.amp == "fp16" or (cfg.amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16, torch.amp.GradScaler("cuda")
    return torch.bfloat16, None


def initialise_from(model: torch.nn.Module, path: str) -> str:
    """--init: a knet / official K-Net checkpoint, or ImageNet backbone weights (torchvision ResNet
    or Swin state dict). Tensors whose name and shape match are loaded; returns a summary line."""
    from knet.models.checkpoint import read_knet, read_official

    p = Path(path)
    if not p.is_file():
        raise KnetError(f"--init checkpoint not found: {p}")
    if p.suffix == ".safetensors":
        _, sd = read_knet(p)
    else:
        try:
            raw = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - unreadable pickles are a user error
            raise KnetError(f"--init {p} is not a readable checkpoint ({type(exc).__name__})") from None
        raw = raw.get("state_dict", raw.get("model", raw)) if isinstance(raw, dict) else raw
        if not isinstance(raw, dict):
            raise KnetError(f"--init {p} holds no state dict")
        if any(k.startswith(("rpn_head.", "roi_head.", "decode_head.")) for k in raw):
            _, sd = read_official(p)
        else:  # backbone-only ImageNet weights
            sd = {k if k.startswith("backbone.") else f"backbone.{k}": v for k, v in raw.items()}
    own = model.state_dict()
    loaded = {k: v for k, v in sd.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not loaded:
        raise KnetError(f"--init {p}: no tensor matches this model (names or shapes differ)")
    model.load_state_dict(loaded, strict=False)
    return f"initialised {len(loaded)}/{len(own)} tensors from {p} ({len(sd) - len(loaded)} in the file not used)"


class StagesForward(torch.nn.Module):
    """Makes `forward` = `forward_stages` (the list of per-stage outputs) for DDP to wrap."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> list[dict]:
        return self.model.forward_stages(x)


class MetricsLog:
    """JSON lines, one object per logged iteration / validation (rank 0 only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _losses(cfg: TrainConfig, outputs: list[dict], batch, criterion) -> dict[str, torch.Tensor]:
    if cfg.task == "semantic":
        return criterion(outputs, sem_seg=batch.sem_seg)
    return criterion(outputs, thing_masks=batch.thing_masks, thing_labels=batch.thing_labels,
                     sem_seg=batch.sem_seg if cfg.task == "panoptic" else None)  # fmt: skip


# ---- the loop -------------------------------------------------------------------------------------
def train(
    cfg: TrainConfig,
    *,
    out_dir: str | os.PathLike,
    resume: str | None = None,
    overwrite: bool = False,
    init: str | None = None,
    skip_bad: bool = False,
    progress: bool = True,
    validate_fn=None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train per `cfg`; returns a summary (final iteration, last losses, validation metrics).

    `stop_after` ends the run after that many iterations of this call (tests: simulated kill).
    """
    cfg.validate()
    ctx: DistContext = setup_distributed(cfg.device)
    try:
        return _train(cfg, ctx, Path(out_dir), resume, overwrite, init, skip_bad, progress, validate_fn, stop_after)
    finally:
        cleanup_distributed()


def _prepare_out_dir(out: Path, resume: str | None, overwrite: bool, ctx: DistContext) -> Path | None:
    existing = ckpt.list_checkpoints(out) or (out / "metrics.jsonl").exists() or (out / "model_final.safetensors").exists()
    if resume is not None:
        found = ckpt.find_resume(out, resume)
        if found is None and resume != "auto":
            raise KnetError(f"nothing to resume from in {out}")
        return found
    if existing and not overwrite:
        raise KnetError(f"{out} holds a previous run; pass --resume auto to continue it or --overwrite to start over")
    if existing and ctx.is_main:
        ckpt.remove_outputs(out)
    barrier()
    return None


def _train(cfg, ctx, out, resume, overwrite, init, skip_bad, progress, validate_fn, stop_after):
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    resume_from = _prepare_out_dir(out, resume, overwrite, ctx)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)

    base_train = open_dataset(cfg.data.data, task=cfg.task, split="train", data_root_dir=cfg.data.root or None)
    cfg = fit_model_to_classes(cfg, base_train.classes)
    dataset = AugmentedDataset(base_train, transform=build_transforms(cfg), seed=cfg.seed, skip_bad=skip_bad)
    pad_to = tuple(cfg.data.crop) if cfg.task == "semantic" else None
    collate = Collate(pad_divisor=cfg.data.pad_divisor, pad_to=pad_to)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    if init:
        msg = initialise_from(model, init)
        if ctx.is_main:
            print(f"knet: {msg}", file=sys.stderr)
    if cfg.sync_bn and ctx.distributed:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(ctx.device).train()
    optimizer = build_optimizer(cfg, model)
    criterion = build_criterion(cfg)
    amp_dtype, scaler = amp_setup(cfg, ctx.device)

    b, world, accum = cfg.data.batch_size, ctx.world_size, cfg.grad_accum
    mb_per_epoch = EpochBatchSampler.batches_per_epoch(len(dataset), b, world)
    if mb_per_epoch < accum:
        raise KnetError(f"{len(dataset)} training images are fewer than one step needs ({b * world * accum})")
    iters_per_epoch = mb_per_epoch // accum
    unit = iters_per_epoch if cfg.schedule_unit == "epoch" else 1
    max_iters = int(math.ceil(cfg.max_length * unit))
    steps = [int(round(s * unit)) for s in cfg.optim.steps]
    o = cfg.optim
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, warmup_iters=o.warmup_iters, warmup_ratio=o.warmup_ratio, steps=steps, gamma=o.gamma)
    )
    val_every = int(round(cfg.val_interval * unit)) if cfg.val_interval > 0 else 0
    ckpt_every = max(1, int(round(cfg.ckpt_interval * unit)))

    start_iter, num_bad = 0, 0
    if resume_from is not None:
        ckpt.load_weights_into(model, resume_from)
        state = ckpt.load_train_state(resume_from)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        start_iter, num_bad = int(state["iteration"]), int(state.get("num_bad", 0))
        if ctx.is_main:
            print(f"knet: resumed from {resume_from} at iteration {start_iter}", file=sys.stderr)

    stages = StagesForward(model)
    ddp_model = DistributedDataParallel(stages, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None) if ctx.distributed else stages
    if ctx.is_main:
        atomic_write_json(out / "config.json", {"task": cfg.task, "config": _jsonable(cfg), "world_size": world}, overwrite=True, indent=1)
    log = MetricsLog(out / "metrics.jsonl" if ctx.is_main else None)
    bar = None
    if ctx.is_main and progress:
        from tqdm import tqdm

        bar = tqdm(total=max_iters, initial=start_iter, desc=f"train {cfg.task}", file=sys.stderr, dynamic_ncols=True,
                   disable=not sys.stderr.isatty() and os.environ.get("KNET_PROGRESS") != "1")  # fmt: skip

    def batches_from(micro: int):
        """Yield (micro_index, batch) forever from micro-batch `micro` on."""
        while True:
            epoch, pos = divmod(micro, mb_per_epoch)
            dataset.set_epoch(epoch)
            sampler = EpochBatchSampler(len(dataset), batch_size=b, rank=ctx.rank, world_size=world, seed=cfg.seed, epoch=epoch, start=pos)
            loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.workers, collate_fn=collate,
                                                 pin_memory=ctx.device.type == "cuda")  # fmt: skip
            for batch in loader:
                yield micro, batch
                micro += 1

    stream = batches_from(start_iter * accum)
    it = start_iter
    last: dict[str, float] = {}
    metrics: dict[str, Any] = {}
    t_last = time.perf_counter()
    logged_it = start_iter
    done_here = 0
    while it < max_iters:
        optimizer.zero_grad(set_to_none=True)
        loss_sums: dict[str, float] = {}
        for a in range(accum):
            _, batch = next(stream)
            num_bad += all_reduce_sum_int(batch.num_bad, ctx.device)
            if ctx.is_main:
                for m in batch.bad_messages:
                    print(f"knet: skipped: {m}", file=sys.stderr)
            batch = batch.to(ctx.device)
            sync = contextlib.nullcontext() if (a == accum - 1 or not ctx.distributed) else ddp_model.no_sync()
            with sync:
                with torch.autocast(ctx.device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
                    outputs = ddp_model(batch.images)
                losses = _losses(cfg, outputs, batch, criterion)
                loss = sum(losses.values()) / accum
                if not torch.isfinite(loss):
                    raise KnetError(f"loss became {loss.item()} at iteration {it}; lower optim.lr or check the data")
                (scaler.scale(loss) if scaler else loss).backward()
            for k, v in losses.items():
                loss_sums[k] = loss_sums.get(k, 0.0) + float(v.detach()) / accum
        if scaler:
            scaler.unscale_(optimizer)
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        it += 1
        done_here += 1

        if it % cfg.log_interval == 0 or it == max_iters or it == start_iter + 1:
            last = all_reduce_mean(loss_sums, ctx.device)
            total = sum(last.values())
            now = time.perf_counter()
            rec = {"iter": it, "epoch": round(it / iters_per_epoch, 3), "loss": round(total, 5),
                   "lr": optimizer.param_groups[-1]["lr"], **{k: round(v, 5) for k, v in last.items()},
                   "sec_per_iter": round((now - t_last) / max(1, it - logged_it), 4), "bad": num_bad}  # fmt: skip
            logged_it = it
            log.write(rec)
            t_last = now
            if bar is not None:
                bar.set_postfix(loss=f"{total:.3f}", lr=f"{optimizer.param_groups[-1]['lr']:.2e}")
        if bar is not None:
            bar.update(1)
        if ctx.is_main and (it % ckpt_every == 0 or it == max_iters):
            ckpt.save_checkpoint(out, it, model=model, keep_last=cfg.keep_last, train_state={
                "iteration": it, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler else None, "rng": ckpt.rng_state(), "num_bad": num_bad,
                "config": _jsonable(cfg),
            })  # fmt: skip
        if validate_fn is not None and ((val_every and it % val_every == 0) or it == max_iters):
            if ctx.is_main:
                model.eval()
                metrics = validate_fn(model, cfg)
                model.train()
                log.write({"iter": it, "val": metrics})
                print(f"knet: validation at iteration {it}: {json.dumps(metrics)}", file=sys.stderr)
            barrier()
        if stop_after is not None and done_here >= stop_after:
            break
    if bar is not None:
        bar.close()
    final = None
    if it >= max_iters and ctx.is_main:
        from knet.models import save_model

        final = save_model(model, out / "model_final.safetensors", overwrite=True)
    barrier()
    return {"iteration": it, "max_iters": max_iters, "losses": last, "val": metrics, "num_bad": num_bad,
            "final": str(final) if final else None, "model": model}  # fmt: skip


def _jsonable(cfg: TrainConfig) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in flatten_fields(cfg).items()}
