"""Instance / panoptic K-Net against the original code's outputs (fixtures/README.md contract).

Module by module (each module gets the saved outputs of the one before it) and end to end, on
both inference paths of the neck and kernel generator convs: "direct" (F.conv2d) and "winograd"
(NNPACK Winograd, forced on every eligible conv of the compact fixture models whatever their
width and the thread count). The opt-in fused backbone is checked module by module only: end to
end it does not hold the contract (see DetKNet.extract_features).
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch

from knet.models import load_model
from knet.models.det_postprocess import instance_postprocess, panoptic_postprocess
from knet.models.fast_conv import nnpack_available, set_winograd

NAMES = {
    "instance": "knet_s3_r50_fpn_coco_instance_tiny",
    "panoptic": "knet_s3_r50_fpn_coco-panoptic_tiny",
}


def close(ref: np.ndarray, ours: torch.Tensor | np.ndarray, name: str) -> None:
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    assert ref.shape == ours.shape, f"{name}: shape {ours.shape} != {ref.shape}"
    diff = np.abs(ref.astype(np.float64) - ours).max()
    bound = 1e-4 * np.abs(ref).max() + 1e-5
    assert diff <= bound, f"{name}: max |diff| {diff:.3g} > {bound:.3g}"


class Fixture:
    def __init__(self, fixtures_dir, task: str, tmp_path_factory) -> None:
        name = NAMES[task]
        self.task = task
        self.ref = dict(np.load(fixtures_dir / f"{name}_outputs.npz"))
        self.x = torch.from_numpy(np.load(fixtures_dir / f"{name}_input.npy"))
        meta = json.loads((fixtures_dir / f"{name}.json").read_text())["img_metas"][0]
        self.shapes = dict(
            img_shape=tuple(meta["img_shape"][:2]),
            ori_shape=tuple(meta["ori_shape"][:2]),
            batch_shape=tuple(meta["batch_input_shape"]),
        )
        self.model = load_model(fixtures_dir / f"{name}.pth")  # converted on the fly

    def t(self, key: str) -> torch.Tensor:
        return torch.from_numpy(self.ref[key])


@pytest.fixture(scope="module", params=["instance", "panoptic"])
def fx(request, fixtures_dir, tmp_path_factory) -> Fixture:
    return Fixture(fixtures_dir, request.param, tmp_path_factory)


PATHS = ["direct", pytest.param("winograd", marks=pytest.mark.skipif(not nnpack_available(), reason="no NNPACK"))]


@contextlib.contextmanager
def conv_path(model, path: str):
    """Neck + kernel generator convs on `path` for the duration; back to the config's choice after."""
    try:
        for part in (model.fpn, model.kernel_generator):
            n = set_winograd(part, enabled=path == "winograd", min_channels=1, max_threads=1024)
            assert n > 0
        yield
    finally:
        for part in (model.fpn, model.kernel_generator):
            set_winograd(part, enabled=model.config.winograd_convs)


@torch.inference_mode()
def test_backbone(fx):
    outs = fx.model.backbone(fx.x)
    for i, out in enumerate(outs):
        close(fx.ref[f"backbone_c{i + 2}"], out, f"backbone_c{i + 2}")


@torch.inference_mode()
def test_fused_backbone(fx):
    """The opt-in BN-folded channels-last backbone holds the per-array tolerance (not end to end)."""
    outs = fx.model._inference_backbone()(fx.x.contiguous(memory_format=torch.channels_last))
    for i, out in enumerate(outs):
        close(fx.ref[f"backbone_c{i + 2}"], out, f"fused backbone_c{i + 2}")


@pytest.mark.parametrize("path", PATHS)
@torch.inference_mode()
def test_fpn(fx, path):
    with conv_path(fx.model, path):
        outs = fx.model.fpn([fx.t(f"backbone_c{i}") for i in range(2, 6)])
    for i, out in enumerate(outs):
        close(fx.ref[f"fpn_p{i + 2}"], out, f"fpn_p{i + 2}")


@pytest.mark.parametrize("path", PATHS)
@torch.inference_mode()
def test_localization_fpn(fx, path):
    with conv_path(fx.model, path):
        loc, sem = fx.model.kernel_generator.localization_fpn([fx.t(f"fpn_p{i}") for i in range(2, 6)])
    close(fx.ref["semantic_fpn_loc_feats"], loc, "loc_feats")
    close(fx.ref["semantic_fpn_sem_feats"], sem, "sem_feats")


@pytest.mark.parametrize("path", PATHS)
@torch.inference_mode()
def test_kernel_generator(fx, path):
    with conv_path(fx.model, path):
        init = fx.model.kernel_generator([fx.t(f"fpn_p{i}") for i in range(2, 6)])
    close(fx.ref["x_feats"], init.feats, "x_feats")
    close(fx.ref["rpn_seg_preds"], init.seg_logits, "rpn_seg_preds")
    close(fx.ref["stage0_mask_logits"], init.mask_logits, "stage0_mask_logits")
    close(fx.ref["stage0_kernels"], init.kernels, "stage0_kernels")


