"""Semantic K-Net against the MMSegmentation fixtures: module by module and end to end.

Contract (fixtures/README.md): float arrays within 1e-4 * max|a| + 1e-5; `pred_label` equal
wherever `pred_top2_gap >= 1e-3`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from knet.models.knet_semantic import (
    SemanticKNet,
    build_semantic_knet,
    semantic_config_from_state_dict,
    semantic_state_dict_from_official,
)

FIXTURES = ["knet_s3_upernet_r50_ade20k_tiny", "knet_s3_fcn_r50-d8_ade20k_tiny"]


def _check(name: str, a: np.ndarray, b: torch.Tensor) -> None:
    b_np = b.detach().cpu().numpy()
    assert a.shape == b_np.shape, f"{name}: shape {b_np.shape} != {a.shape}"
    diff = float(np.abs(a.astype(np.float64) - b_np).max())
    tol = 1e-4 * float(np.abs(a).max()) + 1e-5
    assert diff <= tol, f"{name}: max abs diff {diff:.3g} > {tol:.3g}"


@pytest.fixture(scope="module", params=FIXTURES)
def case(request, fixtures_dir):
    name = request.param
    ckpt = torch.load(fixtures_dir / f"{name}.pth", map_location="cpu", weights_only=True)
    sd = ckpt["state_dict"]
    cfg = semantic_config_from_state_dict(sd)
    model = build_semantic_knet(cfg)
    missing, unexpected = model.load_state_dict(semantic_state_dict_from_official(sd), strict=True)
    assert not missing and not unexpected
    model.eval()
    x = torch.from_numpy(np.load(fixtures_dir / f"{name}_input.npy"))
    ref = dict(np.load(fixtures_dir / f"{name}_outputs.npz"))
    return name, model, x, ref, ckpt["meta"]


def test_inferred_config(case):
    name, model, _, _, meta = case
    cfg = model.config
    assert cfg.head == ("upernet" if "upernet" in name else "fcn")
    assert cfg.dilated == ("fcn" in name)
    assert (cfg.backbone, cfg.depth, cfg.stem_channels, cfg.base_channels) == ("resnet_v1c", 50, 8, 8)
    assert (cfg.channels, cfg.num_classes, cfg.num_stages) == (64, 150, 3)
    assert (cfg.feedforward_channels, cfg.updator_channels, cfg.num_mask_fcs) == (256, 32, 1)
    assert cfg.aux_head and cfg.aux_channels == 32
    assert [c.strip() for c in meta["CLASSES"]] == list(model.class_names)
    assert model.task == "semantic"


def test_module_by_module(case):
    _, model, x, ref, _ = case
    with torch.no_grad():
        feats = model.backbone(x)
        for i, f in enumerate(feats):
            _check(f"backbone_c{i + 2}", ref[f"backbone_c{i + 2}"], f)
        saved = [torch.from_numpy(ref[f"backbone_c{i}"]) for i in range(2, 6)]
        generated = model.kernel_generator.head(saved)
        _check("generate_head_feats", ref["generate_head_feats"], generated)
        saved_feats = torch.from_numpy(ref["generate_head_feats"])
        _, logits, kernels = model.kernel_generator(saved)
        _check("stage0_mask_logits", ref["stage0_mask_logits"], logits)
        _check("stage0_kernels", ref["stage0_kernels"], kernels)
        _check("conv_seg", ref["stage0_mask_logits"], model.kernel_generator.conv_seg(saved_feats))
        for s, stage in enumerate(model.kernel_update_stages, start=1):
            prev_k = torch.from_numpy(ref[f"stage{s - 1}_kernels"])
            prev_m = torch.from_numpy(ref[f"stage{s - 1}_mask_logits"])
            cls, m, k = stage(saved_feats, prev_k, prev_m)
            assert cls is None
            _check(f"stage{s}_mask_logits", ref[f"stage{s}_mask_logits"], m)
            _check(f"stage{s}_kernels", ref[f"stage{s}_kernels"], k)
    result = model.postprocess(
        {"mask_logits": torch.from_numpy(ref["stage3_mask_logits"])}, ori_shape=x.shape[-2:]
    )
    sure = ref["pred_top2_gap"] >= 1e-3
    assert np.array_equal(result.label[sure], ref["pred_label"][sure])


def test_end_to_end(case):
    _, model, x, ref, _ = case
    with torch.no_grad():
        outs = model.forward_stages(x)
    assert len(outs) == 4
    for s, out in enumerate(outs):
        assert out["cls_logits"] is None
        _check(f"stage{s}_mask_logits", ref[f"stage{s}_mask_logits"], out["mask_logits"])
        _check(f"stage{s}_kernels", ref[f"stage{s}_kernels"], out["kernels"])
        assert "aux_logits" not in out  # eval mode
    result = model.postprocess(outs[-1], ori_shape=x.shape[-2:], input_shape=x.shape[-2:])
    assert result.label.dtype == np.int64 and result.label.shape == ref["pred_label"].shape
    sure = ref["pred_top2_gap"] >= 1e-3
    assert np.array_equal(result.label[sure], ref["pred_label"][sure])
    assert (result.label == ref["pred_label"]).mean() >= 0.999


def test_training_mode_carries_aux_logits(case):
    _, model, x, _, _ = case
    assert isinstance(model, SemanticKNet)
    model.train()
    try:
        outs = model.forward_stages(torch.cat([x, x.flip(-1)]))  # BN needs > 1 value per channel
        aux = outs[0]["aux_logits"]
        assert aux.shape[:2] == (2, 150)
        loss = sum(o["mask_logits"].float().mean() for o in outs) + aux.mean()
        loss.backward()
        assert model.kernel_generator.conv_seg.weight.grad is not None
        assert model.kernel_update_stages[0].fc_mask.weight.grad is not None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_convert_and_load_model_round_trip(fixtures_dir, tmp_path):
    """knet.models.convert_checkpoint / load_model (checkpoint.py) on the semantic fixtures."""
    from knet.models import convert_checkpoint, load_model

    for name in FIXTURES:
        ref = np.load(fixtures_dir / f"{name}_outputs.npz")
        x = torch.from_numpy(np.load(fixtures_dir / f"{name}_input.npy"))
        dst, cfg = convert_checkpoint(fixtures_dir / f"{name}.pth", tmp_path / f"{name}.safetensors")
        for path in (fixtures_dir / f"{name}.pth", dst):
            model = load_model(path)
            model.eval()
            assert model.task == "semantic" and model.config == cfg
            with torch.no_grad():
                out = model.forward_stages(x)[-1]
            _check(f"{path.suffix} stage3_mask_logits", ref["stage3_mask_logits"], out["mask_logits"])


def test_meta_gives_class_names_and_640_scale(fixtures_dir):
    sd = torch.load(fixtures_dir / f"{FIXTURES[0]}.pth", map_location="cpu", weights_only=True)["state_dict"]
    classes = [f"c{i}" for i in range(150)]
    cfg = semantic_config_from_state_dict(
        sd, {"CLASSES": classes, "config": "knet-s3_swin-l_upernet_8xb2-adamw-80k_ade20k-640x640"}
    )
    assert cfg.class_names == tuple(classes) and cfg.test_scale == (2048, 640)
