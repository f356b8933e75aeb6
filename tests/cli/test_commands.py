"""Every command's --help, real `knet` subprocesses (exit codes, one-line errors), benchmark, demo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from knet.cli.main import app

from conftest import KNET_BIN, REPO  # noqa: E402  (tests/cli/conftest.py)

COMMANDS = ["info", "predict", "eval", "convert", "train", "benchmark", "data", "demo"]


def _root():
    return typer.main.get_command(app)


def _leaf_paths(group, prefix=()):
    """Every command path in the tree, e.g. ('eval', 'coco')."""
    for name, cmd in sorted(group.commands.items()):
        path = prefix + (name,)
        yield path
        if hasattr(cmd, "commands"):
            yield from _leaf_paths(cmd, path)


def test_root_help_and_version():
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0 and "Usage: knet" in r.output
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("knet ")


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_has_examples(name):
    root = _root()
    assert name in root.commands, f"`knet {name}` is not registered"
    paths = [p for p in _leaf_paths(root) if p[0] == name]
    for path in paths:
        r = CliRunner().invoke(app, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        assert "Usage: knet " + " ".join(path) in r.output
        leaf = not hasattr(root.commands[name], "commands") or len(path) > 1
        if leaf:
            assert "example" in r.output.lower(), f"`knet {' '.join(path)} --help` shows no example"


def test_all_eight_commands_registered():
    assert sorted(_root().commands) == sorted(COMMANDS)


# ---------------------------------------------------------------- real subprocesses (.venv/bin/knet)

def _knet(*args, stdin: str | None = None, cwd=None):
    if not KNET_BIN.exists():
        pytest.skip(f"{KNET_BIN} not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: threads only add contention
    return subprocess.run([str(KNET_BIN), *map(str, args)], capture_output=True, text=True, input=stdin, cwd=cwd, env=env, timeout=120)


def _assert_one_line_error(r, needle: str):
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("knet: error: ") and needle in lines[0], r.stderr


def test_subprocess_help_and_errors(tmp_path, corrupt_image, images_dir):
    r = _knet("predict", "--help")
    assert r.returncode == 0 and "Examples:" in r.stdout
    _assert_one_line_error(_knet("predict", tmp_path / "missing.png", "--task", "panoptic", "-o", tmp_path / "o"), "missing.png")
    _assert_one_line_error(_knet("predict", images_dir / "a.png", "--task", "segment", "-o", tmp_path / "o"), "unknown task")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    _assert_one_line_error(_knet("predict", images_dir / "a.png", "--task", "semantic", "-c", bad, "-o", tmp_path / "o"), "bad.safetensors")


def test_subprocess_corrupt_image(tmp_path, corrupt_image, tiny_checkpoint):
    ckpt = tiny_checkpoint("semantic")
    _assert_one_line_error(_knet("predict", corrupt_image, "--task", "semantic", "-c", ckpt, "-o", tmp_path / "o"), "broken.png")


def test_subprocess_predict_stdin_jsonl(tmp_path, images_dir, tiny_checkpoint):
    ckpt = tiny_checkpoint("semantic")
    listing = "\n".join(str(p) for p in sorted(images_dir.iterdir()))
    r = _knet("predict", "-", "--task", "semantic", "-c", ckpt, "-o", tmp_path / "o", "--jsonl", "--device", "cpu", stdin=listing)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert len(lines) == 3 and all(Path(ln["outputs"]["label"]).is_file() for ln in lines)
    assert r.stderr == ""  # no warnings, and no progress bar when stderr is not a terminal


# ---------------------------------------------------------------- benchmark

def test_benchmark_tiny_iters(tmp_path, fake_checkpoint):
    import torch

    threads = torch.get_num_threads()
    try:
        _benchmark_tiny_iters(tmp_path, fake_checkpoint)
        assert torch.get_num_threads() == 1  # --threads 1
    finally:
        torch.set_num_threads(threads)


def _benchmark_tiny_iters(tmp_path, fake_checkpoint):
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(app, ["benchmark", "-c", str(fake_checkpoint("panoptic")), "--task", "panoptic", "--size", "65x97",
                                 "--iters", "3", "--runs", "2", "--warmup", "1", "--json", str(out), "--device", "cpu", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert "FPS" in r.stdout and "mean +- std over 2 runs" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["input_shape"] == [1, 3, 96, 128] and doc["iters"] == 3 and len(doc["fps"]) == 2
    assert doc["fps_mean"] > 0 and doc["fps_std"] >= 0
    r = CliRunner().invoke(app, ["benchmark", "-c", str(fake_checkpoint("panoptic")), "--iters", "1", "--json", str(out)])
    assert r.exit_code == 2 and "exists" in r.stderr  # checked before running
    r = CliRunner().invoke(app, ["benchmark", "-c", str(fake_checkpoint("panoptic")), "--size", "800by1333"])
    assert r.exit_code == 2 and "--size" in r.stderr


def test_benchmark_real_model(tmp_path, tiny_checkpoint):
    ckpt = tiny_checkpoint("panoptic")
    r = CliRunner().invoke(app, ["benchmark", "-c", str(ckpt), "--size", "64x64", "--iters", "2", "--runs", "2", "--warmup", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "FPS" in r.stdout


# ---------------------------------------------------------------- demo

def test_demo_without_checkpoint_is_one_line(monkeypatch, tmp_path):
    from knet.engine import predictor

    monkeypatch.setattr(predictor, "DEMO_CHECKPOINT", tmp_path / "absent" / "knet_demo_panoptic.safetensors")
    r = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "d")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.strip() == f"knet: error: demo checkpoint not found: {tmp_path / 'absent' / 'knet_demo_panoptic.safetensors'}"
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "x.png"), "--task", "panoptic", "-o", str(tmp_path / "d")])
    assert r.exit_code == 2  # the missing image is reported first
