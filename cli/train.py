"""`knet train semantic|instance|panoptic`: train K-Net with the paper's recipes (or a preset)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from knet.errors import KnetError

TASKS = ("semantic", "instance", "panoptic")

HELP = """Train K-Net for TASK (semantic, instance or panoptic).

Presets hold the paper's recipes (AdamW, warm-up, step schedule, augmentation); any field can be
changed with key=value (e.g. optim.lr=2e-4 max_length=24 data.batch_size=4 model.channels=128).
Multi-GPU / multi-node: launch with torchrun --nproc-per-node N $(which knet) train ...

Examples:

  knet train semantic --data ade20k --data-root /data

  knet train panoptic --data coco-panoptic --preset coco-panoptic-ms3x --out runs/pan

  knet train panoptic --data /tmp/synth_pan --preset synth-panoptic-tiny --out runs/demo

  knet train instance --data my/annotations/instances_train.json optim.lr=5e-5 --resume auto
"""


def train_command(
    task: str = typer.Argument(..., help="semantic | instance | panoptic"),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value config overrides (see --show-config)."),
    data: Optional[str] = typer.Option(None, "--data", help="ade20k | coco | coco-panoptic | PATH (folder or COCO json)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where named datasets live [default: $KNET_DATA or ./data]."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Training preset (default: the paper recipe for the task)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder for checkpoints and metrics.jsonl [default: runs/<preset>]."),
    resume: Optional[str] = typer.Option(None, "--resume", help="'auto' (newest checkpoint in --out) or a checkpoint path."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in an --out folder that holds a previous run."),
    init: Optional[Path] = typer.Option(None, "--init", help="Initial weights: knet/official checkpoint or ImageNet backbone .pth."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip (and count) corrupt images / annotations instead of stopping."),
    no_val: bool = typer.Option(False, "--no-val", help="No periodic validation."),
    show_config: bool = typer.Option(False, "--show-config", help="Print the resolved config keys and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    from knet.config_overrides import apply_overrides, flatten_fields
    from knet.engine.train import train
    from knet.engine.train_config import DEFAULT_PRESET, get_preset
    from knet.engine.validate import make_validator

    if task not in TASKS:
        raise KnetError(f"unknown task '{task}' (choose from {', '.join(TASKS)})")
    name = preset or DEFAULT_PRESET[task]
    cfg = get_preset(name, task)
    items = list(overrides or [])
    if data is not None:
        items.append(f"data.data={data}")
    if data_root is not None:
        items.append(f"data.root={data_root}")
    cfg = apply_overrides(cfg, items)
    if show_config:
        for k, v in flatten_fields(cfg).items():
            if not k.startswith("model.class_names"):
                typer.echo(f"{k}={v}")
        return
    if not cfg.data.data:
        raise KnetError(f"preset '{name}' needs --data (a dataset name or folder)")
    out_dir = out or Path("runs") / name
    validator = None if no_val else make_validator(cfg)
    summary = train(cfg, out_dir=out_dir, resume=resume, overwrite=overwrite, init=str(init) if init else None,
                    skip_bad=skip_bad, progress=not quiet, validate_fn=validator)  # fmt: skip
    if summary.get("final"):
        typer.echo(f"trained {summary['iteration']} iterations; model: {summary['final']}")
    if summary.get("val"):
        typer.echo("validation: " + ", ".join(f"{k}={v}" for k, v in summary["val"].items()))
    if summary.get("num_bad"):
        typer.echo(f"skipped {summary['num_bad']} bad image(s)/annotation(s)")


def register(app: typer.Typer) -> None:
    app.command("train", help=HELP, context_settings={"allow_interspersed_args": True})(train_command)
