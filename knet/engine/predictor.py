"""Predictor: a loaded K-Net model on a device, run over lists of images in batches.

    predictor = load_predictor("model.safetensors", task="panoptic", device="auto")
    results = predictor([load_image("a.jpg"), load_image("b.jpg")])          # one result per image
    stages = predictor([img], all_stages=True)[0]   # [stage 0 (initial kernels), stage 1, 2, 3]

`predict_files` is the batch-job loop behind `knet predict`: it decodes images, skips (and reports)
the ones that cannot be read, runs the model in batches and yields one `Prediction` per path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import knet
from knet.errors import KnetError

TASKS = ("semantic", "instance", "panoptic")
# The small panoptic model trained on `knet data synth` scenes (synthetic shapes, NOT real photos).
DEMO_CHECKPOINT = Path(knet.__file__).resolve().parent / "assets" / "demo" / "knet_demo_panoptic.safetensors"


def check_task(task: str) -> str:
    if task not in TASKS:
        import difflib

        close = difflib.get_close_matches(str(task), TASKS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else " (choose semantic, instance or panoptic)"
        raise KnetError(f"unknown task '{task}'{hint}")
    return task


def resolve_device(device: str) -> torch.device:
    """'auto' -> the first CUDA GPU if one is visible, else CPU; 'cuda' without a GPU is an error."""
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise KnetError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise KnetError(f"device '{device}' requested but no CUDA GPU is visible (use --device cpu or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise KnetError(f"device '{device}' does not exist ({torch.cuda.device_count()} GPU(s) visible)")
    if dev.type not in ("cpu", "cuda"):
        raise KnetError(f"device '{device}' is not supported (use auto, cpu, cuda or cuda:N)")
    return dev


class Predictor:
    """A model in eval mode on one device; `__call__` runs it over images in batches of `batch_size`."""

    def __init__(self, *, model, device: torch.device, batch_size: int = 1) -> None:
        if batch_size < 1:
            raise KnetError(f"--batch-size must be >= 1, got {batch_size}")
        self.model = model
        self.device = device
        self.batch_size = int(batch_size)
        self.task: str = model.task
        self.class_names: list[str] = list(model.class_names)

    def __call__(self, images: list[np.ndarray], all_stages: bool = False, *, tta: bool = False) -> list:
        """One result per image (`all_stages`: a list of results per image, stage 0 first)."""
        if tta and self.task != "semantic":
            raise KnetError(f"--tta is for semantic segmentation only (this is a {self.task} model)")
        arrays = []
        for i, img in enumerate(images):
            a = np.asarray(img)
            if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or a.shape[0] == 0 or a.shape[1] == 0:
                raise KnetError(f"image {i} must be a non-empty [H, W, 3] uint8 RGB array, got {a.dtype} {a.shape}")
            # decoded images can be read-only views of PIL's buffer; torch.from_numpy warns on those
            arrays.append(a if a.flags.writeable else a.copy())
        kwargs = {"all_stages": True} if all_stages else {}
        if tta:
            kwargs["tta"] = True
        out: list = []
        with torch.inference_mode():
            for start in range(0, len(arrays), self.batch_size):
                chunk = arrays[start : start + self.batch_size]
                results = self.model.predict(chunk, **kwargs)
                if len(results) != len(chunk):
                    raise RuntimeError(f"model.predict returned {len(results)} results for {len(chunk)} images")
                out.extend(results)
        return out


def load_predictor(checkpoint: str, *, task: str | None, device: str, batch_size: int = 1) -> Predictor:
    """Load a knet .safetensors or an official .pth checkpoint onto `device` ('auto', 'cpu', 'cuda').

    `task` (if given) must match the checkpoint's task; a mismatch is a one-line KnetError.
    """
    from knet.models import load_model

    if task is not None:
        check_task(task)
    path = Path(checkpoint)
    if not path.exists():
        raise KnetError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise KnetError(f"checkpoint {path} is a directory, not a file")
    dev = resolve_device(device)
    model = load_model(str(path), device=str(dev))
    model.eval()
    if task is not None and model.task != task:
        raise KnetError(f"checkpoint {path} is a {model.task} model, not {task} (use --task {model.task})")
    return Predictor(model=model, device=dev, batch_size=batch_size)


@dataclass
class Prediction:
    """What `predict_files` yields for one input path: a result, or the error that skipped it."""

    path: str
    image: np.ndarray | None = None
    result: object | None = None  # the final result
    stages: list | None = None  # per-stage results (all_stages=True)
    error: str | None = None
    load_s: float = 0.0
    predict_s: float = 0.0  # the batch's model time divided by the images in it


def predict_files(predictor: Predictor, paths: list[str], *, all_stages: bool = False, tta: bool = False) -> Iterator[Prediction]:
    """Decode and predict `paths` in batches; unreadable images come back with `.error` set."""
    from knet.data.io import load_image

    bs = predictor.batch_size
    for start in range(0, len(paths), bs):
        batch: list[Prediction] = []
        for p in paths[start : start + bs]:
            t0 = time.perf_counter()
            try:
                img = load_image(p)
            except KnetError as exc:
                yield Prediction(path=p, error=str(exc), load_s=time.perf_counter() - t0)
                continue
            batch.append(Prediction(path=p, image=img, load_s=time.perf_counter() - t0))
        if not batch:
            continue
        if predictor.device.type == "cuda":
            torch.cuda.synchronize(predictor.device)
        t0 = time.perf_counter()
        try:
            results = predictor([b.image for b in batch], all_stages=all_stages, tta=tta)
        except KnetError as exc:  # the model rejected these inputs (e.g. an image too small): skip them
            for b in batch:
                b.error = f"{b.path}: {exc}"
                yield b
            continue
        if predictor.device.type == "cuda":
            torch.cuda.synchronize(predictor.device)
        per_image = (time.perf_counter() - t0) / len(batch)
        for b, res in zip(batch, results):
            b.predict_s = per_image
            if all_stages:
                b.stages = list(res)
                b.result = b.stages[-1]
            else:
                b.result = res
            yield b
