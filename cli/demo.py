"""`knet demo`: the out-of-the-box run: the bundled demo model on the shipped example images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

import knet
from knet.cli._common import echo_err
from knet.errors import KnetError

# The repository's examples/: synthetic scenes (`knet data synth`) with their COCO panoptic ground truth.
EXAMPLES_DIR = Path(knet.__file__).resolve().parent.parent / "examples"


def find_examples(root: Path) -> tuple[list[str], Optional[Path], Optional[Path]]:
    """(image paths, ground-truth panoptic json or None, its PNG folder or None) under `root`.

    Layout: a COCO panoptic json (`*panoptic*.json`, with "images" and "annotations") whose
    "images" name the example images, found anywhere under `root`; its PNGs in the folder named like
    the json without `.json`. Without such a json, every image directly in `root/images` or `root`.
    """
    from knet.cli.predict import IMAGE_EXTENSIONS
    from knet.fileio import read_json

    if not root.is_dir():
        raise KnetError(f"example images not found: {root}")
    gt_json = next((p for p in sorted(root.rglob("*panoptic*.json"))), None)
    if gt_json is not None:
        doc = read_json(gt_json, what="example ground truth")
        names = [im["file_name"] for im in doc.get("images", [])]
        panoptic_pngs = gt_json.with_suffix("")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and panoptic_pngs not in p.parents)
        images = []
        for n in names:
            cand = [p for p in files if p.name == os.path.basename(n)]
            if not cand:
                raise KnetError(f"example image {n} listed in {gt_json} not found under {root}")
            images.append(str(cand[0]))
        return images, gt_json, panoptic_pngs if panoptic_pngs.is_dir() else None
    folder = root / "images" if (root / "images").is_dir() else root
    images = sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise KnetError(f"no example images in {folder}")
    return images, None, None


def demo(
    output_dir: Path = typer.Option(Path("knet_demo"), "--output-dir", "-o", metavar="DIR", help="Where the demo writes its outputs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs of an earlier demo run."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="auto = first GPU if visible, else CPU."),
) -> None:
    """Run the bundled demo model (panoptic K-Net trained on synthetic scenes) on examples/.

    Writes, per example image, the overlay (STEM.overlay.png), the per-stage figure
    (STEM.stages.png) and COCO panoptic PNG + JSON, then prints where they are and the panoptic
    quality (PQ, SQ, RQ) the demo model reaches on the examples' shipped ground truth.

    \b
    Examples:
      knet demo                          # writes ./knet_demo/
      knet demo -o /tmp/demo --overwrite
      knet predict my.png --task panoptic   # the same demo model on your own image
    """
    from knet.cli.predict import run_predict
    from knet.engine.predictor import DEMO_CHECKPOINT

    if not DEMO_CHECKPOINT.is_file():
        raise KnetError(f"demo checkpoint not found: {DEMO_CHECKPOINT}")
    images, gt_json, gt_dir = find_examples(EXAMPLES_DIR)
    echo_err(f"knet: demo model {DEMO_CHECKPOINT.name}: a small panoptic K-Net trained only on synthetic "
             "`knet data synth` scenes (not real photos)")
    status = run_predict(images, task="panoptic", checkpoint=DEMO_CHECKPOINT, output_dir=output_dir, device=device,
                         show_stages=True, overwrite=overwrite, quiet=True, ids_from=gt_json)
    out = Path(output_dir)
    typer.echo(f"knet demo: {len(images)} example images from {EXAMPLES_DIR}")
    typer.echo(f"  overlays:       {out}/*.overlay.png")
    typer.echo(f"  stage figures:  {out}/*.stages.png   (masks after the initial kernels and each update stage)")
    typer.echo(f"  COCO panoptic:  {out}/panoptic.json + {out}/panoptic/*.png")
    if gt_json is not None and gt_dir is not None and status == 0:
        from knet.evaluation.panoptic import evaluate_panoptic

        res = evaluate_panoptic(gt_json, gt_dir, out / "panoptic.json", out / "panoptic")
        typer.echo(f"panoptic quality of the demo model on the examples' ground truth ({gt_json.name}):")
        for line in res.summary_lines():
            typer.echo("  " + line)
        typer.echo("  the same with: knet eval panoptic --gt-json " + f"{gt_json} --gt-dir {gt_dir} --pred-json {out}/panoptic.json --pred-dir {out}/panoptic")
    if status:
        raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
