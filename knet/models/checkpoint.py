"""Checkpoints: convert official K-Net / MMSegmentation .pth files, save and load knet .safetensors.

A knet checkpoint is one safetensors file whose metadata carries everything needed to rebuild
the model: `format` ("knet"), `format_version`, `family` ("det" | "semantic"), `task`,
`config` (the config dataclass as JSON) and `class_names` (JSON list).

Official checkpoints are recognised by their keys: `decode_head.*` = MMSegmentation semantic
K-Net (config inference and key mapping live in knet.models.semantic_convert), `rpn_head.*` +
`roi_head.*` = official instance / panoptic K-Net (below). Every size is read from the shapes;
nothing else is needed. The official module names appear only here:

    neck.*                 -> fpn.*
    rpn_head.*             -> kernel_generator.*
    roi_head.mask_head.*   -> update_stages.*
"""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from knet.errors import KnetError
from knet.fileio import atomic_write_bytes, check_writable
from knet.models.coco_classes import COCO_PANOPTIC_CLASSES, COCO_THING_CLASSES
from knet.models.knet_det import DetKNetConfig, build_det_model
from knet.models.knet_semantic import build_semantic_knet
from knet.models.semantic_config import SemanticKNetConfig
from knet.models.semantic_convert import semantic_config_from_state_dict, semantic_state_dict_from_official

FORMAT = "knet"
FORMAT_VERSION = "1"
Config = DetKNetConfig | SemanticKNetConfig

_DET_RENAMES = (("neck.", "fpn."), ("rpn_head.", "kernel_generator."), ("roi_head.mask_head.", "update_stages."))


# ---- config <-> family ---------------------------------------------------------------------------
def family_of(cfg: Config) -> str:
    if isinstance(cfg, DetKNetConfig):
        return "det"
    if isinstance(cfg, SemanticKNetConfig):
        return "semantic"
    raise KnetError(f"unknown model configuration type {type(cfg).__name__}")


def task_of(cfg: Config) -> str:
    return cfg.task if isinstance(cfg, DetKNetConfig) else "semantic"


def build_from_config(cfg: Config) -> nn.Module:
    if isinstance(cfg, DetKNetConfig):
        return build_det_model(cfg)
    if isinstance(cfg, SemanticKNetConfig):
        return build_semantic_knet(cfg)
    raise KnetError(f"unknown model configuration type {type(cfg).__name__}")


def config_from_json(family: str, text: str) -> Config:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KnetError(f"checkpoint metadata 'config' is not valid JSON ({exc.msg})") from None
    if family == "det":
        return DetKNetConfig.from_dict(data)
    if family == "semantic":
        return SemanticKNetConfig.from_dict(data)
    raise KnetError(f"unknown model family {family!r} in checkpoint metadata")


# ---- official det checkpoints --------------------------------------------------------------------
def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise KnetError(f"official K-Net checkpoint lacks the key {key}")
    return tuple(sd[key].shape)


def _indices(sd: Mapping[str, object], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.match(k))})


def _config_text(meta: Mapping | None) -> str:
    if not meta:
        return ""
    cfg = meta.get("config", "")
    return cfg if isinstance(cfg, str) else str(cfg)


