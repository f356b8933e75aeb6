"""MMSegmentation semantic K-Net checkpoints: infer the config from keys/shapes, rename the keys.

Official layout (spec 7.2; fixtures/mmseg_knet_*_keys.txt are the ground truth):

    backbone.*                                   -> backbone.*
    decode_head.kernel_generate_head.conv_seg.*  -> kernel_generator.conv_seg.*
    decode_head.kernel_generate_head.*           -> kernel_generator.head.*
    decode_head.kernel_update_head.{i}.*         -> kernel_update_stages.{i}.*
    auxiliary_head.conv_seg.*                    -> aux_head.conv_seg.*
    auxiliary_head.*                             -> aux_head.head.*

Swin `relative_position_index` buffers are dropped: they are a deterministic function of the
window size, which our backbone rebuilds. Keys outside these prefixes pass through unchanged,
so the strict load reports them as unexpected.

What the shapes cannot tell and how it is decided:
* dilation: FCN / PSP / ASPP models are the D8 ResNet, UPerNet is not dilated (the released set);
* PSP / UPerNet pool scales (1,2,3,6) and ASPP dilations (1,12,24,36): only their count is checked;
* attention heads: 8 (every release);
* test scale: (2048, 512), or (2048, 640) when the checkpoint meta's config name says 640x640
  (the Swin-L 640 model has the same shapes as the 512 one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from knet.errors import KnetError
from knet.models.semantic_config import SemanticKNetConfig

GENERATE = "decode_head.kernel_generate_head."
UPDATE = "decode_head.kernel_update_head."
AUX = "auxiliary_head."

_RESNET_DEPTH_BY_STAGE3_BLOCKS = {6: 50, 23: 101}


def is_semantic_state_dict(sd: Mapping[str, object]) -> bool:
    """True for MMSegmentation K-Net checkpoints (a kernel generate head under decode_head)."""
    return any(k.startswith(GENERATE) for k in sd)


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise KnetError(f"semantic K-Net checkpoint lacks '{key}'")
    return tuple(sd[key].shape)


def _indices(sd: Mapping[str, object], pattern: str) -> list[int]:
    """Sorted distinct integers captured by `pattern` (a regex with one group) over the keys."""
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in sd if (m := rx.match(k))}
    return sorted(found)


def _backbone_fields(sd: Mapping[str, torch.Tensor]) -> dict[str, object]:
    if "backbone.patch_embed.projection.weight" in sd:
        embed, _, patch, _ = _shape(sd, "backbone.patch_embed.projection.weight")
        stages = _indices(sd, r"backbone\.stages\.(\d+)\.")
        depths, heads = [], []
        window = 0
        for s in stages:
            blocks = _indices(sd, rf"backbone\.stages\.{s}\.blocks\.(\d+)\.")
            depths.append(len(blocks))
            rows, nh = _shape(sd, f"backbone.stages.{s}.blocks.0.attn.w_msa.relative_position_bias_table")
            heads.append(nh)
            window = (math.isqrt(rows) + 1) // 2  # table has (2w-1)^2 rows
        hidden = _shape(sd, "backbone.stages.0.blocks.0.ffn.layers.0.0.weight")[0]
        if len(stages) != 4:
            raise KnetError(f"Swin backbone with {len(stages)} stages is not supported (expected 4)")
        return {
            "backbone": "swin",
            "swin_embed_channels": embed,
            "swin_depths": tuple(depths),
            "swin_num_heads": tuple(heads),
            "swin_window_size": window,
            "swin_mlp_ratio": hidden / embed,
            "swin_patch_size": patch,
            "drop_path_rate": 0.3,
        }
    if "backbone.stem.0.weight" in sd:
        stem = _shape(sd, "backbone.stem.6.weight")[0]
        base = _shape(sd, "backbone.layer1.0.conv1.weight")[0]
        blocks3 = len(_indices(sd, r"backbone\.layer3\.(\d+)\."))
        if blocks3 not in _RESNET_DEPTH_BY_STAGE3_BLOCKS:
            raise KnetError(f"ResNet with {blocks3} blocks in stage 3 is not supported (ResNet-50/101 only)")
        if any(".conv_offset." in k for k in sd):
            raise KnetError("ResNet with deformable convolutions (DCN) is not supported yet")
        return {
            "backbone": "resnet_v1c",
            "depth": _RESNET_DEPTH_BY_STAGE3_BLOCKS[blocks3],
            "stem_channels": stem,
            "base_channels": base,
        }
    if "backbone.conv1.weight" in sd:
        raise KnetError("semantic K-Net with a 7x7-stem ResNet is not a released model (ResNetV1c or Swin only)")
    raise KnetError("semantic K-Net checkpoint has no recognisable backbone (ResNetV1c or Swin)")


def _head_fields(sd: Mapping[str, torch.Tensor]) -> dict[str, object]:
    num_classes, channels = _shape(sd, GENERATE + "conv_seg.weight")[:2]
    fields: dict[str, object] = {"num_classes": num_classes, "channels": channels}
    if any(k.startswith(GENERATE + "lateral_convs.") for k in sd):
        fields["head"] = "upernet"
    elif any(k.startswith(GENERATE + "aspp_modules.") for k in sd):
        fields["head"] = "aspp"
        n = len(_indices(sd, re.escape(GENERATE) + r"aspp_modules\.(\d+)\."))
        if n != 4:
            raise KnetError(f"ASPP generate head with {n} branches: only the released 4 (1,12,24,36) are known")
    elif any(k.startswith(GENERATE + "psp_modules.") for k in sd):
        fields["head"] = "psp"
    elif any(k.startswith(GENERATE + "convs.") for k in sd):
        fields["head"] = "fcn"
        fields["fcn_num_convs"] = len(_indices(sd, re.escape(GENERATE) + r"convs\.(\d+)\."))
        fields["fcn_concat_input"] = any(k.startswith(GENERATE + "conv_cat.") for k in sd)
    else:
        raise KnetError("unknown kernel generate head (expected FCN, PSP, ASPP or UPerNet keys)")
    if fields["head"] in ("psp", "upernet"):
        n = len(_indices(sd, re.escape(GENERATE) + r"psp_modules\.(\d+)\."))
        if n != 4:
            raise KnetError(f"pyramid pooling with {n} scales: only the released 4 (1,2,3,6) are known")
    fields["dilated"] = fields["head"] != "upernet"
    return fields


def _update_fields(sd: Mapping[str, torch.Tensor]) -> dict[str, object]:
    stages = _indices(sd, re.escape(UPDATE) + r"(\d+)\.")
    if not stages:
        raise KnetError("semantic K-Net checkpoint has no kernel update heads")
    p = f"{UPDATE}0."
    if p + "fc_cls.weight" in sd:
        raise KnetError("kernel update head with a class branch: not a semantic K-Net checkpoint")
    return {
        "num_stages": len(stages),
        "feedforward_channels": _shape(sd, p + "ffn.layers.0.0.weight")[0],
        "updator_channels": _shape(sd, p + "kernel_update_conv.input_gate.weight")[0],
        # mask_fcs = [Linear (2-d weight), LayerNorm (1-d weight), ReLU] per layer
        "num_mask_fcs": sum(
            1
            for k in sd
            if re.fullmatch(re.escape(p) + r"mask_fcs\.\d+\.weight", k) and len(sd[k].shape) == 2
        ),
    }


def _aux_fields(sd: Mapping[str, torch.Tensor]) -> dict[str, object]:
    if not any(k.startswith(AUX) for k in sd):
        return {"aux_head": False}
    return {
        "aux_head": True,
        "aux_channels": _shape(sd, AUX + "conv_seg.weight")[1],
        "aux_num_convs": len(_indices(sd, re.escape(AUX) + r"convs\.(\d+)\.")),
    }


def _meta_fields(meta: Mapping[str, object] | None, num_classes: int) -> dict[str, object]:
    """Class names and the 640 crop / test scale from an mmcv checkpoint's `meta`, when present."""
    if not meta:
        return {}
    fields: dict[str, object] = {}
    classes = meta.get("CLASSES") or (meta.get("dataset_meta") or {}).get("classes")  # type: ignore[union-attr]
    if isinstance(classes, (list, tuple)) and len(classes) == num_classes:
        fields["class_names"] = tuple(str(c).strip() for c in classes)
    config = meta.get("config")
    if isinstance(config, str) and "640x640" in config:
        fields.update(crop_size=(640, 640), test_scale=(2048, 640), drop_path_rate=0.4)
    return fields


