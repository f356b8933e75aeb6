"""`knet predict`: segment images with a K-Net checkpoint and write overlays + machine formats."""

from __future__ import annotations

import glob
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from knet.cli._common import echo_err
from knet.errors import KnetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
TASK_METAVAR = "semantic|instance|panoptic"


def expand_inputs(inputs: list[str], *, stdin=None) -> tuple[list[str], list[str]]:
    """Files, directories (their images, sorted, not recursive), globs (`**` recurses) and `-` (one
    path per line on stdin) -> (image paths in order without duplicates, errors for inputs that name
    nothing)."""
    paths: list[str] = []
    errors: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            paths.append(p)

    for item in inputs:
        if item == "-":
            stream = stdin if stdin is not None else sys.stdin
            for line in stream.read().splitlines():
                line = line.strip()
                if line:
                    if os.path.isdir(line):
                        errors.append(f"{line} (from stdin) is a directory; list image files on stdin")
                    else:
                        add(line)  # missing/corrupt files are reported when they are read
        elif os.path.isdir(item):
            found = sorted(e.path for e in os.scandir(item) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                errors.append(f"no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...) in directory {item}")
            for p in found:
                add(p)
        elif os.path.exists(item):
            add(item)
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                errors.append(f"no files match {item}")
            for p in found:
                add(p)
        else:
            errors.append(f"image not found: {item}")
    return paths, errors


def read_ids_from(coco_json: Path) -> dict:
    """A COCO / COCO panoptic json, checked to have an "images" list."""
    from knet.fileio import read_json

    doc = read_json(coco_json, what="COCO annotation file")
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise KnetError(f"COCO annotation file {coco_json} has no 'images' list")
    return doc


def image_ids_for(paths: list[str], *, coco: Optional[dict], source: Optional[Path] = None) -> list[int]:
    """Image id per path: from a COCO json's "images" (matched by file name), else the numeric file
    stem (COCO style 000000397133.jpg -> 397133), else the 1-based position in the input list."""
    if coco is not None:
        by_name = {os.path.basename(str(im.get("file_name", ""))): int(im["id"]) for im in coco["images"] if "id" in im}
        ids = []
        for p in paths:
            name = os.path.basename(p)
            if name not in by_name:
                raise KnetError(f"image {name} is not listed in {source}")
            ids.append(by_name[name])
        return ids
    stems = [Path(p).stem for p in paths]
    if all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems):
        return [int(s) for s in stems]
    return list(range(1, len(paths) + 1))


def category_ids_from(coco: dict, class_names: list[str], *, source: Optional[Path]) -> Optional[list[int]]:
    """Category id per class index from a COCO json's "categories", matched by name (None when the
    json has no categories)."""
    cats = coco.get("categories")
    if not cats:
        return None
    by_name = {str(c.get("name")): int(c["id"]) for c in cats if "id" in c}
    missing = [n for n in class_names if n not in by_name]
    if missing:
        raise KnetError(f"the model's classes {missing[:3]} are not among the categories of {source}")
    return [by_name[n] for n in class_names]


