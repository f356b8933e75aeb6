"""Training checkpoints: model weights as knet safetensors (what `knet predict` loads) plus the
training state beside them, written atomically; the last k are kept.

    out/ckpt_0001000.safetensors      model (config in metadata)       <- knet predict --checkpoint
    out/ckpt_0001000.state.pt         optimiser, scheduler, scaler, RNG states, iteration, config
    out/last_checkpoint               the name of the newest complete pair (for --resume auto)
    out/model_final.safetensors       at the end

The state file is written first and the pointer last, so a kill at any moment leaves the
previous pair usable.
"""

from __future__ import annotations

import io
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from knet.errors import KnetError
from knet.fileio import atomic_write_bytes, atomic_write_text

POINTER = "last_checkpoint"
_NAME = re.compile(r"^ckpt_(\d+)\.safetensors$")


def ckpt_name(iteration: int) -> str:
    return f"ckpt_{iteration:07d}"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out_dir: Path, iteration: int, *, model: torch.nn.Module, train_state: dict[str, Any], keep_last: int) -> Path:
    """Write the pair for `iteration`, move the pointer, delete pairs beyond the last `keep_last`."""
    from knet.models.checkpoint import model_to_bytes

    name = ckpt_name(iteration)
    buf = io.BytesIO()
    torch.save(train_state, buf)
    atomic_write_bytes(out_dir / f"{name}.state.pt", buf.getvalue(), overwrite=True)
    weights = atomic_write_bytes(out_dir / f"{name}.safetensors", model_to_bytes(model), overwrite=True)
    atomic_write_text(out_dir / POINTER, name + "\n", overwrite=True)
    if keep_last > 0:
        for old in list_checkpoints(out_dir)[:-keep_last]:
            for suffix in (".safetensors", ".state.pt"):
                p = out_dir / f"{ckpt_name(old)}{suffix}"
                if p.exists():
                    p.unlink()
    return weights


def list_checkpoints(out_dir: Path) -> list[int]:
    if not out_dir.is_dir():
        return []
    its = [int(m.group(1)) for p in out_dir.iterdir() if (m := _NAME.match(p.name))]
    return sorted(i for i in its if (out_dir / f"{ckpt_name(i)}.state.pt").exists())


def find_resume(out_dir: Path, resume: str) -> Path | None:
    """'auto' -> the newest complete checkpoint in out_dir (None if there is none); else a path."""
    if resume == "auto":
        pointer = out_dir / POINTER
        if pointer.is_file():
            name = pointer.read_text().strip()
            if (out_dir / f"{name}.safetensors").is_file() and (out_dir / f"{name}.state.pt").is_file():
                return out_dir / f"{name}.safetensors"
        its = list_checkpoints(out_dir)
        return out_dir / f"{ckpt_name(its[-1])}.safetensors" if its else None
    p = Path(resume)
    if p.is_dir():
        found = find_resume(p, "auto")
        if found is None:
            raise KnetError(f"no checkpoint to resume from in {p}")
        return found
    if not p.is_file():
        raise KnetError(f"checkpoint to resume from not found: {p}")
    return p


def state_path(weights: Path) -> Path:
    return weights.with_name(weights.name.replace(".safetensors", ".state.pt"))


def load_train_state(weights: Path) -> dict[str, Any]:
    sp = state_path(weights)
    if not sp.is_file():
        raise KnetError(f"training state {sp} not found beside {weights} (a model-only file cannot be resumed; use --init)")
    try:
        return torch.load(sp, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a corrupt file for the user
        raise KnetError(f"training state {sp} is corrupt ({type(exc).__name__})") from None


def load_weights_into(model: torch.nn.Module, weights: Path) -> None:
    from knet.models.checkpoint import load_into, read_knet

    _, sd = read_knet(weights)
    load_into(model, sd, source=str(weights))


def remove_outputs(out_dir: Path) -> None:
    """--overwrite: forget previous checkpoints and logs of this output folder."""
    for p in out_dir.iterdir() if out_dir.is_dir() else []:
        if _NAME.match(p.name) or p.name.endswith(".state.pt") or p.name in (POINTER, "metrics.jsonl", "model_final.safetensors", "config.json"):
            os.unlink(p)
