"""What the ImageNet population costs: XLA's FLOP count of each member's compiled train step
(compile-only dry run on 8 simulated CPU devices), a measured step on this CPU as a
cross-check of the FLOP-to-time conversion, and accelerator-hours under stated assumptions.

    python benchmarks/imagenet_cost.py                      # everything (~15 min on 2 cores)
    python benchmarks/imagenet_cost.py --reuse=runs/cost    # reuse saved dry-run reports
    python benchmarks/imagenet_cost.py --skip_measure       # no executed CPU step

Measured here: FLOP per example of each distinct member (XLA cost analysis, a multiply-add
counted as 2), the CPU's dense float32 matmul throughput (the "peak" baseline), and the
executed ResNet-50 train step time on one CPU device, whose ratio gives the step's achieved
utilisation of that peak. Assumed: the accelerators' peak bf16 rates and the utilisation
(model-FLOP utilisation, MFU) a tuned run reaches; see ASSUMPTIONS and docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Peak dense bf16 throughput per chip (vendor data sheets) and assumed utilisation.
ACCELERATORS = {"TPU v4 chip": 275e12, "A100": 312e12, "H100 SXM": 989e12}
ASSUMPTIONS = {"convnet": 0.25, "transformer": 0.40}
KIND = {
    "resnet50": "convnet",
    "densenet121": "convnet",
    "vit_s16": "transformer",
    "mixer_s16": "transformer",
}

# Distinct compiled steps: (report tag, config file[:variant]); members share them.
STEPS = {
    "resnet50": "configs/imagenet/resnet50.py",
    "densenet121": "configs/imagenet/densenet121.py",
    "vit_s16": "configs/imagenet/vit_s16.py",
    "mixer_s16": "configs/imagenet/mixer_s16.py",
    "simclr_resnet50": "configs/imagenet/simclr_resnet50.py",
    "byol_resnet50": "configs/imagenet/byol_resnet50.py",
}


def step_of(name: str, config) -> str:
    if config.method.name != "supervised":
        return f"{config.method.name}_{config.model.name}"
    return config.model.name


def dry_runs(reuse: Path | None) -> dict[str, dict]:
    from jaxdiv.train.dry_run import dry_run

    reports = {}
    for tag, path in STEPS.items():
        saved = reuse / tag / "dry_run.json" if reuse else None
        if saved and saved.exists():
            reports[tag] = json.loads(saved.read_text())
            print(f"  {tag}: reused {saved}", flush=True)
            continue
        config = load_config(path)
        t0 = time.perf_counter()
        reports[tag] = dry_run(config)
        print(f"  {tag}: compiled in {time.perf_counter() - t0:.0f} s", flush=True)
        if saved:
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(reports[tag], indent=2, default=float))
    return reports


def load_config(spec: str):
    import importlib.util

    path, _, variant = spec.partition(":")
    mod_spec = importlib.util.spec_from_file_location("cfg", ROOT / path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod.get_config(variant) if variant else mod.get_config()


def measure_cpu(batch: int) -> dict:
    """Dense matmul peak and an executed ResNet-50 train step on one CPU device (float32)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdiv.train.loop import build_setup, init_state, make_train_step
    from jaxdiv.train.mesh import shard_batch

    dev = jax.devices()[:1]
    n = 4096
    a = jax.device_put(jnp.ones((n, n), jnp.float32), dev[0])
    mm = jax.jit(lambda x: x @ x)
    mm(a).block_until_ready()
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        out = mm(a)
    out.block_until_ready()
    matmul = reps * 2 * n**3 / (time.perf_counter() - t0)

    config = load_config(STEPS["resnet50"])
    config.batch_size = batch
    config.compute_dtype = "float32"  # bfloat16 is emulated on CPU
    config.mesh.data = 1  # the first of the simulated devices
    setup = build_setup(config, load_train=False)
    state = init_state(setup, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    batch_np = {
        "image": rng.integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8),
        "label": rng.integers(0, 1000, batch).astype(np.int32),
        "index": np.arange(batch, dtype=np.int32),
    }
    data = shard_batch(batch_np, setup.mesh)
    key = jax.random.PRNGKey(1)
    step = make_train_step(setup).lower(state, data, key).compile()
    cost = step.cost_analysis()
    flops = float((cost[0] if isinstance(cost, list | tuple) else cost)["flops"])
    state, m = step(state, data, key)  # first call
    jax.block_until_ready(m)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        state, m = step(state, data, key)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    t = float(np.median(times))
    return {
        "matmul_flops_per_s": matmul,
        "resnet50_batch": batch,
        "resnet50_step_s": t,
        "resnet50_step_flops": flops,
        "resnet50_achieved_flops_per_s": flops / t,
        "resnet50_utilisation_of_matmul_peak": flops / t / matmul,
        "images_per_s": batch / t,
    }


