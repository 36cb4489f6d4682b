"""Cost of a self-supervised train step against the supervised step on the same backbone.

Run: python benchmarks/ssl_step.py [--model=resnet20] [--batch=128] [--steps=10]

Builds the trainer's jitted step (``jaxdiv.train.loop.make_train_step``) from each method's
CIFAR-10 config (backbone, batch and step count overridden alike) on random uint8 images,
and prints per-step wall and process-CPU time, images/s, the ratio to the supervised step,
the share of the two-view augmentation alone, and the process's peak RSS. A two-view step
pushes 2x the images through the network, so a ratio near 2 means the SSL machinery (views,
heads, loss) costs little.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np

from jaxdiv.data import views
from jaxdiv.train.loop import build_setup, init_state, make_train_step
from jaxdiv.train.mesh import make_mesh, shard_batch

ROOT = Path(__file__).resolve().parents[1]
_CONFIG_FILES = {"supcon": "simclr", "vicreg": "barlow_twins"}


def _config(name: str, model: str, batch: int) -> ml_collections.ConfigDict:
    """The method's CIFAR-10 config (the supervised one for ``supervised``), resized."""
    file = ROOT / "configs" / f"cifar10_{_CONFIG_FILES.get(name, name)}.py"
    spec = importlib.util.spec_from_file_location(file.stem, file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    c.method.name = name
    c.data.train_split = f"train[:{max(batch, 1024)}]"
    c.model.name = model
    c.model.kwargs = ml_collections.ConfigDict({"width": 1} if model.startswith("resnet") else {})
    c.batch_size = batch
    c.num_steps = 1000
    return c


def _time(fn, steps):
    fn(0)  # compile
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(1, steps + 1):
        fn(i)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--methods", default="supervised,simclr,byol,simsiam,barlow_twins")
    args = ap.parse_args()
    mesh = make_mesh()
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (args.batch, 32, 32, 3), dtype=np.uint8),
        "label": rng.integers(0, 10, args.batch).astype(np.int32),
    }
    batch = shard_batch(batch, mesh)
    results = {}
    for name in args.methods.split(","):
        setup = build_setup(_config(name, args.model, args.batch))
        state = init_state(setup, jax.random.key(0))
        step = make_train_step(setup)
        holder = {"state": state}

        def run(i, step=step, holder=holder):
            holder["state"], metrics = step(holder["state"], batch, jax.random.key(i))
            jax.block_until_ready(metrics)

        results[name] = _time(run, args.steps)
    aug = jax.jit(views.two_views, static_argnums=2)
    cfg = views.ViewConfig(crop_scale=(0.2, 1.0))
    aug_t = _time(
        lambda i: aug(jax.random.key(i), batch["image"], cfg)[1].block_until_ready(), args.steps
    )
    base_wall, base_cpu = results.get("supervised", next(iter(results.values())))
    print(
        f"{args.model}, batch {args.batch}, {jax.device_count()} device(s) "
        f"({jax.devices()[0].platform})"
    )
    print(
        f"{'method':14s} {'wall s/step':>11s} {'cpu s/step':>10s} {'img/s':>7s} "
        f"{'wall ratio':>10s} {'cpu ratio':>9s}"
    )
    for name, (wall, cpu) in results.items():
        print(
            f"{name:14s} {wall:11.3f} {cpu:10.3f} {args.batch / wall:7.0f} "
            f"{wall / base_wall:10.2f} {cpu / base_cpu:9.2f}"
        )
    print(
        f"two_views alone: {aug_t[0]:.4f} s/step wall, {aug_t[1]:.4f} cpu "
        f"({aug_t[0] / results.get('simclr', (np.nan,))[0]:.1%} of a SimCLR step)"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