def det_config_from_state_dict(sd: Mapping[str, torch.Tensor], meta: Mapping | None = None) -> DetKNetConfig:
    """Infer a DetKNetConfig from an official instance / panoptic K-Net state dict."""
    if any(".conv_offset." in k for k in sd):
        raise KnetError("K-Net checkpoints with deformable convolutions (DCN) are not supported yet")
    num_kernels, channels = _shape(sd, "rpn_head.init_kernels.weight")[:2]
    num_classes = _shape(sd, "rpn_head.conv_seg.weight")[0]
    fpn_channels = _shape(sd, "neck.lateral_convs.0.conv.weight")[0]
    stages = _indices(sd, r"roi_head\.mask_head\.(\d+)\.")
    if not stages:
        raise KnetError("official K-Net checkpoint has no roi_head.mask_head.* keys")
    head = "roi_head.mask_head.0."

    # task: 80 classes = COCO instance, 133 = COCO panoptic (80 + 53); otherwise the meta tells
    text = _config_text(meta)
    m_thing = re.search(r"num_thing_classes\s*=\s*(\d+)", text)
    m_stuff = re.search(r"num_stuff_classes\s*=\s*(\d+)", text)
    if m_thing and m_stuff and int(m_thing.group(1)) + int(m_stuff.group(1)) == num_classes and int(m_stuff.group(1)) > 0:
        num_thing, num_stuff = int(m_thing.group(1)), int(m_stuff.group(1))
    elif num_classes == len(COCO_PANOPTIC_CLASSES):
        num_thing, num_stuff = len(COCO_THING_CLASSES), num_classes - len(COCO_THING_CLASSES)
    else:
        num_thing, num_stuff = num_classes, 0
    task = "panoptic" if num_stuff > 0 else "instance"

    classes = (meta or {}).get("CLASSES")
    if classes is not None and len(classes) == num_classes:
        class_names = tuple(str(c).strip() for c in classes)
    elif num_classes == len(COCO_PANOPTIC_CLASSES) and task == "panoptic":
        class_names = COCO_PANOPTIC_CLASSES
    elif num_classes == len(COCO_THING_CLASSES):
        class_names = COCO_THING_CLASSES
    else:
        class_names = tuple(f"class_{i}" for i in range(num_classes))

    fields: dict[str, object] = dict(
        task=task,
        class_names=class_names,
        num_thing_classes=num_thing,
        num_stuff_classes=num_stuff,
        fpn_channels=fpn_channels,
        channels=channels,
        pe_num_feats=fpn_channels // 2,
        num_kernels=num_kernels,
        num_stages=len(stages),
        feedforward_channels=_shape(sd, head + "ffn.layers.0.0.weight")[0],
        updator_channels=_shape(sd, head + "kernel_update_conv.dynamic_layer.weight")[1],
        num_cls_fcs=len(_indices(sd, re.escape(head) + r"cls_fcs\.(\d+)\.weight")) // 2,
        num_mask_fcs=len(_indices(sd, re.escape(head) + r"mask_fcs\.(\d+)\.weight")) // 2,
    )
    if "backbone.patch_embed.projection.weight" in sd:
        embed = _shape(sd, "backbone.patch_embed.projection.weight")[0]
        depths = tuple(len(_indices(sd, rf"backbone\.stages\.{s}\.blocks\.(\d+)\.")) for s in range(4))
        heads = tuple(
            _shape(sd, f"backbone.stages.{s}.blocks.0.attn.w_msa.relative_position_bias_table")[1] for s in range(4)
        )
        table = _shape(sd, "backbone.stages.0.blocks.0.attn.w_msa.relative_position_bias_table")[0]
        window = (int(round(table**0.5)) + 1) // 2
        fields.update(backbone="swin", swin_embed_dims=embed, swin_depths=depths, swin_num_heads=heads, swin_window_size=window)
    elif "backbone.conv1.weight" in sd:
        blocks = len(_indices(sd, r"backbone\.layer3\.(\d+)\."))
        depth = {6: 50, 23: 101}.get(blocks)
        if depth is None:
            raise KnetError(f"unsupported ResNet depth: layer3 has {blocks} blocks (expected 6 or 23)")
        fields.update(backbone="resnet", depth=depth, base_channels=_shape(sd, "backbone.conv1.weight")[0])
    else:
        raise KnetError("official K-Net checkpoint has an unknown backbone (no backbone.conv1 / backbone.patch_embed keys)")
    cfg = DetKNetConfig(**fields)  # type: ignore[arg-type]
    cfg.validate()
    return cfg


