"""Checkpoint conversion, knet .safetensors round trip, and one-line errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from knet.cli.main import app
from knet.errors import KnetError
from knet.models import DetKNetConfig, build_model, convert_checkpoint, load_model, save_model
from knet.models.checkpoint import det_config_from_state_dict, read_official
from knet.models.presets import knet_instance_tiny

PANOPTIC = "knet_s3_r50_fpn_coco-panoptic_tiny"
INSTANCE = "knet_s3_r50_fpn_coco_instance_tiny"


def _official(fixtures_dir, name):
    return torch.load(fixtures_dir / f"{name}.pth", map_location="cpu", weights_only=True)


def test_convert_infers_det_configs(fixtures_dir):
    pan = det_config_from_state_dict(_official(fixtures_dir, PANOPTIC)["state_dict"])
    assert (pan.task, pan.num_thing_classes, pan.num_stuff_classes) == ("panoptic", 80, 53)
    assert (pan.channels, pan.num_kernels, pan.num_stages, pan.depth, pan.base_channels) == (64, 100, 3, 50, 8)
    assert (pan.feedforward_channels, pan.updator_channels, pan.fpn_channels, pan.pe_num_feats) == (256, 64, 64, 32)
    ins = det_config_from_state_dict(_official(fixtures_dir, INSTANCE)["state_dict"])
    assert (ins.task, ins.num_classes, ins.num_stuff_classes) == ("instance", 80, 0)


def test_class_names_from_meta_or_coco_default(fixtures_dir, tmp_path):
    ck = _official(fixtures_dir, PANOPTIC)
    cfg, _ = read_official(fixtures_dir / f"{PANOPTIC}.pth")
    assert cfg.class_names[7] == "truck"  # meta has ' truck': names are stripped
    torch.save(ck["state_dict"], tmp_path / "bare.pth")  # no wrapper, no meta
    cfg_bare, _ = read_official(tmp_path / "bare.pth")
    assert cfg_bare.class_names == cfg.class_names and len(cfg_bare.class_names) == 133


@torch.inference_mode()
def test_safetensors_round_trip_identical(fixtures_dir, tmp_path):
    dst, cfg = convert_checkpoint(fixtures_dir / f"{INSTANCE}.pth", tmp_path / "inst.safetensors")
    assert dst.exists() and isinstance(cfg, DetKNetConfig)
    a = load_model(fixtures_dir / f"{INSTANCE}.pth")
    b = load_model(dst)
    assert b.task == "instance" and b.config == a.config and b.class_names == a.class_names
    x = torch.from_numpy(np.load(fixtures_dir / f"{INSTANCE}_input.npy"))
    oa, ob = a.forward_stages(x), b.forward_stages(x)
    for sa, sb in zip(oa, ob):
        assert torch.equal(sa["mask_logits"], sb["mask_logits"])
    with pytest.raises(KnetError, match="exists"):
        convert_checkpoint(fixtures_dir / f"{INSTANCE}.pth", dst)
    convert_checkpoint(fixtures_dir / f"{INSTANCE}.pth", dst, overwrite=True)


def test_save_model_of_a_fresh_model(tmp_path):
    model = build_model(knet_instance_tiny())
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(KnetError, match="exists"):
        save_model(model, tmp_path / "m.safetensors")


def _one_line_error(fn, match: str) -> None:
    with pytest.raises(KnetError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_missing_and_unexpected_keys_are_listed(fixtures_dir, tmp_path):
    sd = dict(_official(fixtures_dir, PANOPTIC)["state_dict"])
    del sd["roi_head.mask_head.1.fc_mask.bias"]
    sd["roi_head.mask_head.1.extra.weight"] = torch.zeros(3)
    torch.save({"state_dict": sd}, tmp_path / "bad.pth")
    _one_line_error(
        lambda: load_model(tmp_path / "bad.pth"),
        r"missing key\(s\): update_stages\.1\.fc_mask\.bias.*unexpected key\(s\): update_stages\.1\.extra\.weight",
    )


def test_bad_files_give_one_line_errors(fixtures_dir, tmp_path):
    src = (fixtures_dir / f"{PANOPTIC}.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(src[: len(src) // 3])
    _one_line_error(lambda: load_model(tmp_path / "trunc.pth"), "truncated or corrupt")
    _one_line_error(lambda: load_model(fixtures_dir / f"{PANOPTIC}.json"), "not a PyTorch checkpoint")
    _one_line_error(lambda: load_model(tmp_path / "nope.pth"), "no such checkpoint file")
    torch.save({"state_dict": {"classifier.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    _one_line_error(lambda: load_model(tmp_path / "other.pth"), "not a K-Net checkpoint")
    mask_rcnn = {"rpn_head.rpn_conv.weight": torch.zeros(4, 4, 3, 3), "roi_head.bbox_head.fc_cls.weight": torch.zeros(81, 4)}
    torch.save({"state_dict": mask_rcnn, "meta": {}}, tmp_path / "mask_rcnn.pth")
    _one_line_error(lambda: load_model(tmp_path / "mask_rcnn.pth"), "not K-Net")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    _one_line_error(lambda: load_model(tmp_path / "list.pth"), "not a checkpoint")
    sd = dict(_official(fixtures_dir, PANOPTIC)["state_dict"])
    sd["backbone.layer2.0.conv2.conv_offset.weight"] = torch.zeros(18, 16, 3, 3)
    torch.save(sd, tmp_path / "dcn.pth")
    _one_line_error(lambda: load_model(tmp_path / "dcn.pth"), "DCN")


def test_meta_with_foreign_objects_still_loads(fixtures_dir, tmp_path):
    ck = _official(fixtures_dir, INSTANCE)
    ck["meta"]["hook_msgs"] = {"best": np.float64(0.5)}  # not allowed by weights_only loading
    torch.save(ck, tmp_path / "meta.pth")
    model = load_model(tmp_path / "meta.pth")
    assert model.task == "instance"


def test_cli_convert(fixtures_dir, tmp_path):
    runner = CliRunner()
    dst = tmp_path / "pan.safetensors"
    r = runner.invoke(app, ["convert", str(fixtures_dir / f"{PANOPTIC}.pth"), str(dst)])
    assert r.exit_code == 0, r.output
    assert "panoptic" in r.output and "133 (80 thing + 53 stuff)" in r.output and dst.exists()
    r = runner.invoke(app, ["convert", str(fixtures_dir / f"{PANOPTIC}.pth"), str(dst)])
    assert r.exit_code == 2 and "exists" in r.output
    (tmp_path / "trunc.pth").write_bytes((fixtures_dir / f"{PANOPTIC}.pth").read_bytes()[:5000])
    r = runner.invoke(app, ["convert", str(tmp_path / "trunc.pth"), str(tmp_path / "t.safetensors")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("knet: error:")]) == 1
    r = runner.invoke(app, ["convert", str(dst), str(tmp_path / "again.safetensors")])
    assert r.exit_code == 2 and "already a .safetensors" in r.output


def test_top_level_load_model(fixtures_dir):
    import knet

    assert knet.load_model(fixtures_dir / f"{INSTANCE}.pth").task == "instance"
