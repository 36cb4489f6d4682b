"""Compile-only dry run: lower and compile a config's train step for a simulated mesh.

No record is read and no array is allocated: the train state, the batch and the key are
abstract (``jax.ShapeDtypeStruct`` with their shardings), the training split is a shape-only
placeholder (``data.num_train_examples`` / ``num_classes`` / ``image_size`` from the config,
else the prepared dataset's metadata), and the jitted step of ``jaxdiv.train.loop`` is
lowered and compiled by XLA for the mesh ``config.mesh`` describes over the available devices
(``python -m jaxdiv train --dry_run`` gives it 8 simulated CPU devices). This verifies an
ImageNet config end to end (names, shapes, sharding rules, the step's compilation) on a
laptop, and reports XLA's own cost estimate of one step (``compiled.cost_analysis()``: the
floating-point operations of one device's partition, counting a multiply-add as 2) and the
per-device memory of its buffers (``compiled.memory_analysis()``).

The step compiled is the loop's own: ``loop.make_train_step(setup, members)`` applied to
``loop.abstract_step_inputs(setup, members)``, the shapes and shardings the loop passes.
``members=K`` compiles K stacked members (a seed cohort, ``loop.train_members``) as one
member-stacked step, the state's leading member dimension split over the mesh's ``member``
axis.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections

from jaxdiv.errors import JaxdivError
from jaxdiv.train import mesh as mesh_lib
from jaxdiv.train.loop import abstract_state, abstract_step_inputs, build_setup, make_train_step


def simulate_devices(n: int) -> None:
    """Give JAX ``n`` CPU devices. Must run before anything touches a JAX device."""
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        if jax.device_count() < n:
            raise JaxdivError(
                f"the dry run needs {n} devices but JAX already started with "
                f"{jax.device_count()}; run it in a fresh process (the CLI does), or set "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={n} JAX_PLATFORMS=cpu"
            )
        return
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", int(n))


def _count(tree: Any) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def dry_run(config: ml_collections.ConfigDict, *, members: int = 1) -> dict[str, Any]:
    """Compile ``config``'s train step on the current devices; returns the cost report."""
    if members < 1:
        raise JaxdivError(f"members must be >= 1, got {members}")
    config = copy.deepcopy(config)
    setup = build_setup(config, load_train=False)
    mesh = setup.mesh
    if members > 1 and members % mesh.shape["member"]:
        raise JaxdivError(
            f"{members} members do not divide the mesh's member axis ({mesh.shape['member']}); "
            "use a multiple of it"
        )
    batch_size = int(config.batch_size)
    h, w, c = setup.image_shape
    args = abstract_step_inputs(setup, members)
    state, state_sh = args[0], jax.tree_util.tree_map(lambda s: s.sharding, args[0])
    step = make_train_step(setup, members, state_sh)
    t0 = time.perf_counter()
    lowered = step.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    cost = dict(cost or {})
    mem = compiled.memory_analysis()
    flops_device = float(cost.get("flops", float("nan")))
    n_dev = mesh.size
    params = _count(state["params"])
    sizes = mesh_lib.sharding_summary(state_sh, state)
    examples_per_step = batch_size * members
    report = {
        "name": str(config.get("name", "")),
        "model": config.model.name,
        "method": config.method.name,
        "members": members,
        "mesh": mesh_lib.describe(mesh),
        "devices": n_dev,
        "platform": jax.devices()[0].platform,
        "global_batch": batch_size,
        "image_shape": [int(h), int(w), int(c)],
        "parameters": params // members,
        "state_bytes_per_device": sizes["bytes_per_device"],
        "state_bytes_total": sizes["bytes_replicated"],
        "flops_per_step_per_device": flops_device,
        "flops_per_step": flops_device * n_dev,
        "flops_per_example": flops_device * n_dev / examples_per_step,
        "bytes_accessed_per_device": float(cost.get("bytes accessed", float("nan"))),
        "memory_per_device": {
            "arguments": int(mem.argument_size_in_bytes),
            "outputs": int(mem.output_size_in_bytes),
            "aliased": int(mem.alias_size_in_bytes),
            "temporaries": int(mem.temp_size_in_bytes),
        }
        if mem is not None
        else None,
        "steps": int(setup.total_steps),
        "steps_per_epoch": int(setup.steps_per_epoch),
        "train_examples": len(setup.train_split),
        "total_flops": flops_device * n_dev * int(setup.total_steps),
        "lower_seconds": t1 - t0,
        "compile_seconds": t2 - t1,
    }
    return report


def format_report(r: dict[str, Any]) -> str:
    """A short human-readable summary of a dry-run report."""
    mem = r.get("memory_per_device") or {}
    gib = 2.0**30
    peak = (
        mem.get("arguments", 0)
        + mem.get("outputs", 0)
        - mem.get("aliased", 0)
        + mem.get("temporaries", 0)
    )
    lines = [
        f"dry run of {r['name'] or r['model']}: {r['model']} / {r['method']}"
        + (f" x {r['members']} stacked members" if r["members"] > 1 else ""),
        f"  mesh {r['mesh']} ({r['platform']}), global batch {r['global_batch']} of "
        f"{'x'.join(map(str, r['image_shape']))}",
        f"  parameters {r['parameters']:,}; train state {r['state_bytes_per_device'] / gib:.3f} "
        f"GiB per device ({r['state_bytes_total'] / gib:.3f} GiB in all)",
        f"  compiled in {r['compile_seconds']:.1f} s (lowered in {r['lower_seconds']:.1f} s)",
        f"  XLA cost: {r['flops_per_step_per_device'] / 1e12:.3f} TFLOP per device per step, "
        f"{r['flops_per_example'] / 1e9:.2f} GFLOP per example",
        f"  buffers per device: arguments {mem.get('arguments', 0) / gib:.2f} GiB, "
        f"temporaries {mem.get('temporaries', 0) / gib:.2f} GiB (about {peak / gib:.2f} GiB "
        "at peak; XLA:CPU's buffer plan, a GPU/TPU plan differs)",
        f"  schedule: {r['steps']:,} steps ({r['steps_per_epoch']:,} per epoch of "
        f"{r['train_examples']:,} examples) = {r['total_flops'] / 1e18:.2f} EFLOP for the run",
    ]
    return "\n".join(lines)


def run_cli(
    config: ml_collections.ConfigDict,
    *,
    devices: int = 8,
    members: int = 1,
    workdir: str | None = None,
) -> dict[str, Any]:
    """The ``train --dry_run`` verb: simulate ``devices`` CPU devices, compile, print, and
    write ``WORKDIR/dry_run.json`` when a workdir is given."""
    simulate_devices(devices)
    if jax.device_count() != devices:
        raise JaxdivError(
            f"the dry run simulates {devices} devices but JAX has {jax.device_count()}; "
            "run it in a fresh process"
        )
    report = dry_run(config, members=members)
    print(format_report(report))
    if workdir:
        path = Path(workdir) / "dry_run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=float) + "\n")
        print(f"  report written to {path}")
    return report


def parameter_count(config: ml_collections.ConfigDict) -> int:
    """Trainable parameters of ``config``'s model and method heads (no compilation)."""
    setup = build_setup(copy.deepcopy(config), load_train=False)
    return _count(abstract_state(setup)["params"])
