"""Build knet and its one compiled extension, knet._C.

CUDA kernels are compiled when torch was built with CUDA and nvcc is found (or FORCE_CUDA=1);
otherwise the extension is CPU-only. KNET_CPU_ONLY=1 forces a CPU-only build.
Knobs: MAX_JOBS (parallel compile jobs, read by torch's BuildExtension), TORCH_CUDA_ARCH_LIST
(default "8.0;8.6;9.0"), NVCC_FLAGS (extra nvcc flags), DEBUG=1 (-O0 -g), KNET_NO_OPENMP=1
(serial CPU kernels).
The usual route: install torch first, then `pip install -e . --no-build-isolation`.
"""

from __future__ import annotations

import glob
import os
import shlex
import sys
import sysconfig
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def _cuda_library_include_dirs() -> list[str]:
    """Header folders that torch's CUDA wheels install (nvidia/cu13/include and friends).

    nvcc from a system toolkit does not know them, but torch's CUDA headers include some of
    them (e.g. cusparse.h, cublas_v2.h), so they must be on the include path.
    """
    found: list[str] = []
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    roots.update(p for p in sys.path if p.endswith("site-packages"))
    for root in sorted(roots):
        nvidia = Path(root) / "nvidia"
        if not nvidia.is_dir():
            continue
        for inc in sorted(nvidia.glob("cu*/include")) + sorted(nvidia.glob("*/include")):
            if inc.is_dir() and str(inc) not in found:
                found.append(str(inc))
    return found


def _cudart_library_dirs(cuda_home: str | None) -> list[str]:
    """A folder with libcudart.so for the link (`-lcudart`), when CUDA_HOME has none.

    With nvcc found through a wrapper on PATH (e.g. /usr/local/bin/nvcc), torch guesses
    CUDA_HOME=/usr/local, which has no lib64/libcudart.so; the toolkit (/usr/local/cuda) has it.
    """
    candidates = [Path(cuda_home) / "lib64", Path(cuda_home) / "lib"] if cuda_home else []
    if any((d / "libcudart.so").exists() for d in candidates):
        return []
    for d in (Path("/usr/local/cuda/lib64"), Path("/usr/local/cuda/lib")):
        if (d / "libcudart.so").exists():
            return [str(d)]
    return []


