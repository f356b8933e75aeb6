"""`knet data`: dataset utilities (synthetic datasets in the real on-disk formats)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from knet.cli._common import new_app
from knet.errors import KnetError

data_app = new_app(
    "Dataset utilities.\n\nExample: knet data synth --out /tmp/synth --task panoptic --images 200"
)


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise KnetError(f"--size takes HxW like 128x160, got '{text}'")
    return int(parts[0]), int(parts[1])


@data_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (the dataset root)."),
    task: str = typer.Option(..., "--task", help="panoptic (COCO panoptic), instance (COCO) or semantic (ADE20K)."),
    images: int = typer.Option(..., "--images", help="Number of training images."),
    val_images: Optional[int] = typer.Option(None, "--val-images", help="Number of validation images [default: images // 5]."),
    seed: int = typer.Option(0, "--seed", help="Scene stream seed; another seed gives held-out scenes."),
    size: str = typer.Option("128x128", "--size", help="Image size HxW."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing files."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Write a deterministic synthetic dataset (textured stuff + overlapping shapes) in the real format.

    Example: knet data synth --out /tmp/synth_pan --task panoptic --images 400 --val-images 50 --seed 0
    """
    from knet.data.synth import write_synth

    summary = write_synth(
        out, task=task, images=images, val_images=val_images, seed=seed, size=_parse_size(size), overwrite=overwrite
    )
    if not quiet:
        typer.echo(
            f"wrote {summary['train']} train + {summary['val']} val {task} images "
            f"({summary['size'][0]}x{summary['size'][1]}, seed {seed}) to {out}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