def run_predict(
    inputs: list[str],
    *,
    task: str,
    checkpoint: Optional[Path],
    output_dir: Path,
    device: str = "auto",
    batch_size: int = 1,
    jsonl: bool = False,
    show_stages: bool = False,
    tta: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    ids_from: Optional[Path] = None,
    stdin=None,
) -> int:
    """The whole `knet predict` job; returns the exit status (0 ok, 1 some images failed)."""
    from knet.engine.outputs import OutputWriter, category_ids_of, image_output_paths, jsonl_line, run_output_paths, segment_summaries, thing_flags_of
    from knet.engine.predictor import DEMO_CHECKPOINT, check_task, load_predictor, predict_files
    from knet.fileio import check_writable

    check_task(task)
    if batch_size < 1:
        raise KnetError(f"--batch-size must be >= 1, got {batch_size}")
    if tta and task != "semantic":
        raise KnetError("--tta is for --task semantic only")
    if tta and show_stages:
        raise KnetError("--tta and --show-stages cannot be combined (test-time augmentation merges the stages' output)")
    paths, input_errors = expand_inputs(inputs, stdin=stdin)
    if not paths:
        if len(input_errors) == 1:
            raise KnetError(input_errors[0])
        for e in input_errors[:-1]:
            echo_err(f"knet: error: {e}")
        raise KnetError(input_errors[-1] if input_errors else "no input images given")
    for e in input_errors:
        echo_err(f"knet: error: {e} (skipped)")

    stems: dict[str, str] = {}
    for p in paths:
        stem = Path(p).stem
        if stem in stems:
            raise KnetError(f"{stems[stem]} and {p} would write the same outputs ({stem}.*); predict them into different --output-dir")
        stems[stem] = p
    coco = read_ids_from(ids_from) if ids_from is not None else None
    ids = image_ids_for(paths, coco=coco, source=ids_from)

    if checkpoint is None:
        if task != "panoptic":
            raise KnetError(f"--checkpoint is required for --task {task} (only panoptic has a bundled demo model)")
        if not DEMO_CHECKPOINT.is_file():
            raise KnetError(f"no --checkpoint given and the demo checkpoint is missing: {DEMO_CHECKPOINT}")
        checkpoint = DEMO_CHECKPOINT
        echo_err(f"knet: no --checkpoint given: using the DEMO model {checkpoint} "
                 "(trained only on synthetic `knet data synth` scenes, not on real photos)")

    # no clobbering: fail before loading the model or reading any image
    planned = [p for s in stems for p in image_output_paths(s, task=task, output_dir=output_dir, show_stages=show_stages).values()]
    check_writable(planned + list(run_output_paths(task=task, output_dir=output_dir).values()), overwrite=overwrite)

    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise KnetError(f"--output-dir {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KnetError(f"cannot create --output-dir {out} ({exc.strerror or exc.__class__.__name__})") from None

    predictor = load_predictor(str(checkpoint), task=task, device=device, batch_size=batch_size)
    k = len(predictor.class_names)
    cat_ids = category_ids_from(coco, predictor.class_names, source=ids_from) if coco is not None else None
    writer = OutputWriter(task=task, output_dir=Path(output_dir), class_names=predictor.class_names,
                          category_ids=cat_ids or category_ids_of(predictor.model, k), thing_flags=thing_flags_of(predictor.model, k),
                          overwrite=overwrite, show_stages=show_stages)
    id_of = dict(zip(paths, ids))
    failed = len(input_errors)
    written = 0
    bar = _progress(len(paths), quiet=quiet)
    for pred in predict_files(predictor, paths, all_stages=show_stages, tta=tta):
        if pred.error is None:
            t0 = time.perf_counter()
            try:
                outputs = writer.write(stem=Path(pred.path).stem, file_name=os.path.basename(pred.path), image_id=id_of[pred.path],
                                       image=pred.image, result=pred.result, stage_results=pred.stages)
            except KnetError as exc:
                pred.error = str(exc)
            except OSError as exc:  # disk full, permissions, ...: this image's outputs could not be written
                pred.error = f"cannot write outputs for {pred.path} ({exc.strerror or exc.__class__.__name__}: {exc.filename or ''})"
            write_s = time.perf_counter() - t0
        if pred.error is not None:
            failed += 1
            _emit(bar, f"knet: error: {pred.error} (skipped)", err=True)
            if jsonl:
                _emit(bar, jsonl_line({"path": pred.path, "error": pred.error}))
        else:
            written += 1
            segments = segment_summaries(pred.result, class_names=predictor.class_names, category_ids=writer.category_ids)
            if jsonl:
                h, w = pred.image.shape[:2]
                _emit(bar, jsonl_line({
                    "path": pred.path, "image_id": id_of[pred.path], "task": task, "height": h, "width": w,
                    "outputs": outputs, "segments": segments,
                    "timing": {"load_s": round(pred.load_s, 6), "predict_s": round(pred.predict_s, 6), "write_s": round(write_s, 6)},
                }))
            elif not quiet:
                _emit(bar, f"{pred.path}: {_describe(task, segments)} -> {outputs['overlay']}")
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if written:
        run_files = writer.finish()
        if not quiet and not jsonl and run_files:
            echo_err("knet: wrote " + ", ".join(run_files.values()))
    total = len(paths) + len(input_errors)
    if failed and total > 1:
        echo_err(f"knet: {failed} of {total} inputs failed; outputs for the other {written} were written to {output_dir}")
    return 1 if failed else 0


def _describe(task: str, segments: list[dict]) -> str:
    """'3 segments' / '5 instances with score >= 0.3 (of 100)' for the per-image line."""
    if task == "instance":
        from knet.visualize import INSTANCE_SCORE_THR

        shown = sum(1 for s in segments if s["score"] is not None and s["score"] >= INSTANCE_SCORE_THR)
        return f"{shown} instances with score >= {INSTANCE_SCORE_THR} (of {len(segments)})"
    noun = "classes" if task == "semantic" else "segments"
    return f"{len(segments)} {noun}"


def _progress(total: int, *, quiet: bool):
    from knet.engine.progress import progress_bar

    return progress_bar(total=total, quiet=quiet, unit="img")


def _emit(bar, line: str, *, err: bool = False) -> None:
    """Print a line (stdout, or stderr with err=True) without tearing the progress bar."""
    if bar is not None:
        bar.clear()
    if err:
        echo_err(line)
    else:
        print(line, flush=True)
    if bar is not None:
        bar.refresh()


def predict(
    inputs: List[str] = typer.Argument(..., metavar="INPUT", help="Image files, directories, globs (quote them), or - to read paths from stdin."),
    task: str = typer.Option(..., "--task", "-t", metavar=TASK_METAVAR, help="What to segment.",
                             autocompletion=lambda: ["semantic", "instance", "panoptic"]),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", metavar="CKPT",
                                              help="knet .safetensors or official .pth. Default for --task panoptic: the bundled synthetic-data demo model."),
    output_dir: Path = typer.Option(Path("predictions"), "--output-dir", "-o", metavar="DIR", help="Where outputs go (created if needed)."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="auto = first GPU if visible, else CPU.",
                               autocompletion=lambda: ["auto", "cpu", "cuda"]),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="Images per forward pass."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print one JSON line per image on stdout (path, outputs, segments, timing)."),
    show_stages: bool = typer.Option(False, "--show-stages", help="Also write STEM.stages.png: masks after the initial kernels and each update stage."),
    tta: bool = typer.Option(False, "--tta", help="Semantic only: multi-scale (0.5-1.75) + flip test-time augmentation."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files (default: refuse before doing any work)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no per-image lines (errors still go to stderr)."),
    ids_from: Optional[Path] = typer.Option(None, "--ids-from", metavar="COCO.json",
                                            help="Take image ids (by file name) and category ids (by class name) from this COCO / COCO panoptic json, so the JSON outputs evaluate against it."),
) -> None:
    """Segment images and write, per image, an overlay PNG and the task's machine format.

    \b
    Outputs in DIR (STEM = image file name without extension):
      STEM.overlay.png                  colours, class names, instance outlines
      STEM.stages.png                   --show-stages
      STEM.label.png                    semantic: class index per pixel (255 = ignore)
      STEM.instances.json, instances.json            instance: COCO results (RLE)
      panoptic/STEM.png, STEM.panoptic.json, panoptic.json   panoptic: COCO panoptic
    Exit status: 0 all written, 1 some images failed (the others are written), 2 usage error.

    \b
    Examples:
      knet predict photo.jpg --task panoptic                  # bundled demo model
      knet predict imgs/ --task instance -c knet_r50.safetensors -o out/ --jsonl > out.jsonl
      knet predict 'data/**/*.png' --task semantic -c upernet.safetensors --tta -b 4
      find imgs -name '*.jpg' | knet predict - --task panoptic -c m.safetensors --quiet
      knet predict val/ --task panoptic -c m.safetensors --ids-from panoptic_val.json -o pred/
    """
    status = run_predict(inputs, task=task, checkpoint=checkpoint, output_dir=output_dir, device=device, batch_size=batch_size,
                         jsonl=jsonl, show_stages=show_stages, tta=tta, overwrite=overwrite, quiet=quiet, ids_from=ids_from)
    if status:
        raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
