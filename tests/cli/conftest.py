from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from knet.errors import KnetError
from knet.structures import InstanceResult, PanopticResult, SemanticResult, Segment


# A deterministic stand-in for a K-Net model (same attributes and predict/forward_stages API), so
# the CLI tests run without trained weights: bright blobs are things, top/bottom halves stuff; each
# stage grows the blobs less, so the stage figure shows a refinement.
CLASS_NAMES = ["blob", "ring", "sky", "ground"]  # things first, then stuff
NUM_THINGS = 2


class FakeModel(torch.nn.Module):
    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task
        self.class_names = list(CLASS_NAMES)
        self.num_thing_classes = NUM_THINGS
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.calls: list[int] = []

    def forward_stages(self, x: torch.Tensor) -> list[dict]:
        f = self.conv(x)
        return [{"mask_logits": f, "cls_logits": None} for _ in range(4)]

    def _blobs(self, img: np.ndarray, grow: int) -> list[np.ndarray]:
        bright = img.astype(np.float32).mean(axis=2) > 170
        lab, n = ndimage.label(bright)
        masks = [lab == i for i in range(1, n + 1)]
        if grow > 0:
            masks = [ndimage.binary_dilation(m, iterations=grow) for m in masks]
        return masks

    def _one(self, img: np.ndarray, grow: int):
        h, w = img.shape[:2]
        blobs = self._blobs(img, grow)
        if self.task == "semantic":
            label = np.full((h, w), 2, np.int64)
            label[h // 2 :] = 3
            for m in blobs:
                label[m] = 0
            return SemanticResult(label=label)
        if self.task == "instance":
            k = len(blobs)
            masks = np.stack(blobs) if k else np.zeros((0, h, w), bool)
            scores = np.linspace(0.9, 0.5, k).astype(np.float32) if k else np.zeros(0, np.float32)
            return InstanceResult(scores=scores, labels=np.arange(k, dtype=np.int64) % NUM_THINGS, masks=masks)
        seg = np.zeros((h, w), np.int32)
        seg[: h // 2] = 1
        seg[h // 2 :] = 2
        seg[:2, :2] = 0  # a little VOID
        segments = []
        for i, m in enumerate(blobs):
            seg[m] = 3 + i
        for sid, label, thing, score in [(1, 2, False, 0.8), (2, 3, False, 0.7)] + [
            (3 + i, i % NUM_THINGS, True, 0.9 - 0.1 * i) for i in range(len(blobs))
        ]:
            area = int((seg == sid).sum())
            if area:
                segments.append(Segment(id=sid, label=label, is_thing=thing, score=score, area=area))
        return PanopticResult(segment_map=seg, segments=segments)

    def predict(self, images, *, all_stages: bool = False, tta: bool = False):
        self.calls.append(len(images))
        if any(min(img.shape[:2]) < 8 for img in images):
            raise KnetError("image too small for this model (min side 8)")
        if all_stages:
            return [[self._one(img, g) for g in (6, 3, 1, 0)] for img in images]
        return [self._one(img, 0) for img in images]


REPO = Path(__file__).resolve().parents[2]
KNET_BIN = REPO / ".venv" / "bin" / "knet"


def make_image(h: int, w: int, seed: int) -> np.ndarray:
    """Grey noise with two bright discs (the fake model's 'things')."""
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 60 + 60).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for cy, cx, r in [(h * 0.3, w * 0.3, min(h, w) * 0.15), (h * 0.65, w * 0.7, min(h, w) * 0.2)]:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (230, 220, 200)
    return img


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    """Three readable images of odd sizes (PNG and JPEG) in one folder."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(make_image(97, 131, 0)).save(d / "a.png")
    Image.fromarray(make_image(120, 160, 1)).save(d / "b.png")
    Image.fromarray(make_image(64, 81, 2)).save(d / "c.jpg", quality=95)
    return d


@pytest.fixture
def corrupt_image(tmp_path: Path) -> Path:
    p = tmp_path / "broken.png"
    buf = io.BytesIO()
    Image.fromarray(make_image(50, 50, 3)).save(buf, format="PNG")
    p.write_bytes(buf.getvalue()[:60])  # truncated PNG
    return p


@pytest.fixture
def fake_checkpoint(monkeypatch, tmp_path: Path):
    """checkpoint(task) -> path of a '.fake' file that knet.models.load_model turns into FakeModel."""
    import knet.models

    real = getattr(knet.models, "load_model", None)
    loaded: list[FakeModel] = []

    def load_model(path, *, device="cpu"):
        p = Path(path)
        if p.suffix == ".fake":
            m = FakeModel(p.read_text().strip()).to(device)
            loaded.append(m)
            return m
        if real is None:
            raise KnetError(f"checkpoint {p} is not a knet checkpoint (models not available yet)")
        return real(path, device=device)

    monkeypatch.setattr(knet.models, "load_model", load_model, raising=False)

    def make(task: str) -> Path:
        p = tmp_path / f"{task}.fake"
        p.write_text(task)
        return p

    make.loaded = loaded
    return make


def tiny_config(task: str):
    """A published preset with tiny widths (random init): fast enough for CLI tests."""
    import dataclasses

    from knet.models.presets import PRESETS

    if task == "semantic":
        cfg = PRESETS["knet_s3_upernet_r50_ade20k"]()
        return dataclasses.replace(
            cfg, base_channels=8, stem_channels=8, channels=32, feedforward_channels=32, updator_channels=16, num_heads=2,
            aux_channels=8, num_classes=4, class_names=("wall", "floor", "sky", "tree"), test_scale=(96, 64),
        )
    name = {"instance": "knet_s3_r50_fpn_1x_coco", "panoptic": "knet_s3_r50_fpn_1x_coco-panoptic"}[task]
    cfg = PRESETS[name]() if name in PRESETS else pytest.skip(f"no {name} preset")
    things, stuff = ("circle", "square"), (("sky", "ground") if task == "panoptic" else ())
    return dataclasses.replace(
        cfg, base_channels=8, fpn_channels=32, channels=32, pe_num_feats=16, gn_groups=8, num_kernels=6, num_heads=2,
        feedforward_channels=32, updator_channels=16, num_thing_classes=2, num_stuff_classes=len(stuff),
        class_names=things + stuff, test_scale=(96, 64),
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """checkpoint(task) -> a real knet .safetensors of a tiny randomly initialised model."""
    import knet.models

    if not all(hasattr(knet.models, n) for n in ("build_model", "save_model", "load_model")):
        pytest.skip("knet.models.build_model/save_model/load_model not available yet")
    d = tmp_path_factory.mktemp("tiny_ckpt")
    cache: dict[str, Path] = {}

    def make(task: str) -> Path:
        if task not in cache:
            torch.manual_seed(0)
            model = knet.models.build_model(tiny_config(task))
            path = d / f"tiny_{task}.safetensors"
            knet.models.save_model(model, str(path))
            cache[task] = path
        return cache[task]

    return make
