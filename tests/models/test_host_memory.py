"""knet.models.host_memory: the det models' CPU inference keeps freed memory (glibc) when, and
only when, their config asks for it, and a freed large block is then reused without page faults.

Each case runs in a fresh interpreter: the malloc settings are process-wide and permanent."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"), reason="glibc only"
)

PRELUDE = """
import dataclasses, resource, torch
from knet.models import build_model
from knet.models.host_memory import freed_memory_kept, keep_freed_memory
from knet.models.presets import knet_instance_tiny

def model(keep):
    cfg = dataclasses.replace(knet_instance_tiny(), base_channels=4, fpn_channels=16, channels=16, pe_num_feats=8,
                              gn_groups=4, num_heads=2, feedforward_channels=32, updator_channels=16, num_kernels=10,
                              keep_freed_memory=keep)
    return build_model(cfg).eval()

def faults_of_a_fresh_64mb_tensor():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(16 << 20)  # 64 MB, written once
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del t
    return after - before

x = torch.randn(1, 3, 64, 96)
"""


def _run(body: str) -> str:
    code = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_applied_by_cpu_inference_only_when_configured():
    out = _run(
        """
        m = model(True)
        m.forward_stages(x)  # autograd on: not an inference call
        with torch.no_grad():
            m.train(); m.forward_stages(x)  # training mode
        print(freed_memory_kept())
        with torch.inference_mode():
            model(False).forward_stages(x)  # switched off
        print(freed_memory_kept())
        with torch.inference_mode():
            m.eval().forward_stages(x)
        print(freed_memory_kept(), keep_freed_memory())  # idempotent
        """
    )
    assert out.split() == ["False", "False", "True", "True"]


def test_freed_large_blocks_are_reused_without_page_faults():
    out = _run(
        """
        faults_of_a_fresh_64mb_tensor()
        default = min(faults_of_a_fresh_64mb_tensor() for _ in range(3))  # mapped afresh: ~16k faults of 4 KB
        assert keep_freed_memory()
        for _ in range(4):  # the heap grows to its steady state (the aligned block may alternate between two places)
            faults_of_a_fresh_64mb_tensor()
        kept = max(faults_of_a_fresh_64mb_tensor() for _ in range(3))  # reused
        print(default, kept)
        """
    )
    default, kept = map(int, out.split())
    assert default > 8000  # 64 MB / 4 KB = 16384 (fewer with transparent huge pages)
    assert kept < default // 20
