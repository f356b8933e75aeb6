"""The knet command: one typer app; each sub-command lives in its own module and registers itself.

    knet info                                   build and device facts
    knet predict img.jpg --task panoptic        segment images
    knet eval coco --gt ann.json --results r.json
    knet train semantic --data ade20k
    knet convert official.pth model.safetensors
    knet benchmark --checkpoint m.safetensors --task panoptic
    knet data synth --out DIR --task panoptic --images 100
    knet demo
"""

from __future__ import annotations

from typing import Optional

import typer

import knet
from knet.cli import _common

app = typer.Typer(
    name="knet",
    help="K-Net for semantic, instance and panoptic segmentation.",
    cls=_common.KnetGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"knet {knet.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """K-Net for semantic, instance and panoptic segmentation."""


def _register_all() -> None:
    # Explicit list: each module adds its command(s) or sub-app to `app`.
    from knet.cli import benchmark, convert, data, demo, evaluate, info, predict, train

    for module in (info, predict, evaluate, train, convert, benchmark, data, demo):
        module.register(app)


_register_all()


def main() -> None:
    app(prog_name="knet")


if __name__ == "__main__":
    main()