def det_state_dict_from_official(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official K-Net det keys to knet module names (order kept; Swin index buffers dropped)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith("backbone.") and key.endswith(".relative_position_index"):
            continue  # recomputed by the model
        new = key
        for old, repl in _DET_RENAMES:
            if key.startswith(old):
                new = repl + key[len(old):]
                break
        out[new] = value
    return out


def unwrap_checkpoint(obj: object, source: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, meta) from an mmcv checkpoint, with or without the state_dict/meta wrapper."""
    if not isinstance(obj, Mapping):
        raise KnetError(f"{source}: not a checkpoint (a {type(obj).__name__}, expected a dict of tensors)")
    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    sd = obj.get("state_dict", obj)
    if not isinstance(sd, Mapping):
        raise KnetError(f"{source}: 'state_dict' is not a dict of tensors")
    tensors = {}
    for key, value in sd.items():
        if isinstance(value, torch.Tensor):
            tensors[key[len("module."):] if key.startswith("module.") else key] = value
    if not tensors:
        raise KnetError(f"{source}: no tensors found (not a model checkpoint)")
    return tensors, dict(meta)


def convert_state_dict(sd: Mapping[str, torch.Tensor], meta: Mapping | None = None, *, source: str = "checkpoint") -> tuple[Config, dict[str, torch.Tensor]]:
    """Official state dict -> (knet config, state dict with knet key names)."""
    if any(k.startswith("decode_head.") for k in sd):
        cfg = semantic_config_from_state_dict(sd, meta)
        return cfg, semantic_state_dict_from_official(sd, keep_aux=cfg.aux_head)
    if any(k.startswith("rpn_head.") for k in sd) and any(k.startswith("roi_head.") for k in sd):
        if "rpn_head.init_kernels.weight" not in sd:
            raise KnetError(f"{source}: an MMDetection two-stage detector checkpoint, but not K-Net (no rpn_head.init_kernels)")
        return det_config_from_state_dict(sd, meta), det_state_dict_from_official(sd)
    raise KnetError(f"{source}: not a K-Net checkpoint (no decode_head.* nor rpn_head.*/roi_head.* keys)")


def load_into(model: nn.Module, sd: Mapping[str, torch.Tensor], *, source: str, assign: bool = False) -> None:
    """Strict load: missing or unexpected keys (or shape mismatches) -> one-line KnetError listing them."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected[:20])}{' ...' if len(unexpected) > 20 else ''}")
        raise KnetError(f"{source}: " + "; ".join(parts))
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        raise KnetError(f"{source}: {len(bad)} shape mismatch(es): {', '.join(bad[:10])}")
    model.load_state_dict(sd, strict=True, assign=assign)


# ---- file I/O ------------------------------------------------------------------------------------
class _Opaque:
    """Stand-in for a non-tensor object in a checkpoint's meta (never executed)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass


class _MetaTolerantUnpickler(pickle.Unpickler):
    """Tensor-only unpickling that turns unknown classes (e.g. numpy / mmcv objects in `meta`)
    into `_Opaque` instead of importing them: nothing outside the allow-list is ever called."""

    _ALLOWED = {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch", "Size"),
        ("torch", "device"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED or (module == "torch" and name.endswith("Storage")):
            return super().find_class(module, name)
        return _Opaque


class _TolerantPickle:
    Unpickler = _MetaTolerantUnpickler
    load = staticmethod(pickle.load)


def _torch_load(path: Path) -> object:
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            first = f.read(2)
        if first == b"PK":
            raise KnetError(f"{path}: truncated or corrupt checkpoint (incomplete zip archive)")
        if first[:1] != b"\x80":  # neither a zip (torch >= 1.6) nor a legacy pickle
            raise KnetError(f"{path}: not a PyTorch checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise KnetError(f"{path}: cannot read the checkpoint (corrupt file)") from None
    except Exception as exc:  # truncated / corrupt archive
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KnetError(f"{path}: cannot read the checkpoint (truncated or corrupt: {reason[:100]})") from None
    # the meta holds objects beyond plain tensors and containers: read again, keeping them opaque
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_TolerantPickle)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KnetError(f"{path}: cannot read the checkpoint ({reason[:100]})") from None


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise KnetError(f"{p}: no such checkpoint file")
    return p


def read_official(path: str | os.PathLike) -> tuple[Config, dict[str, torch.Tensor]]:
    """An official .pth -> (config, knet-named state dict)."""
    p = _check_file(path)
    if _is_safetensors(p):
        raise KnetError(f"{p}: already a .safetensors file, not an official .pth checkpoint")
    sd, meta = unwrap_checkpoint(_torch_load(p), str(p))
    return convert_state_dict(sd, meta, source=str(p))


def model_to_bytes(model: nn.Module) -> bytes:
    from safetensors.torch import save

    cfg = model.config
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": family_of(cfg),
        "task": task_of(cfg),
        "config": json.dumps(cfg.to_dict()),
        "class_names": json.dumps(list(model.class_names)),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return save(tensors, metadata=metadata)


def save_model(model: nn.Module, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write `model` (its config in the metadata) to a knet .safetensors file."""
    check_writable([path], overwrite=overwrite)
    return atomic_write_bytes(path, model_to_bytes(model), overwrite=overwrite)


