"""`knet convert`: official K-Net / MMSegmentation checkpoint -> knet .safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def convert(
    src: Path = typer.Argument(..., help="Official checkpoint (.pth), with or without the state_dict/meta wrapper."),
    dst: Optional[Path] = typer.Argument(None, help="Output .safetensors (default: SRC with the .safetensors suffix)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DST if it exists."),
) -> None:
    """Convert an official checkpoint; task and sizes are inferred from its keys and shapes.

    Example: knet convert knet_s3_r50_fpn_1x_coco-panoptic.pth panoptic_r50.safetensors
    """
    from knet.models.checkpoint import convert_checkpoint, describe_config

    out, cfg = convert_checkpoint(src, dst, overwrite=overwrite)
    for key, value in describe_config(cfg).items():
        typer.echo(f"{key:<10} {value}")
    typer.echo(f"wrote      {out}")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
