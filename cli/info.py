"""`knet info`: versions, how knet._C was built, and what devices are visible."""

from __future__ import annotations

import json
import platform

import typer

import knet


def collect() -> dict:
    import torch  # imported here so that `knet --help` and other commands do not pay for it

    from knet import extension

    b = extension.build_info()
    return {
        "knet": knet.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "ext_loaded": b["loaded"],
        "ext_load_error": b["load_error"],
        "ext_with_cuda": b["with_cuda"],
        "ext_cuda_archs": b["cuda_archs"],
        "ext_ops": b["bindings"],
        "ext_cpu_gating": b["cpu_gating_isa"],  # avx512 / avx2/generic build of the gating kernels
        "ext_cpu_mask_conv": b["cpu_mask_conv_isa"],  # float32 mask_conv: avx512 (knet's GEMM) / blas
        "gpu_visible": torch.cuda.is_available(),
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "threads": torch.get_num_threads(),
    }


def info(as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table.")) -> None:
    """Print knet/torch/CUDA versions, whether knet._C loaded and how it was built, GPUs, threads.

    Example: knet info --json | jq .ext_with_cuda
    """
    facts = collect()
    if as_json:
        typer.echo(json.dumps(facts))
        return
    for key, value in facts.items():
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        typer.echo(f"{key:<17} {value if value not in (None, '') else '-'}")


def register(app: typer.Typer) -> None:
    app.command("info")(info)