def semantic_config_from_state_dict(
    sd: Mapping[str, torch.Tensor], meta: Mapping[str, object] | None = None
) -> SemanticKNetConfig:
    """Infer a SemanticKNetConfig from an MMSegmentation K-Net state dict (official key names).

    `meta` (optional, the checkpoint's mmcv meta dict) supplies class names and recognises the
    640x640 Swin-L model by its config name; shapes alone cannot tell.
    """
    if not is_semantic_state_dict(sd):
        raise KnetError("not a semantic K-Net checkpoint (no decode_head.kernel_generate_head.* keys)")
    fields: dict[str, object] = {}
    fields.update(_backbone_fields(sd))
    fields.update(_head_fields(sd))
    fields.update(_update_fields(sd))
    fields.update(_aux_fields(sd))
    fields.update(_meta_fields(meta, int(fields["num_classes"])))  # type: ignore[arg-type]
    cfg = SemanticKNetConfig(**fields)  # type: ignore[arg-type]
    if cfg.aux_head:
        aux_in = _shape(sd, AUX + "convs.0.conv.weight")[1]
        if aux_in != cfg.backbone_out_channels[2]:
            raise KnetError(f"auxiliary head takes {aux_in} channels, expected C4 = {cfg.backbone_out_channels[2]}")
    return cfg


def _map_key(key: str) -> str | None:
    if key.startswith("backbone."):
        return None if key.endswith(".relative_position_index") else key
    if key.startswith(GENERATE + "conv_seg."):
        return "kernel_generator.conv_seg." + key[len(GENERATE + "conv_seg.") :]
    if key.startswith(GENERATE):
        return "kernel_generator.head." + key[len(GENERATE) :]
    if key.startswith(UPDATE):
        return "kernel_update_stages." + key[len(UPDATE) :]
    if key.startswith(AUX + "conv_seg."):
        return "aux_head.conv_seg." + key[len(AUX + "conv_seg.") :]
    if key.startswith(AUX):
        return "aux_head.head." + key[len(AUX) :]
    return key


def semantic_state_dict_from_official(
    sd: Mapping[str, torch.Tensor], *, keep_aux: bool = True
) -> dict[str, torch.Tensor]:
    """Rename MMSegmentation K-Net keys to knet's module names (order kept).

    `keep_aux=False` drops the training-only `auxiliary_head.*` entries (build the model with
    `aux_head=False` then).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if not keep_aux and key.startswith(AUX):
            continue
        new = _map_key(key)
        if new is not None:
            out[new] = value
    return out