def _extensions():
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    force_cuda = _env_flag("FORCE_CUDA")
    cpu_only = _env_flag("KNET_CPU_ONLY")
    debug = _env_flag("DEBUG")
    torch_has_cuda = torch.version.cuda is not None
    with_cuda = (not cpu_only) and ((torch_has_cuda and CUDA_HOME is not None) or force_cuda)

    if with_cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;8.6;9.0"
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "") if with_cuda else ""

    cpp_sources = sorted(str(p.relative_to(ROOT)) for p in CSRC.rglob("*.cpp") if "tests" not in p.parts)
    cuda_sources = sorted(str(p.relative_to(ROOT)) for p in CSRC.rglob("*.cu")) if with_cuda else []

    opt = ["-O0", "-g"] if debug else ["-O3"]
    cxx_flags = opt + ["-fvisibility=hidden"]
    if not debug and os.uname().machine == "x86_64" and not _env_flag("KNET_NO_AVX2"):
        # AVX2/FMA lets the compiler vectorise the CPU kernels' inner loops; every x86-64 CPU
        # of the last decade has them. KNET_NO_AVX2=1 builds for older CPUs.
        cxx_flags += ["-mavx2", "-mfma", "-mpopcnt"]
    define_macros = [("KNET_CUDA_ARCHS", f'"{archs}"')]
    include_dirs = [str(CSRC / "include"), str(CSRC)]
    library_dirs: list[str] = []
    # at::parallel_for is a header template: without -fopenmp (_OPENMP undefined) it compiles to a
    # serial loop, whatever torch.get_num_threads() says. Linked with -fopenmp, the module needs
    # libgomp.so.1, which is the copy torch has already loaded (same soname): one thread pool.
    # (KNET_NO_OPENMP=1: serial kernels; macOS' clang has no -fopenmp)
    openmp = [] if sys.platform == "darwin" or _env_flag("KNET_NO_OPENMP") else ["-fopenmp"]
    extra = {"cxx": cxx_flags + openmp}
    if with_cuda:
        define_macros.append(("WITH_CUDA", None))
        include_dirs += _cuda_library_include_dirs()
        library_dirs += _cudart_library_dirs(CUDA_HOME)
        extra["nvcc"] = opt + ["--expt-relaxed-constexpr", "-DWITH_CUDA"] + shlex.split(
            os.environ.get("NVCC_FLAGS", "")
        )
        ext_cls = CUDAExtension
    else:
        ext_cls = CppExtension

    print("knet build configuration:")
    for key, value in [
        ("torch", torch.__version__),
        ("torch CUDA", torch.version.cuda),
        ("CUDA_HOME", CUDA_HOME),
        ("FORCE_CUDA", force_cuda),
        ("KNET_CPU_ONLY", cpu_only),
        ("build CUDA kernels", with_cuda),
        ("TORCH_CUDA_ARCH_LIST", archs or "-"),
        ("MAX_JOBS", os.environ.get("MAX_JOBS", "(torch default)")),
        ("DEBUG", debug),
        ("OpenMP (at::parallel_for)", bool(openmp)),
        ("C++ sources", len(cpp_sources)),
        ("CUDA sources", len(cuda_sources)),
        ("extra include dirs", include_dirs[2:] or "-"),
        ("extra library dirs", library_dirs or "-"),
    ]:
        print(f"  {key:<22} {value}")
    sys.stdout.flush()

    ext = ext_cls(
        name="knet._C",
        sources=cpp_sources + cuda_sources,
        include_dirs=include_dirs,
        library_dirs=library_dirs,
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=openmp,
    )
    return [ext, _eval_extension(cxx_flags)], {"build_ext": BuildExtension.with_options(use_ninja=True)}


# The evaluation cores again as a small torch-free module, knet._eval_C, so that `knet eval`
# and knet.evaluation do not load torch (see csrc/eval_module.cpp). Additive; owner: evaluation.
EVAL_OPS = ("rle", "coco_eval", "png", "pq_eval", "semantic_eval")


def _eval_extension(cxx_flags):
    import pybind11
    from setuptools import Extension

    sources = ["csrc/eval_module.cpp"] + sorted(
        str(p.relative_to(ROOT)) for op in EVAL_OPS for p in (CSRC / "ops" / op).rglob("*.cpp")
    )
    return Extension(
        name="knet._eval_C",
        sources=sources,
        include_dirs=[str(CSRC / "include"), str(CSRC), pybind11.get_include()],
        define_macros=[("KNET_EVAL_MODULE", None)],
        extra_compile_args={"cxx": list(cxx_flags)},
        language="c++",
    )


def _read_version() -> str:
    text = (ROOT / "knet" / "__init__.py").read_text()
    for line in text.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise RuntimeError("knet/__init__.py has no __version__")


# KNET_SKIP_EXT=1 installs the Python package only: the Makefile builds the extensions in place
# first (`setup.py build_ext --inplace`, incremental through ./build), then installs without them.
ext_modules, cmdclass = ([], {}) if _env_flag("KNET_SKIP_EXT") else _extensions()

setup(
    name="knet",
    version=_read_version(),
    description="K-Net for semantic, instance and panoptic segmentation: CLI, fast kernels, evaluators",
    python_requires=">=3.10",
    packages=find_packages(include=["knet", "knet.*"]) + ["knet.cli"],
    package_dir={"knet": "knet", "knet.cli": "cli"},
    package_data={"knet": ["assets/*", "assets/**/*"]},
    include_package_data=True,
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    install_requires=[
        "torch>=2.4",
        "numpy",
        "pybind11",
        "ninja",
        "typer>=0.12",
        "pycocotools",
        "safetensors",
        "tqdm",
        "pillow",
        "scipy",
        "orjson",
        "isal",
    ],
    entry_points={"console_scripts": ["knet = knet.cli.main:main"]},
    zip_safe=False,
)
