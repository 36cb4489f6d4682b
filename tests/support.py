"""Tiny configs and subprocess helpers for the training tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ml_collections

ROOT = Path(__file__).resolve().parents[1]


def snapshot(root: str | os.PathLike) -> dict[str, bytes]:
    """Every file below ``root`` and its bytes (to show that nothing was written)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = os.path.join(dirpath, f)
            out[path] = Path(path).read_bytes()
    return out


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    """ResNet-8 on 512 CIFAR-10 images, batch 32: a few seconds per run on 2 cores."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cfg", ROOT / "configs" / "cifar10_supervised.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    c.name = "tiny"
    c.data.train_split = "train[:512]"
    c.data.eval_split = "test[:256]"
    c.model.name = "resnet"
    c.model.kwargs = ml_collections.ConfigDict({"depth": 8, "width": 1})
    c.batch_size = 32
    c.num_steps = 8
    c.optimizer.warmup_epochs = 0.0
    c.log_every_steps = 2
    c.checkpoint_every_steps = 4
    c.eval_every_steps = 0
    c.eval_batch_size = 128
    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def run_python(code: str, *, devices: int = 1, timeout: float = 600, check: bool = True):
    """Run ``code`` in a fresh interpreter with ``devices`` simulated CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc
