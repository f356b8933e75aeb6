"""Full-size key lists of the released instance / panoptic K-Net checkpoints: every key converts and loads.

Each list (fixtures/official_knet_*_keys.txt) becomes a state dict of meta tensors with exactly
those names, shapes and dtypes; the config inferred from it must equal the matching preset, and
the converted state dict must load into the preset (built on the meta device) with zero missing
and zero unexpected keys. Swin-L and R-101 (no released key lists here) are checked by mapping a
preset's own keys back to the official names and converting them again.
"""

from __future__ import annotations

import pytest
import torch

from knet.models import PRESETS, build_model
from knet.models.checkpoint import _DET_RENAMES, convert_state_dict, load_into

KEY_LISTS = {
    "official_knet_instance_keys.txt": "knet_s3_r50_fpn_1x_coco",
    "official_knet_panoptic_keys.txt": "knet_s3_r50_fpn_1x_coco-panoptic",
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


def _check(sd: dict[str, torch.Tensor], preset: str) -> None:
    cfg, converted = convert_state_dict(sd)
    expected = PRESETS[preset]()
    assert cfg == expected
    with torch.device("meta"):
        model = build_model(expected)
    load_into(model, converted, source=preset, assign=True)  # raises on any missing / unexpected key
    assert len(converted) == len(model.state_dict())


@pytest.mark.parametrize("key_list", sorted(KEY_LISTS))
def test_official_key_list_loads(fixtures_dir, key_list):
    sd = _meta_state_dict(fixtures_dir / key_list)
    header = (fixtures_dir / key_list).read_text().splitlines()[0]
    assert f"{len(sd)} entries" in header
    _check(sd, KEY_LISTS[key_list])
    with torch.device("meta"):
        model = build_model(PRESETS[KEY_LISTS[key_list]]())
    n_params = sum(p.numel() for p in model.parameters())
    assert f"params {n_params}" in header


def _official_names(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in model.state_dict().items():
        for official, ours in _DET_RENAMES:
            if key.startswith(ours):
                key = official + key[len(ours):]
                break
        out[key] = torch.empty(value.shape, dtype=value.dtype, device="meta")
    return out


@pytest.mark.parametrize(
    "preset",
    ["knet_s3_r101_fpn_ms-3x_coco", "knet_s3_r101_fpn_ms-3x_coco-panoptic", "knet_s3_swin-l_fpn_ms-3x_16x2_coco-panoptic"],
)
def test_other_presets_round_trip_through_official_names(preset):
    with torch.device("meta"):
        model = build_model(PRESETS[preset]())
    sd = _official_names(model)
    if "swin" in preset:  # mmdet keeps the window index buffers in the checkpoint
        for s, depth in enumerate(PRESETS[preset]().swin_depths):
            for b in range(depth):
                sd[f"backbone.stages.{s}.blocks.{b}.attn.w_msa.relative_position_index"] = torch.empty(
                    49, 49, dtype=torch.int64, device="meta"
                )
    _check(sd, preset)
