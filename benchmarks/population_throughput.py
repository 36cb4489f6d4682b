"""Member-images/s of training a K-member seed cohort: scheduler's strategy vs one by one.

    python benchmarks/population_throughput.py [--k=4,8,16] [--steps=10] [--model=resnet20]

Baseline ("sequential"): each member's jitted train step called in turn, as the scheduler
does on CPU. Candidate ("vmap"): the K members stacked and trained by one member-stacked step
(``loop.make_train_step(setup, members=K)``, the step ``loop.train_members`` runs; the
scheduler's choice on GPU/TPU). Both use jaxdiv's real train step with the same synthetic
uint8 batches (batch 128), timed after compilation; compile times are printed apart. No
record is read: the setup is a shape-only one (``build_setup(config, load_train=False)``
with ``data.num_train_examples``, ``num_classes`` and ``image_size`` set). Prints
member-images/s for each, the ratio chosen/sequential, and peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdiv.population.scheduler import choose_strategy
from jaxdiv.train import loop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _config(model: str, batch: int) -> ml_collections.ConfigDict:
    from configs.cifar10_supervised import get_config

    c = get_config()
    c.model.name = model
    c.model.kwargs = ml_collections.ConfigDict({"width": 1} if "resnet" in model else {})
    c.batch_size = batch
    c.num_steps = 1000
    c.data.train_split = "train[:2048]"
    c.data.num_train_examples = 2048  # shape-only setup: no record is read
    c.data.num_classes = 10
    c.data.image_size = 32
    return c


def _setup(config) -> loop.Setup:
    """The trainer's setup without data (synthetic batches are fed)."""
    return loop.build_setup(config, load_train=False)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(k: int, steps: int, setup: loop.Setup, batch: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (k, batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, (k, batch)).astype(np.int32)
    keys = jax.random.split(jax.random.PRNGKey(0), k)
    out: dict[str, float] = {}

    # sequential: K separate states, one compiled step called K times per round
    step = loop.make_train_step(setup)
    states = [loop.init_state(setup, keys[i]) for i in range(k)]
    batches = [{"image": jnp.asarray(images[i]), "label": jnp.asarray(labels[i])} for i in range(k)]
    t = time.perf_counter()
    for i in range(k):
        states[i], m = step(states[i], batches[i], keys[i])
    jax.block_until_ready(states)
    out["sequential_compile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        for i in range(k):
            states[i], m = step(states[i], batches[i], keys[i])
    jax.block_until_ready(states)
    out["sequential"] = k * steps * batch / (time.perf_counter() - t)
    del states

    # vmap: one stacked state, the trainer's member-stacked step
    vstep = loop.make_train_step(setup, members=k)
    stacked = loop.init_state(setup, keys, members=k)
    sharding = loop.batch_sharding(setup.mesh, members=k)
    vbatch = jax.device_put({"image": images, "label": labels}, sharding)
    vkeys = jax.device_put(keys, loop.key_sharding(setup.mesh, members=k))
    t = time.perf_counter()
    stacked, m = vstep(stacked, vbatch, vkeys)
    jax.block_until_ready(stacked)
    out["vmap_compile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        stacked, m = vstep(stacked, vbatch, vkeys)
    jax.block_until_ready(stacked)
    out["vmap"] = k * steps * batch / (time.perf_counter() - t)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", default="4", help="comma-separated cohort sizes")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    chosen = choose_strategy("auto")
    setup = _setup(_config(args.model, args.batch))
    print(
        f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}); scheduler "
        f"strategy: {chosen}; model {args.model}, batch {args.batch}, {args.steps} timed "
        "rounds"
    )
    print(
        f"{'K':>3} {'sequential img/s':>17} {'vmap img/s':>11} {'vmap/seq':>9} "
        f"{'chosen/seq':>11} {'compile seq/vmap s':>19} {'peak RSS MB':>12}"
    )
    for k in map(int, args.k.split(",")):
        r = bench(k, args.steps, setup, args.batch)
        chosen_rate = r[chosen]
        print(
            f"{k:>3} {r['sequential']:>17.0f} {r['vmap']:>11.0f} "
            f"{r['vmap'] / r['sequential']:>9.2f} {chosen_rate / r['sequential']:>11.2f} "
            f"{r['sequential_compile_s']:>9.1f}/{r['vmap_compile_s']:<9.1f} {_peak_mb():>12.0f}"
        )


if __name__ == "__main__":
    main()
