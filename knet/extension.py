"""Loading the compiled extension knet._C, and the explicit choice between it and the twins.

Every op in knet.ops asks `use_compiled(tensor)` whether to call the compiled kernel or its
pure-PyTorch twin. The twin is used when knet._C is not importable or KNET_DISABLE_EXT=1; that
is announced once with a visible warning, never silently.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

import torch

_C: ModuleType | None = None
_LOAD_ERROR: str | None = None
_WARNED = False


def _load() -> None:
    global _C, _LOAD_ERROR
    if os.environ.get("KNET_DISABLE_EXT", "0") == "1":
        _LOAD_ERROR = "disabled by KNET_DISABLE_EXT=1"
        return
    spec = importlib.util.find_spec("knet._C")
    if spec is None:
        _LOAD_ERROR = "knet._C is not built (run `pip install -e . --no-build-isolation`)"
        return
    try:
        _C = importlib.import_module("knet._C")
    except ImportError as exc:  # a built but unloadable library (ABI mismatch, missing libs)
        _LOAD_ERROR = f"knet._C failed to load: {exc}"


_load()


def has_ext() -> bool:
    """True when knet._C is loaded."""
    return _C is not None


def ext() -> ModuleType:
    """The loaded knet._C module; raises if it is not loaded (call has_ext() first)."""
    if _C is None:
        raise RuntimeError(f"knet._C is not available: {_LOAD_ERROR}")
    return _C


def load_error() -> str | None:
    return _LOAD_ERROR


def _warn_fallback() -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(
            f"knet: compiled ops unavailable ({_LOAD_ERROR}); using the PyTorch twins",
            RuntimeWarning,
            stacklevel=3,
        )


def use_compiled(*tensors: torch.Tensor) -> bool:
    """Explicit choice of implementation for an op call.

    Compiled kernel when knet._C is loaded and, for CUDA tensors, was built with CUDA.
    Otherwise the PyTorch twin, with a one-time warning.
    """
    if _C is None:
        _warn_fallback()
        return False
    if any(t.is_cuda for t in tensors) and not _C.with_cuda:
        raise RuntimeError("knet._C was built without CUDA kernels; rebuild with FORCE_CUDA=1 for CUDA tensors")
    return True


def build_info() -> dict:
    """Facts for `knet info`."""
    return {
        "loaded": _C is not None,
        "load_error": _LOAD_ERROR,
        "with_cuda": bool(_C.with_cuda) if _C is not None else False,
        "cuda_archs": str(_C.cuda_archs) if _C is not None else "",
        "bindings": list(_C.bindings) if _C is not None else [],
        "cpu_gating_isa": str(_C.gating_cpu_isa()) if _C is not None else "",
        "cpu_mask_conv_isa": str(_C.mask_conv_cpu_isa()) if _C is not None else "",
    }
