import dataclasses
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from knet.cli.main import app
from knet.config_overrides import apply_overrides
from knet.errors import KnetError


def test_info_json():
    r = CliRunner().invoke(app, ["info", "--json"])
    assert r.exit_code == 0, r.output
    facts = json.loads(r.output)
    assert facts["torch"] and "ext_loaded" in facts


def test_version_subprocess():
    r = subprocess.run([sys.executable, "-m", "knet.cli.main", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("knet ")


@dataclasses.dataclass
class _Optim:
    lr: float = 1e-4
    steps: tuple[int, ...] = (8, 11)


@dataclasses.dataclass
class _Cfg:
    optim: _Optim = dataclasses.field(default_factory=_Optim)
    iters: int = 10
    amp: bool = False


def test_overrides_apply_and_hint():
    cfg = apply_overrides(_Cfg(), ["optim.lr=2e-4", "iters=5", "amp=true", "optim.steps=3,4"])
    assert cfg.optim.lr == 2e-4 and cfg.iters == 5 and cfg.amp is True and cfg.optim.steps == (3, 4)
    with pytest.raises(KnetError, match="did you mean 'optim.lr'"):
        apply_overrides(_Cfg(), ["optim.lrr=1"])
    with pytest.raises(KnetError, match="integer"):
        apply_overrides(_Cfg(), ["iters=1.5"])
