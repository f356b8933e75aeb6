"""Full-size key lists of the released MMSegmentation K-Net checkpoints: every key maps and loads.

Each list (fixtures/mmseg_knet_*_keys.txt) becomes a state dict of meta tensors with exactly those
names, shapes and dtypes; the matching preset is built on the meta device (no memory, no compute),
the config inferred from the keys must equal the preset, and the mapped state dict must load with
zero missing and zero unexpected keys.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from knet.errors import KnetError
from knet.models.knet_semantic import (
    SEMANTIC_PRESETS,
    build_semantic_knet,
    semantic_config_from_state_dict,
    semantic_state_dict_from_official,
)

KEY_LISTS = {
    "mmseg_knet_upernet_keys.txt": "knet_s3_upernet_r50_ade20k",
    "mmseg_knet_fcn_keys.txt": "knet_s3_fcn_r50-d8_ade20k",
    "mmseg_knet_pspnet_keys.txt": "knet_s3_pspnet_r50-d8_ade20k",
    "mmseg_knet_deeplabv3_keys.txt": "knet_s3_deeplabv3_r50-d8_ade20k",
    "mmseg_knet_swin_t_upernet_keys.txt": "knet_s3_upernet_swin-t_ade20k",
}


def _meta_state_dict(path) -> dict[str, torch.Tensor]:
    sd = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, shape, dtype = line.split("\t")
        dims = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
        sd[name] = torch.empty(dims, dtype=getattr(torch, dtype), device="meta")
    return sd


@pytest.mark.parametrize("keys_file, preset", sorted(KEY_LISTS.items()))
@pytest.mark.parametrize("keep_aux", [True, False])
def test_full_size_keys_load(fixtures_dir, keys_file, preset, keep_aux):
    sd = _meta_state_dict(fixtures_dir / keys_file)
    inferred = semantic_config_from_state_dict(sd)
    expected = SEMANTIC_PRESETS[preset]()
    assert inferred == expected, {
        f.name: (getattr(inferred, f.name), getattr(expected, f.name))
        for f in dataclasses.fields(expected)
        if getattr(inferred, f.name) != getattr(expected, f.name)
    }
    cfg = dataclasses.replace(expected, aux_head=keep_aux)
    with torch.device("meta"):
        model = build_semantic_knet(cfg)
    mapped = semantic_state_dict_from_official(sd, keep_aux=keep_aux)
    result = model.load_state_dict(mapped, strict=False, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    # every official entry is used, except the rebuilt Swin index buffers (and aux when dropped)
    dropped = [k for k in sd if k.endswith("relative_position_index")]
    if not keep_aux:
        dropped += [k for k in sd if k.startswith("auxiliary_head.")]
    assert len(mapped) == len(sd) - len(dropped)
    assert set(model.state_dict()) == set(mapped)


def test_presets_build_and_describe_published_models():
    assert set(SEMANTIC_PRESETS) >= set(KEY_LISTS.values()) | {
        "knet_s3_upernet_swin-l_ade20k",
        "knet_s3_upernet_swin-l_ade20k_640",
    }
    swin_l = SEMANTIC_PRESETS["knet_s3_upernet_swin-l_ade20k_640"]()
    assert swin_l.test_scale == (2048, 640) and swin_l.backbone_out_channels == (192, 384, 768, 1536)
    with torch.device("meta"):
        model = build_semantic_knet(swin_l)
    sd = model.state_dict()
    assert sd["kernel_generator.head.bottleneck.conv.weight"].shape == (512, 1536 + 4 * 512, 3, 3)
    assert sd["aux_head.head.convs.0.conv.weight"].shape == (256, 768, 3, 3)
    assert len(model.backbone.stages[2].blocks) == 18


def test_config_from_state_dict_rejects_other_families(fixtures_dir):
    det = torch.load(
        fixtures_dir / "knet_s3_r50_fpn_coco_instance_tiny.pth", map_location="cpu", weights_only=True
    )["state_dict"]
    with pytest.raises(KnetError):
        semantic_config_from_state_dict(det)
    sd = _meta_state_dict(fixtures_dir / "mmseg_knet_fcn_keys.txt")
    truncated = {k: v for k, v in sd.items() if not k.startswith("decode_head.kernel_update_head.0.ffn")}
    with pytest.raises(KnetError, match="ffn"):
        semantic_config_from_state_dict(truncated)
    no_backbone = {k: v for k, v in sd.items() if not k.startswith("backbone.")}
    with pytest.raises(KnetError, match="backbone"):
        semantic_config_from_state_dict(no_backbone)


def test_config_dict_round_trip():
    for build in SEMANTIC_PRESETS.values():
        cfg = build()
        assert type(cfg).from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KnetError, match="bogus"):
        type(cfg).from_dict({**cfg.to_dict(), "bogus": 1})


def test_class_names_follow_num_classes():
    from knet.models.semantic_config import SemanticKNetConfig

    assert SemanticKNetConfig(num_classes=3).class_names == ("class_0", "class_1", "class_2")
    assert SemanticKNetConfig(num_classes=2, class_names=("a", "b")).class_names == ("a", "b")
    with pytest.raises(KnetError, match="class names"):
        SemanticKNetConfig(num_classes=2, class_names=("a", "b", "c"))
