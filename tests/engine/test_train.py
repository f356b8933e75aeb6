"""Training: it learns, resumes bit-for-bit, DDP (2 gloo processes) equals one process with the
global batch, bad data is reported or skipped, outputs are never clobbered without --overwrite."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from knet.cli.main import app
from knet.config_overrides import apply_overrides
from knet.data.synth import write_synth
from knet.engine.train import train
from knet.engine.train_config import get_preset
from knet.errors import KnetError

# tiny widths, 64x64 images: a few tenths of a second per iteration on one CPU thread
TINY = [
    "model.base_channels=4", "model.fpn_channels=32", "model.channels=32", "model.gn_groups=8",
    "model.pe_num_feats=16", "model.num_kernels=8", "model.feedforward_channels=64",
    "model.updator_channels=32", "model.num_heads=2", "model.test_scale=64,64",
    "data.batch_size=2", "data.workers=0", "data.scale=64,64", "data.val_scale=64,64",
    "optim.warmup_iters=2", "log_interval=1", "threads=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_pan")
    write_synth(root, task="panoptic", images=16, val_images=2, seed=0, size=(64, 64))
    return root


def _cfg(synth, *extra):
    return apply_overrides(get_preset("synth-panoptic-tiny", "panoptic"), TINY + [f"data.data={synth}", *extra])


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _losses(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


def test_ci_sized_run_learns(synth, tmp_path):
    cfg = _cfg(synth, "max_length=40", "optim.lr=2e-3", "optim.steps=1000", "data.batch_size=4", "ckpt_interval=40")
    summary = train(cfg, out_dir=tmp_path / "run", progress=False)
    losses = [r["loss"] for r in _losses(tmp_path / "run")]
    assert summary["iteration"] == 40 and len(losses) == 40
    assert sum(losses[-5:]) / 5 <= 0.5 * losses[0], losses
    assert (tmp_path / "run" / "model_final.safetensors").is_file()
    from knet.models import load_model

    model = load_model(tmp_path / "run" / "model_final.safetensors")  # the format knet predict loads
    assert model.class_names[:3] == ("circle", "rectangle", "triangle")


def test_resume_is_bit_equivalent(synth, tmp_path):
    cfg = _cfg(synth, "max_length=6", "ckpt_interval=3", "keep_last=1")
    straight = train(cfg, out_dir=tmp_path / "a", progress=False)["model"]
    part = train(cfg, out_dir=tmp_path / "b", progress=False, stop_after=3)  # "killed" after iteration 3
    assert part["iteration"] == 3 and not (tmp_path / "b" / "model_final.safetensors").exists()
    with pytest.raises(KnetError, match="--resume auto"):
        train(cfg, out_dir=tmp_path / "b", progress=False)
    resumed = train(cfg, out_dir=tmp_path / "b", resume="auto", progress=False)["model"]
    a, b = _params(straight), _params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = {r["iter"]: r["loss"] for r in _losses(tmp_path / "a")}
    lb = {r["iter"]: r["loss"] for r in _losses(tmp_path / "b")}
    assert all(la[i] == lb[i] for i in range(4, 7))
    ckpts = sorted(p.name for p in (tmp_path / "b").glob("ckpt_*"))
    assert ckpts == ["ckpt_0000006.safetensors", "ckpt_0000006.state.pt"]  # keep_last=1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_equal_one_process(synth, tmp_path):
    common = TINY + ["max_length=3", "model.norm_eval=true", "optim.lr=1e-4", "ckpt_interval=3"]
    args = ["train", "panoptic", "--data", str(synth), "--preset", "synth-panoptic-tiny", "--no-val", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
           "-m", "knet.cli.main", *args, "--out", str(tmp_path / "ddp"), *common]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    single = _cfg(synth, *common[len(TINY):], "data.batch_size=4")
    model = train(single, out_dir=tmp_path / "one", progress=False)["model"]
    ddp = load_file(str(tmp_path / "ddp" / "model_final.safetensors"))
    one = _params(model)
    from knet.data.catalog import open_dataset
    from knet.engine.train import fit_model_to_classes
    from knet.models import build_model

    torch.manual_seed(single.seed)  # the initial weights, as train() builds them
    init = _params(build_model(fit_model_to_classes(single, open_dataset(str(synth), task="panoptic", split="train").classes).model))
    keys = [k for k in one if one[k].is_floating_point() and "running" not in k]
    diff = torch.cat([(ddp[k].float() - one[k].float()).abs().flatten() for k in keys])
    moved = torch.cat([(one[k].float() - init[k].float()).abs().flatten() for k in keys])
    # Same parameters up to float reduction order. AdamW turns a gradient that is zero up to rounding
    # into a full +-lr step, so compare the bulk of the update, not the worst element.
    assert moved.mean() > 1e-5
    assert diff.mean() < 0.02 * moved.mean(), (diff.mean().item(), moved.mean().item())
    assert (diff > 0.5 * single.optim.lr).float().mean() < 0.01
    ddp_losses = [r["loss"] for r in _losses(tmp_path / "ddp")]
    one_losses = [r["loss"] for r in _losses(tmp_path / "one")]
    assert len(ddp_losses) == 3 and ddp_losses == pytest.approx(one_losses, rel=1e-5)
    assert ddp_losses[-1] != ddp_losses[0]  # the parameters did change


def test_bad_image_reported_or_skipped(synth, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth, data)
    bad = sorted((data / "train2017").glob("*.jpg"))[3]
    bad.write_bytes(b"not a jpeg")
    base = ["train", "panoptic", "--data", str(data), "--preset", "synth-panoptic-tiny", "--no-val", "-q", *TINY, "max_length=8"]
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "o1")])
    assert r.exit_code == 2 and bad.name in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "o2"), "--skip-bad"])
    assert r.exit_code == 0, r.output
    assert "skipped 1 bad" in r.output


def test_cli_overwrite_and_overrides(synth, tmp_path):
    base = ["train", "panoptic", "--data", str(synth), "--preset", "synth-panoptic-tiny", "--no-val", "-q", *TINY, "max_length=1"]
    out = ["--out", str(tmp_path / "o")]
    r = CliRunner().invoke(app, [*base, *out, "grad_accum=2"])  # 2 micro-batches per step
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o" / "metrics.jsonl").read_text().splitlines()[0])["epoch"] == 0.25  # 4 of 16 images
    r = CliRunner().invoke(app, [*base, *out])
    assert r.exit_code == 2 and "--overwrite" in r.output
    assert CliRunner().invoke(app, [*base, *out, "--overwrite"]).exit_code == 0
    r = CliRunner().invoke(app, [*base, *out, "--overwrite", "optim.lrr=1"])
    assert r.exit_code == 2 and "did you mean 'optim.lr'" in r.output
    r = CliRunner().invoke(app, ["train", "panoptic", "--preset", "nope"])
    assert r.exit_code == 2 and "unknown train preset" in r.output
    r = CliRunner().invoke(app, ["train", "semantic", "--data", str(synth), "--preset", "synth-panoptic-tiny"])
    assert r.exit_code == 2


def test_init_from_backbone_pth_and_knet_checkpoint(synth, tmp_path):
    from knet.engine.train import fit_model_to_classes, initialise_from
    from knet.models import build_model, save_model

    from knet.data.catalog import open_dataset

    cfg = fit_model_to_classes(_cfg(synth), open_dataset(str(synth), task="panoptic", split="train").classes)
    torch.manual_seed(1)
    src = build_model(cfg.model)
    backbone = {k[len("backbone."):]: v for k, v in src.state_dict().items() if k.startswith("backbone.")}
    torch.save(backbone, tmp_path / "resnet_imagenet.pth")  # torchvision key names (conv1, bn1, layer1.0...)
    torch.manual_seed(2)
    dst = build_model(cfg.model)
    msg = initialise_from(dst, str(tmp_path / "resnet_imagenet.pth"))
    assert f"{len(backbone)}/" in msg
    assert all(torch.equal(dst.state_dict()[f"backbone.{k}"], v) for k, v in backbone.items())
    assert not torch.equal(dst.state_dict()["kernel_generator.init_kernels.weight"], src.state_dict()["kernel_generator.init_kernels.weight"])
    save_model(src, tmp_path / "full.safetensors")
    initialise_from(dst, str(tmp_path / "full.safetensors"))
    assert all(torch.equal(a, b) for a, b in zip(dst.state_dict().values(), src.state_dict().values()))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(KnetError, match="junk.pth"):
        initialise_from(dst, str(tmp_path / "junk.pth"))
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(KnetError, match="no tensor matches"):
        initialise_from(dst, str(tmp_path / "other.pth"))
