"""`knet eval`: COCO mask/box AP, panoptic quality and mIoU, from files or by running a checkpoint.

    knet eval coco --gt instances_val2017.json --results results.json [--iou-type bbox] [--json out.json]
    knet eval panoptic --gt-json panoptic_val2017.json --gt-dir panoptic_val2017 --pred-json p.json --pred-dir p/
    knet eval semantic --gt-dir ann/ --pred-dir pred/ --num-classes 150 --reduce-zero-label
    knet eval coco --split val --data COCO_ROOT --checkpoint ckpt.safetensors --task panoptic --stages
    knet eval ade20k --split val --data ADE_ROOT --checkpoint ckpt.safetensors
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from knet.cli._common import new_app
from knet.errors import KnetError
from knet.fileio import atomic_write_json, check_writable

eval_app = new_app("Evaluate predictions: COCO mask/box AP, panoptic quality (PQ), mIoU.")

JsonOpt = typer.Option(None, "--json", help="Also write the metrics (fractions, not percent) to this JSON file.")
OverwriteOpt = typer.Option(False, "--overwrite", help="Replace an existing --json file.")


def _check_out(json_out: Optional[Path], overwrite: bool) -> None:
    if json_out is not None:
        check_writable([json_out], overwrite=overwrite)


def _write(json_out: Optional[Path], obj, overwrite: bool) -> None:
    if json_out is not None:
        atomic_write_json(json_out, obj, overwrite=overwrite, indent=2)
        typer.echo(f"wrote {json_out}")


def _print_coco(res, title: str = "") -> None:
    if title:
        typer.echo(title)
    typer.echo(f"Evaluate annotation type *{res.iou_type}*")
    for line in res.summary_lines():
        typer.echo(line)
    typer.echo("per-category AP (IoU .50:.95, area all, maxDets 100):")
    for name, ap in res.per_category_ap().items():
        typer.echo(f"  {name:<24} {'  -  ' if ap != ap else f'{100 * ap:6.2f}'}")


def _print_lines(lines, title: str = "") -> None:
    if title:
        typer.echo(title)
    for line in lines:
        typer.echo(line)


def _load_predictor(checkpoint: str, task: Optional[str], device: str):
    from knet.engine.predictor import load_predictor  # lazy: the model stack is heavy

    return load_predictor(checkpoint, task=task, device=device)


def _predict_fn(predictor):
    return lambda images, all_stages: predictor(images, all_stages=all_stages)


def _stage_dicts(results) -> dict:
    out = dict(results[-1].as_dict())
    if len(results) > 1:
        out["stages"] = [r.as_dict() for r in results]
    return out


@eval_app.command("coco")
def coco(
    gt: Optional[Path] = typer.Option(None, "--gt", help="COCO instances JSON (ground truth)."),
    results: Optional[Path] = typer.Option(None, "--results", help="COCO results JSON (list of detections)."),
    iou_type: str = typer.Option("segm", "--iou-type", help="segm (mask AP, on mask areas) or bbox."),
    pycocotools_compat: bool = typer.Option(
        False, "--pycocotools-compat", help="Area ranges from box areas when the first result has a bbox (pycocotools' loadRes)."
    ),
    split: Optional[str] = typer.Option(None, "--split", help="Model evaluation: split (val)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Model evaluation: COCO root (annotations/, val2017/)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Model evaluation: checkpoint to run."),
    task: str = typer.Option("instance", "--task", help="Model evaluation: instance or panoptic."),
    stages: bool = typer.Option(False, "--stages", help="Model evaluation: also report every kernel-update stage."),
    device: str = typer.Option("auto", "--device", help="Model evaluation: auto, cpu or cuda[:N]."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Model evaluation: only the first N images."),
    json_out: Optional[Path] = JsonOpt,
    overwrite: bool = OverwriteOpt,
) -> None:
    """COCO AP from a results file, or run a checkpoint over COCO and evaluate.

    Example: knet eval coco --gt instances_val2017.json --results segm.json --json ap.json

    Example: knet eval coco --split val --data data/coco --checkpoint knet.safetensors --task panoptic --stages
    """
    _check_out(json_out, overwrite)
    model_mode = checkpoint is not None or data is not None or split is not None
    if model_mode:
        if gt is not None or results is not None:
            raise KnetError("use either --gt/--results or --split/--data/--checkpoint, not both")
        if checkpoint is None or data is None:
            raise KnetError("model evaluation needs --data COCO_ROOT and --checkpoint CKPT")
        if task not in ("instance", "panoptic"):
            raise KnetError(f"--task must be instance or panoptic, got {task!r}")
        from knet.data.io import load_image
        from knet.evaluation import runner

        run = runner.evaluate_coco_instance_model if task == "instance" else runner.evaluate_coco_panoptic_model
        (runner.coco_instance_layout if task == "instance" else runner.coco_panoptic_layout)(data, split or "val")
        predictor = _load_predictor(checkpoint, task, device)
        res = run(_predict_fn(predictor), data, split or "val", all_stages=stages, limit=limit, load_image=load_image)
        for s, r in enumerate(res):
            title = f"== stage {s} ==" if len(res) > 1 else ""
            if task == "instance":
                _print_coco(r, title)
            else:
                _print_lines(r.summary_lines(), title)
        _write(json_out, _stage_dicts(res), overwrite)
        return
    if gt is None or results is None:
        raise KnetError("knet eval coco needs --gt ANN.json and --results RES.json (or --data/--checkpoint)")
    from knet.evaluation.coco import evaluate_coco

    res = evaluate_coco(gt, results, iou_type=iou_type, pycocotools_compat=pycocotools_compat)
    _print_coco(res)
    _write(json_out, res.as_dict(), overwrite)


@eval_app.command("panoptic")
def panoptic(
    gt_json: Path = typer.Option(..., "--gt-json", help="COCO panoptic ground-truth JSON."),
    gt_dir: Path = typer.Option(..., "--gt-dir", help="Folder of ground-truth panoptic PNGs."),
    pred_json: Path = typer.Option(..., "--pred-json", help="COCO panoptic prediction JSON."),
    pred_dir: Path = typer.Option(..., "--pred-dir", help="Folder of predicted panoptic PNGs."),
    json_out: Optional[Path] = JsonOpt,
    overwrite: bool = OverwriteOpt,
) -> None:
    """PQ / SQ / RQ (All, Things, Stuff, per class), identical to panopticapi.

    Example: knet eval panoptic --gt-json panoptic_val2017.json --gt-dir panoptic_val2017 --pred-json pred.json --pred-dir pred/
    """
    _check_out(json_out, overwrite)
    from knet.evaluation.panoptic import evaluate_panoptic

    res = evaluate_panoptic(gt_json, gt_dir, pred_json, pred_dir)
    _print_lines(res.summary_lines())
    _print_lines(res.per_class_lines(), "per class:")
    _write(json_out, res.as_dict(), overwrite)


@eval_app.command("semantic")
def semantic(
    gt_dir: Path = typer.Option(..., "--gt-dir", help="Folder of ground-truth label PNGs."),
    pred_dir: Path = typer.Option(..., "--pred-dir", help="Folder of predicted label PNGs (same file names)."),
    num_classes: int = typer.Option(..., "--num-classes", help="Number of classes C (labels 0..C-1)."),
    ignore_index: int = typer.Option(255, "--ignore-index", help="Label value to ignore."),
    reduce_zero_label: bool = typer.Option(False, "--reduce-zero-label", help="Label 0 is ignored, others shift by -1 (ADE20K)."),
    json_out: Optional[Path] = JsonOpt,
    overwrite: bool = OverwriteOpt,
) -> None:
    """mIoU, mAcc, aAcc, fwIoU and per-class IoU/Acc (MMSegmentation protocol).

    Example: knet eval semantic --gt-dir ADEChallengeData2016/annotations/validation --pred-dir pred/ --num-classes 150 --reduce-zero-label
    """
    _check_out(json_out, overwrite)
    from knet.evaluation.semantic import evaluate_semantic

    res = evaluate_semantic(gt_dir, pred_dir, num_classes=num_classes, ignore_index=ignore_index, reduce_zero_label=reduce_zero_label)
    _print_lines(res.summary_lines())
    _write(json_out, res.as_dict(), overwrite)


@eval_app.command("ade20k")
def ade20k(
    data: Path = typer.Option(..., "--data", help="ADE20K root (ADEChallengeData2016/ inside)."),
    checkpoint: str = typer.Option(..., "--checkpoint", help="Semantic checkpoint to run."),
    split: str = typer.Option("val", "--split", help="Split: val (validation)."),
    stages: bool = typer.Option(False, "--stages", help="Also report every kernel-update stage."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images."),
    json_out: Optional[Path] = JsonOpt,
    overwrite: bool = OverwriteOpt,
) -> None:
    """Run a semantic checkpoint over ADE20K and report mIoU (reduce_zero_label, 150 classes).

    Example: knet eval ade20k --split val --data data/ade --checkpoint knet_upernet.safetensors --stages
    """
    _check_out(json_out, overwrite)
    from knet.data.io import load_image
    from knet.evaluation import runner

    runner.ade20k_layout(data, split)  # fail fast before loading the model
    predictor = _load_predictor(checkpoint, "semantic", device)
    names = list(getattr(predictor, "class_names", []) or [])
    res = runner.evaluate_ade20k_model(
        _predict_fn(predictor), data, split, num_classes=len(names) or 150, all_stages=stages, limit=limit,
        load_image=load_image, class_names=names or None,
    )  # fmt: skip
    for s, r in enumerate(res):
        _print_lines(r.summary_lines(), f"== stage {s} ==" if len(res) > 1 else "")
    _write(json_out, _stage_dicts(res), overwrite)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