@pytest.mark.parametrize("stage", [1, 2, 3])
@torch.inference_mode()
def test_update_stage(fx, stage):
    head = fx.model.update_stages[stage - 1]
    cls, masks, kernels = head(fx.t("x_feats"), fx.t(f"stage{stage - 1}_kernels"), fx.t(f"stage{stage - 1}_mask_logits"))
    close(fx.ref[f"stage{stage}_cls_score"], cls, "cls")
    close(fx.ref[f"stage{stage}_mask_logits"], masks, "masks")
    close(fx.ref[f"stage{stage}_kernels"], kernels, "kernels")


def check_result(fx, result) -> None:
    ref = fx.ref
    oh, ow = fx.shapes["ori_shape"]
    if fx.task == "instance":
        def unpack(bits):
            return np.unpackbits(bits, axis=1, count=oh * ow).reshape(-1, oh, ow).astype(bool)

        np.testing.assert_array_equal(result.labels, ref["inst_labels"])
        np.testing.assert_array_equal(result.kernel_index, ref["inst_kernel_index"])
        assert np.abs(result.scores - ref["inst_scores"]).max() <= 1e-5
        masks, flagged = unpack(ref["inst_masks_packbits"]), unpack(ref["inst_masks_ambiguous_packbits"])
        assert result.masks.shape == masks.shape and result.masks.dtype == bool
        assert not ((result.masks != masks) & ~flagged).any()
        area_diff = np.abs(result.masks.sum((1, 2)) - ref["inst_mask_area"])
        assert (area_diff <= flagged.sum((1, 2))).all()
    else:
        # fixture ids: label + 1000 * (writing index), VOID = 133
        ids = np.full((oh, ow), 133, dtype=np.int64)
        for seg in result.segments:
            ids[result.segment_map == seg.id] = seg.label + 1000 * (seg.id - 1)
        sure = ref["pan_top2_rel_gap"] >= 1e-4
        assert not ((ids != ref["pan_results"]) & sure).any()
        assert [s.id - 1 for s in result.segments] == list(ref["pan_segment_id"])
        assert [s.label for s in result.segments] == list(ref["pan_segment_label"])
        assert [s.kernel_index for s in result.segments] == list(ref["pan_segment_kernel_index"])
        assert [s.is_thing for s in result.segments] == [lab < 80 for lab in ref["pan_segment_label"]]
        scores = np.array([s.score for s in result.segments])
        assert np.abs(scores - ref["pan_segment_score"]).max() <= 1e-4
        skipped = int((~sure).sum())
        assert (np.abs(np.array([s.area for s in result.segments]) - ref["pan_segment_area"]) <= skipped).all()
        for seg in result.segments:
            assert seg.area == int((result.segment_map == seg.id).sum())


@torch.inference_mode()
def test_postprocess_from_saved_stage3(fx):
    cls, masks = fx.t("stage3_cls_score")[0], fx.t("stage3_mask_logits")[0]
    if fx.task == "instance":
        result = instance_postprocess(cls, masks, **fx.shapes)
    else:
        result = panoptic_postprocess(cls, masks, num_kernels=100, num_thing_classes=80, **fx.shapes)
    check_result(fx, result)


@pytest.mark.parametrize("path", PATHS)
@torch.inference_mode()
def test_end_to_end(fx, path):
    with conv_path(fx.model, path):
        outputs = fx.model.forward_stages(fx.x)
    assert len(outputs) == 4 and outputs[0]["cls_logits"] is None
    for s, out in enumerate(outputs):
        close(fx.ref[f"stage{s}_mask_logits"], out["mask_logits"], f"stage{s}_mask_logits")
        close(fx.ref[f"stage{s}_kernels"], out["kernels"], f"stage{s}_kernels")
        if s > 0:
            close(fx.ref[f"stage{s}_cls_score"], out["cls_logits"], f"stage{s}_cls_score")
    close(fx.ref["rpn_seg_preds"], outputs[0]["seg_logits"], "seg_logits")
    check_result(fx, fx.model.postprocess(outputs[-1], **fx.shapes))


@pytest.mark.parametrize("path", PATHS)
@torch.inference_mode()
def test_end_to_end_one_thread(fx, path):
    """On one thread (the bench's setting) the backbone's 1x1 convs take oneDNN as PyTorch does on
    the fixtures' two (knet.models.onednn_conv): the contract holds there too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outs = fx.model.backbone(fx.x)
        for i, out in enumerate(outs):
            close(fx.ref[f"backbone_c{i + 2}"], out, f"backbone_c{i + 2}")
        with conv_path(fx.model, path):
            outputs = fx.model.forward_stages(fx.x)
        for s, out in enumerate(outputs):
            close(fx.ref[f"stage{s}_mask_logits"], out["mask_logits"], f"stage{s}_mask_logits")
            close(fx.ref[f"stage{s}_kernels"], out["kernels"], f"stage{s}_kernels")
            if s > 0:
                close(fx.ref[f"stage{s}_cls_score"], out["cls_logits"], f"stage{s}_cls_score")
        check_result(fx, fx.model.postprocess(outputs[-1], **fx.shapes))
    finally:
        torch.set_num_threads(before)