def population_table(reports: dict[str, dict]) -> list[dict]:
    from configs.imagenet import population
    from jaxdiv.train.loop import build_setup

    rows = []
    for name, category, _ in population.MEMBERS:
        config = population.member_config(name)
        tag = step_of(name, config)
        r = reports[tag]
        setup = build_setup(config, load_train=False)
        steps = setup.total_steps
        examples = steps * int(config.batch_size)
        flops = r["flops_per_example"] * examples
        kind = KIND.get(config.model.name, "convnet")
        hours = {
            acc: flops / (peak * ASSUMPTIONS[kind]) / 3600 for acc, peak in ACCELERATORS.items()
        }
        rows.append(
            {
                "member": name,
                "category": category or "base",
                "step": tag,
                "epochs": examples / len(setup.train_split),
                "steps": steps,
                "gflop_per_example": r["flops_per_example"] / 1e9,
                "eflop": flops / 1e18,
                "utilisation": ASSUMPTIONS[kind],
                "hours": hours,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reuse", type=Path, default=None)
    parser.add_argument("--skip_measure", action="store_true")
    parser.add_argument("--measure_batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON")
    args = parser.parse_args()

    from jaxdiv.train.dry_run import simulate_devices

    simulate_devices(8)
    print("dry runs (8 simulated CPU devices, global batch 1024):", flush=True)
    reports = dry_runs(args.reuse)
    measured = None if args.skip_measure else measure_cpu(args.measure_batch)
    rows = population_table(reports)
    accs = list(ACCELERATORS)
    print(
        f"\n{'member':16s} {'category':15s} {'GFLOP/ex':>8s} {'epochs':>6s} {'EFLOP':>6s} "
        + " ".join(f"{a + ' h':>13s}" for a in accs)
    )
    for r in rows:
        print(
            f"{r['member']:16s} {r['category']:15s} {r['gflop_per_example']:8.2f} "
            f"{r['epochs']:6.1f} {r['eflop']:6.2f} "
            + " ".join(f"{r['hours'][a]:13.0f}" for a in accs)
        )
    total = {a: sum(r["hours"][a] for r in rows) for a in accs}
    eflop = sum(r["eflop"] for r in rows)
    print(
        f"{'total':16s} {'':15s} {'':8s} {'':6s} {eflop:6.1f} "
        + " ".join(f"{total[a]:13.0f}" for a in accs)
    )
    print(
        f"assumed utilisation: {ASSUMPTIONS}; peaks (bf16, dense): "
        + ", ".join(f"{a} {p / 1e12:.0f} TFLOP/s" for a, p in ACCELERATORS.items())
    )
    if measured:
        print(
            f"\nthis CPU: float32 matmul {measured['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s "
            f"(baseline); ResNet-50 train step, batch {measured['resnet50_batch']}: "
            f"{measured['resnet50_step_s']:.2f} s = "
            f"{measured['resnet50_achieved_flops_per_s'] / 1e9:.1f} GFLOP/s "
            f"({measured['images_per_s']:.1f} images/s), "
            f"ratio to the matmul baseline {measured['resnet50_utilisation_of_matmul_peak']:.2f}"
        )
    print(
        f"peak memory (maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "reports": reports,
                    "members": rows,
                    "total_hours": total,
                    "total_eflop": eflop,
                    "measured": measured,
                    "assumptions": ASSUMPTIONS,
                    "accelerators": ACCELERATORS,
                },
                indent=2,
                default=float,
            )
        )


if __name__ == "__main__":
    main()