def read_knet(path: str | os.PathLike) -> tuple[Config, dict[str, torch.Tensor]]:
    """A knet .safetensors -> (config, state dict)."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    p = _check_file(path)
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise KnetError(f"{p}: not a knet checkpoint (safetensors without knet metadata)")
            if metadata.get("format_version") != FORMAT_VERSION:
                raise KnetError(f"{p}: knet checkpoint format {metadata.get('format_version')!r} is not supported (expected {FORMAT_VERSION})")
            cfg = config_from_json(metadata.get("family", ""), metadata.get("config", "{}"))
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KnetError(f"{p}: cannot read the safetensors file ({reason[:160]})") from None
    return cfg, sd


def _is_safetensors(p: Path) -> bool:
    with open(p, "rb") as f:
        head = f.read(9)
    # safetensors: 8-byte little-endian header size, then a JSON header starting with '{'
    return len(head) == 9 and head[8:9] == b"{"


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a knet .safetensors or an official .pth (converted on the fly); returns the model in eval mode."""
    p = _check_file(path)
    cfg, sd = read_knet(p) if _is_safetensors(p) else read_official(p)
    model = build_from_config(cfg)
    load_into(model, sd, source=str(p))
    return model.to(device).eval()


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike | None = None, *, overwrite: bool = False) -> tuple[Path, Config]:
    """Official .pth -> knet .safetensors (default: same name with .safetensors). Returns (dst, config)."""
    p = _check_file(src)
    out = Path(dst) if dst is not None else p.with_suffix(".safetensors")
    check_writable([out], overwrite=overwrite)
    cfg, sd = read_official(p)
    model = build_from_config(cfg)
    load_into(model, sd, source=str(p))
    save_model(model, out, overwrite=overwrite)
    return out, cfg


def describe_config(cfg: Config) -> dict[str, object]:
    """What a conversion inferred, as a flat dict for printing."""
    if isinstance(cfg, DetKNetConfig):
        backbone = f"ResNet-{cfg.depth} (base {cfg.base_channels})" if cfg.backbone == "resnet" else (
            f"Swin (embed {cfg.swin_embed_dims}, depths {list(cfg.swin_depths)}, window {cfg.swin_window_size})"
        )
        return {
            "family": "det",
            "task": cfg.task,
            "backbone": backbone,
            "classes": f"{cfg.num_classes} ({cfg.num_thing_classes} thing + {cfg.num_stuff_classes} stuff)",
            "kernels": cfg.num_kernels + cfg.num_stuff_classes,
            "channels": cfg.channels,
            "stages": cfg.num_stages,
            "ffn": cfg.feedforward_channels,
            "updator": cfg.updator_channels,
        }
    backbone = f"ResNetV1c-{cfg.depth}{' D8' if cfg.dilated else ''}" if cfg.backbone == "resnet_v1c" else (
        f"Swin (embed {cfg.swin_embed_channels}, depths {list(cfg.swin_depths)})"
    )
    return {
        "family": "semantic",
        "task": "semantic",
        "backbone": backbone,
        "head": cfg.head,
        "classes": cfg.num_classes,
        "kernels": cfg.num_classes,
        "channels": cfg.channels,
        "stages": cfg.num_stages,
        "ffn": cfg.feedforward_channels,
        "updator": cfg.updator_channels,
    }
