"""`knet benchmark`: inference FPS with the paper's protocol (see knet.engine.benchmark)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from knet.cli._common import echo_err
from knet.errors import KnetError


def benchmark(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", metavar="CKPT", help="knet .safetensors or official .pth."),
    task: Optional[str] = typer.Option(None, "--task", "-t", metavar="semantic|instance|panoptic",
                                       help="Checked against the checkpoint's task (default: the checkpoint's).",
                                       autocompletion=lambda: ["semantic", "instance", "panoptic"]),
    size: Optional[str] = typer.Option(None, "--size", metavar="HxW",
                                       help="Input height x width, padded to /32. Default 800x1333 (instance, panoptic), 512x512 (semantic)."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="auto = first GPU if visible, else CPU."),
    iters: int = typer.Option(400, "--iters", help="Timed iterations per run (paper: 400)."),
    runs: int = typer.Option(3, "--runs", help="Timed runs; FPS is reported as mean and std over runs (paper: 3)."),
    warmup: int = typer.Option(5, "--warmup", help="Untimed iterations before the first run."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice, usually the core count)."),
    json_path: Optional[Path] = typer.Option(None, "--json", metavar="PATH", help="Also write the numbers as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-run progress lines on stderr."),
) -> None:
    """Measure inference FPS: pure inference (no data loading), warm-up excluded, RUNS x ITERS.

    Each iteration is model.forward_stages on one fixed [1, 3, H, W] input already on the device
    (backbone, neck, initial kernels and every kernel-update stage; no post-processing); the GPU is
    synchronised before each clock read. Prints a table; --json writes it for scripts.

    \b
    Examples:
      knet benchmark -c knet_s3_r50_panoptic.safetensors --task panoptic            # 3 x 400 iters
      knet benchmark -c knet/assets/demo/knet_demo_panoptic.safetensors --size 256x256 --iters 20
      knet benchmark -c upernet.safetensors --device cuda --json bench.json
      knet benchmark -c m.safetensors --device cpu --threads 1 --iters 50     # single-core CPU number
    """
    from knet.engine.benchmark import DEFAULT_SIZES, benchmark_model, parse_size
    from knet.engine.predictor import load_predictor
    from knet.fileio import atomic_write_json, check_writable

    if json_path is not None:
        check_writable([json_path], overwrite=overwrite)
    if threads is not None:
        if threads < 1:
            raise KnetError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    predictor = load_predictor(str(checkpoint), task=task, device=device)
    model = predictor.model
    hw = parse_size(size) if size else DEFAULT_SIZES[model.task]

    def on_run(r: int, seconds: float, fps: float) -> None:
        if not quiet:
            echo_err(f"knet: run {r + 1}/{runs}: {iters} iters in {seconds:.3f} s = {fps:.3f} FPS")

    if not quiet:
        echo_err(f"knet: benchmarking {checkpoint} ({model.task}) on {predictor.device}, {warmup} warm-up + {runs} x {iters} iters")
    res = benchmark_model(model, size=hw, device=predictor.device, iters=iters, runs=runs, warmup=warmup, on_run=on_run)
    typer.echo(f"{checkpoint}: {res.task}, {res.device} ({res.threads} threads), input {'x'.join(map(str, res.input_shape))} "
               f"(requested {hw[0]}x{hw[1]}, padded to /32), forward_stages")
    typer.echo(res.table())
    if json_path is not None:
        doc = res.to_json()
        doc["checkpoint"] = str(checkpoint)
        atomic_write_json(json_path, doc, overwrite=overwrite, indent=2)
        if not quiet:
            echo_err(f"knet: wrote {json_path}")


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark)
