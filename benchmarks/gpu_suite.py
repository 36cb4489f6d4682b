"""GPU suite: cohort training, the ResNet-20 train step and the full-size analysis, one command.

    python benchmarks/gpu_suite.py [--out=suite.json]    # one GPU; sized to fit 8 minutes
    python benchmarks/gpu_suite.py --quick --out=q.json  # CPU, tiny sizes (45 s on 2 cores)

The 8-minute size is not yet measured on a GPU; ``--parts``, ``--members`` and
``--population`` shrink a run that does not fit.

Every input is synthetic (random uint8 images of CIFAR shape, random labels, random logits):
the machine needs no dataset. Three parts, each timed after its compilation (compile times are
reported apart) with ``jax.block_until_ready``:

(a) cohort: member-images/s of K = 1, 4, 8, 16 ResNet-20 members (batch 128 each) trained as
    ONE member-stacked step (the trainer's ``make_train_step(setup, members=K)``:
    ``mesh.over_members`` of the one-member step, the state stacked along a leading member
    axis; K=1 is the one-member step) against the same K members trained one after another
    (K calls of the one-member step per round), and the ratio.
(b) train step: images/s of the trainer's supervised ResNet-20 step (``make_train_step``,
    batch 128, SGD Nesterov, on-device crop/flip/normalise included).
(c) analysis: N=100 members x M=50,000 examples x C=1,000 classes of float32 logits (about
    70% accuracy, errors correlated through a shared per-example difficulty, shared
    confusions and four "recipes"), generated on the device, through the kernels
    ``jaxdiv analyze`` runs: temperatures, member metrics before/after calibration, member
    outputs, all-pairs error statistics, divergences, pair ensembles, dominance and
    per-class accuracy. Per phase: the first call as ``analyze`` makes it (compilation and
    the kernels' host-side input checks included), the kernel alone (those checks skipped),
    and the ratio of the kernel's time to the memory-bandwidth bound (the bytes the phase
    must read at least once, e.g. N*M*C*4 for the logits, over the device's peak
    bandwidth). The peak bandwidth comes from a table keyed by ``device_kind``; other
    devices get it measured with a large on-device copy (the output says which). The host
    input check is timed on its own.

Peak memory is the device's ``peak_bytes_in_use`` (a process-wide high-water mark, read after
each part) where the backend reports it, else the host's peak RSS. The figures are printed as
tables and, with ``--out``, written as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

import jaxdiv  # noqa: E402,F401  (its XLA defaults apply before JAX opens a backend)
from jaxdiv.analysis.calibration import calibration_report, fit_temperatures  # noqa: E402
from jaxdiv.analysis.checks import check_population  # noqa: E402
from jaxdiv.analysis.ensembles import pair_ensembles  # noqa: E402
from jaxdiv.analysis.members import member_outputs  # noqa: E402
from jaxdiv.analysis.pairwise import pairwise_error_stats, predictive_divergences  # noqa: E402
from jaxdiv.analysis.specialisation import dominance, per_class_accuracy  # noqa: E402
from jaxdiv.train import loop  # noqa: E402

# Peak HBM bandwidth in bytes/s by a substring of jax.devices()[0].device_kind (first match).
PEAK_BANDWIDTH: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H200",), 4.8e12),
    (("H100", "HBM3"), 3.35e12),  # H100 SXM ("NVIDIA H100 80GB HBM3")
    (("H100", "SXM"), 3.35e12),
    (("A100", "80GB"), 2.0e12),
)
MEMORY_BUDGET = 256 * 2**20  # run_analyze's default
PARTS = ("cohort", "train_step", "analysis")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Everything the suite's size depends on."""

    cohort_members: tuple[int, ...]
    model: str
    model_kwargs: dict[str, int]
    batch: int
    cohort_rounds: int
    train_steps: int
    warmup_steps: int
    n: int
    m: int
    c: int
    copy_bytes: int  # array size of the bandwidth measurement


FULL = Sizes((1, 4, 8, 16), "resnet20", {"width": 1}, 128, 20, 100, 3, 100, 50_000, 1_000, 2**31)
QUICK = Sizes((1, 2), "resnet", {"depth": 8, "width": 1}, 16, 5, 5, 2, 6, 2_000, 10, 2**24)


# ---------------------------------------------------------------------------- measuring
def peak_memory() -> dict[str, Any]:
    """The device's peak bytes in use where the backend reports it, else the host's peak RSS."""
    stats = None
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001  (backends without memory statistics raise or return None)
        stats = None
    if stats and stats.get("peak_bytes_in_use"):
        return {"bytes": int(stats["peak_bytes_in_use"]), "source": "device peak_bytes_in_use"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"bytes": int(rss), "source": "host peak RSS"}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


def peak_bandwidth(copy_bytes: int) -> tuple[float, str]:
    """(bytes/s, where it came from): the table's figure for this device kind, else measured."""
    kind = jax.devices()[0].device_kind
    for keys, bandwidth in PEAK_BANDWIDTH:
        if all(k.lower() in kind.lower() for k in keys):
            return bandwidth, f"table ({kind})"
    x = jnp.zeros(copy_bytes // 4, jnp.float32)
    copy = jax.jit(lambda a: a + 1.0)
    jax.block_until_ready(copy(x))
    best = min(timed(lambda: copy(x))[1] for _ in range(5))
    return 2 * x.nbytes / best, f"measured: best of 5 jitted copies of {x.nbytes / 2**20:.0f} MiB"


# ---------------------------------------------------------------------------- training
def train_config(sizes: Sizes, compute_dtype: str) -> ml_collections.ConfigDict:
    """configs/cifar10_supervised.py with the suite's model and batch, and the training
    split's shape given in the config, so no data is read."""
    from configs.cifar10_supervised import get_config

    c = get_config()
    c.model.name = sizes.model
    c.model.kwargs = ml_collections.ConfigDict(dict(sizes.model_kwargs))
    c.batch_size = sizes.batch
    c.num_steps = 100_000
    c.compute_dtype = compute_dtype
    c.data.num_train_examples = 50_000
    c.data.num_classes = 10
    c.data.image_size = 32
    return c


def synthetic_batches(k: int, batch: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (k, batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, (k, batch)).astype(np.int32)
    return images, labels


def cohort_row(setup: loop.Setup, single_step, k: int, sizes: Sizes) -> dict[str, float]:
    """Member-images/s of K members as the trainer stacks them (``make_train_step(setup, K)``;
    K=1 is the one-member step) vs the same K members one after another (``single_step``
    called K times per round), from the same initial states and batches."""
    images, labels = synthetic_batches(k, sizes.batch)
    keys = jax.random.split(jax.random.PRNGKey(0), k)
    per_round = k * sizes.batch
    init = jax.device_get(loop.init_state(setup, keys[0] if k == 1 else keys, members=k))
    member = (
        (lambda i: init) if k == 1 else (lambda i: jax.tree_util.tree_map(lambda x: x[i], init))
    )

    # one after another: K one-member states, the one-member step called K times per round
    one_sh, one_batch_sh = loop.state_shardings(setup), loop.batch_sharding(setup.mesh)
    states = [jax.device_put(member(i), one_sh) for i in range(k)]
    batches = [
        jax.device_put({"image": images[i], "label": labels[i]}, one_batch_sh) for i in range(k)
    ]
    member_keys = [jax.device_put(keys[i], loop.key_sharding(setup.mesh)) for i in range(k)]

    def sequential_round():
        for i in range(k):
            states[i], _ = single_step(states[i], batches[i], member_keys[i])
        return states

    seq_first = _warm_up(sequential_round, sizes.warmup_steps)
    seq = per_round * _rounds_per_s(sequential_round, sizes.cohort_rounds)
    states.clear()  # free the one-member states before the stacked ones exist

    # stacked: the trainer's K-member step on one state with a leading member axis
    step = single_step if k == 1 else loop.make_train_step(setup, members=k)
    holder = [jax.device_put(init, loop.state_shardings(setup, members=k))]
    lead = (lambda x: x[0]) if k == 1 else (lambda x: x)
    batch = jax.device_put(
        {"image": lead(images), "label": lead(labels)}, loop.batch_sharding(setup.mesh, k)
    )
    stacked_keys = jax.device_put(lead(keys), loop.key_sharding(setup.mesh, k))

    def stacked_round():
        holder[0], _ = step(holder[0], batch, stacked_keys)
        return holder[0]

    st_first = _warm_up(stacked_round, sizes.warmup_steps)
    st = per_round * _rounds_per_s(stacked_round, sizes.cohort_rounds)
    return {
        "members": k,
        "stacked_member_images_per_s": st,
        "sequential_member_images_per_s": seq,
        "ratio_stacked_over_sequential": st / seq,
        "stacked_first_step_s": st_first,
        "sequential_first_round_s": seq_first,
    }


def _warm_up(round_fn: Callable[[], Any], steps: int) -> float:
    """Run ``round_fn`` ``steps`` times (at least once); the first call's seconds."""
    _, first = timed(round_fn)
    for _ in range(steps - 1):
        timed(round_fn)
    return first


def _rounds_per_s(round_fn: Callable[[], Any], rounds: int) -> float:
    t0 = time.perf_counter()
    for _ in range(rounds):
        out = round_fn()
    jax.block_until_ready(out)
    return rounds / (time.perf_counter() - t0)


def train_step_rate(setup: loop.Setup, single_step, sizes: Sizes) -> dict[str, float]:
    """Images/s of the one-member train step on one synthetic batch."""
    images, labels = synthetic_batches(1, sizes.batch, seed=2)
    batch = jax.device_put(
        {"image": images[0], "label": labels[0]}, loop.batch_sharding(setup.mesh)
    )
    key = jax.device_put(jax.random.PRNGKey(3), loop.key_sharding(setup.mesh))
    holder = [loop.init_state(setup, jax.random.PRNGKey(3))]
    last: dict[str, Any] = {}

    def one():
        holder[0], last["metrics"] = single_step(holder[0], batch, key)
        return holder[0]

    first = _warm_up(one, sizes.warmup_steps)
    rate = _rounds_per_s(one, sizes.train_steps)
    metrics = jax.device_get(last["metrics"])
    return {
        "images_per_s": rate * sizes.batch,
        "step_ms": 1e3 / rate,
        "first_step_s": first,
        "final_loss": float(metrics.get("loss", float("nan"))),
    }


# ---------------------------------------------------------------------------- analysis
def strength_for_accuracy(c: int, target: float = 0.7, seed: int = 0) -> float:
    """The correct-class boost giving about ``target`` accuracy under ``population``'s noise."""
    rng = np.random.default_rng(seed)
    m = 4000
    sd = math.sqrt(1 + 0.7**2 + 0.9**2)
    others = (rng.standard_normal((m, c - 1)) * sd).max(axis=1)
    own = rng.standard_normal(m) * sd
    difficulty = rng.standard_normal(m)
    lo, hi = -5.0, 20.0
    for _ in range(40):
        mid = (lo + hi) / 2
        acc = float(np.mean(own + mid + 1.5 * difficulty > others))
        lo, hi = (mid, hi) if acc < target else (lo, mid)
    return (lo + hi) / 2


def population(n: int, m: int, c: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """Logits [n, m, c] float32 and labels [m], made on the device: a shared confusion
    matrix, four recipes (members i % 4 share one), per-member noise and a correct-class
    boost with a shared per-example difficulty (XLA's RngBitGenerator keys: fast to compile
    and to run)."""
    strength = strength_for_accuracy(c)
    key = jax.random.key(seed, impl="rbg")
    k_lab, k_common, k_scalar, k_mem = jax.random.split(key, 4)

    @jax.jit
    def build():
        labels = jax.random.randint(k_lab, (m,), 0, c, jnp.int32)
        common = jax.random.normal(k_common, (5, m, c))  # shared confusions, then 4 recipes
        scalars = jax.random.normal(k_scalar, (m + n,))  # per-example difficulty, member offset
        boost = strength + 1.5 * scalars[:m]
        hot = jax.nn.one_hot(labels, c, dtype=jnp.bool_)

        def member(i):
            noise = jax.random.normal(jax.random.fold_in(k_mem, i), (m, c))
            z = common[0] + 0.7 * common[1 + i % 4] + 0.9 * noise
            z = jnp.where(hot, z + (boost + 0.2 * scalars[m + i])[:, None], z)
            return 1.3 * z

        return jax.lax.map(member, jnp.arange(n)), labels

    return build()


class HostChecks:
    """Within the block, every ``jaxdiv.analysis`` module's ``check_population`` (the host-side
    input check each kernel starts with: a copy of the logits to the host, then a finiteness
    test) is counted, and skipped when ``skip``."""

    def __init__(self, skip: bool):
        self.skip, self.count, self._patched = skip, 0, []

    def _check(self, *args, **kwargs):
        self.count += 1
        if not self.skip:
            check_population(*args, **kwargs)

    def __enter__(self) -> HostChecks:
        for name, module in list(sys.modules.items()):
            if (
                name.startswith("jaxdiv.analysis.")
                and name != check_population.__module__
                and getattr(module, "check_population", None) is check_population
            ):
                module.check_population = self._check
                self._patched.append(module)
        return self

    def __exit__(self, *exc) -> None:
        for module in self._patched:
            module.check_population = check_population


def analysis_phases(logits, labels, budget: int, box: dict[str, Any]):
    """(name, call, bytes it must read at least once) in ``run_analyze``'s order; ``box``
    carries the temperatures and member outputs from phase to phase."""
    n, m, c = logits.shape
    logit_bytes = n * m * c * 4 + m * 4
    names = [f"m{i}" for i in range(n)]
    kw = {"memory_budget": budget, "names": names}
    box["temperatures"] = np.ones(n)

    def temperatures():
        box["temperatures"] = fit_temperatures(logits, labels, **kw)
        return box["temperatures"]

    def outputs():
        box["outs"] = member_outputs(logits, labels, **kw)
        return box["outs"]

    def errors():
        outs = box["outs"]
        return pairwise_error_stats(outs["correct"], outs["pred"], memory_budget=budget)

    t = lambda: box["temperatures"]  # noqa: E731
    return [
        ("temperatures", temperatures, logit_bytes),
        ("member metrics", lambda: calibration_report(logits, labels, t(), **kw), logit_bytes),
        ("member outputs", outputs, logit_bytes),
        ("error statistics", errors, n * m * (1 + 4)),
        (
            "divergences",
            lambda: predictive_divergences(logits, temperatures=t(), **kw),
            logit_bytes,
        ),
        (
            "pair ensembles",
            lambda: pair_ensembles(logits, labels, temperatures=t(), **kw),
            logit_bytes,
        ),
        ("dominance", lambda: dominance(logits, labels, **kw), logit_bytes),
        ("per-class accuracy", lambda: per_class_accuracy(logits, labels, **kw), logit_bytes),
    ]


def run_analysis(sizes: Sizes, bandwidth: float, budget: int) -> dict[str, Any]:
    """Each phase twice: as ``analyze`` calls it (compilation and host input checks included),
    then the kernel alone (host checks skipped); the host check is timed on its own."""
    (logits, labels), made = timed(lambda: population(sizes.n, sizes.m, sizes.c))
    n, m, c = logits.shape
    logit_bytes = n * m * c * 4 + m * 4
    check = lambda: check_population(logits, labels, names=[f"m{i}" for i in range(n)])  # noqa: E731
    _, check_first = timed(check)  # the logits' first copy to the host is cached on the array
    _, check_s = timed(check)
    host = {
        "first_call_s": check_first,
        "steady_s": check_s,
        "bound_bytes": logit_bytes,
        "bound_s": logit_bytes / bandwidth,
    }
    print(f"  host input check: first {check_first:.3f} s, then {check_s:.3f} s", flush=True)
    box: dict[str, Any] = {}
    phases = []
    for name, call, nbytes in analysis_phases(logits, labels, budget, box):
        with HostChecks(skip=False) as checks:
            _, first = timed(call)
        with HostChecks(skip=True):
            _, kernel = timed(call)
        bound = nbytes / bandwidth
        phases.append(
            {
                "phase": name,
                "first_call_s": first,
                "kernel_s": kernel,
                "host_checks": checks.count,
                "bound_bytes": nbytes,
                "bound_s": bound,
                "ratio_to_bound": kernel / bound,
            }
        )
        print(
            f"  {name:<20} first call {first:9.3f} s ({checks.count} host checks), "
            f"kernel {kernel:9.3f} s",
            flush=True,
        )
    kernel_total = sum(p["kernel_s"] for p in phases)
    bound_total = sum(p["bound_s"] for p in phases)
    checks_total = sum(p["host_checks"] for p in phases)
    return {
        "members": n,
        "examples": m,
        "classes": c,
        "logits_bytes": int(logits.nbytes),
        "mean_accuracy": float(np.mean(box["outs"]["correct"])),
        "generate_s": made,
        "memory_budget": budget,
        "host_check": host,
        "phases": phases,
        "total_first_call_s": sum(p["first_call_s"] for p in phases),
        "total_kernel_s": kernel_total,
        "total_host_checks": checks_total,
        "total_warm_s": kernel_total + checks_total * check_s,
        "total_bound_s": bound_total,
        "total_ratio_to_bound": kernel_total / bound_total,
    }


# ---------------------------------------------------------------------------- printing
def print_cohort(rows: list[dict], model: str, batch: int) -> None:
    print(f"\n(a) cohort training, {model}, batch {batch} per member (member-images/s)")
    print(f"{'K':>3} {'stacked':>10} {'one by one':>11} {'ratio':>7} {'compile+1st s':>15}")
    for r in rows:
        print(
            f"{r['members']:>3} {r['stacked_member_images_per_s']:>10.0f} "
            f"{r['sequential_member_images_per_s']:>11.0f} "
            f"{r['ratio_stacked_over_sequential']:>7.2f} {r['stacked_first_step_s']:>15.1f}"
        )


def print_analysis(a: dict, bandwidth: float, source: str) -> None:
    print(
        f"\n(c) analysis, N={a['members']} x M={a['examples']:,} x C={a['classes']:,} float32 "
        f"({a['logits_bytes'] / 2**30:.1f} GiB, mean accuracy {a['mean_accuracy']:.3f}); "
        f"peak bandwidth {bandwidth / 1e9:,.0f} GB/s, {source}"
    )
    print(
        f"{'phase':<20} {'1st call s':>10} {'checks':>6} {'kernel s':>9} {'bound s':>9} "
        f"{'x bound':>8}"
    )
    for p in a["phases"]:
        print(
            f"{p['phase']:<20} {p['first_call_s']:>10.3f} {p['host_checks']:>6} "
            f"{p['kernel_s']:>9.3f} {p['bound_s']:>9.5f} {p['ratio_to_bound']:>8.0f}"
        )
    print(
        f"{'total':<20} {a['total_first_call_s']:>10.3f} {a['total_host_checks']:>6} "
        f"{a['total_kernel_s']:>9.3f} {a['total_bound_s']:>9.5f} "
        f"{a['total_ratio_to_bound']:>8.0f}"
    )
    h = a["host_check"]
    print(
        f"host input check (check_population on the logits): {h['steady_s']:.3f} s each "
        f"(first {h['first_call_s']:.3f} s, with the copy to the host); warm analysis with "
        f"its {a['total_host_checks']} checks: {a['total_warm_s']:.3f} s"
    )


# ---------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CPU, tiny sizes (for a test)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    ap.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--memory_budget", type=int, default=MEMORY_BUDGET, help="analysis bytes")
    ap.add_argument("--members", default=None, help="cohort sizes K, e.g. 1,4,8,16")
    ap.add_argument("--population", default=None, help="analysis N,M,C, e.g. 100,50000,1000")
    args = ap.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; valid: {', '.join(PARTS)}")
    if args.quick:
        jax.config.update("jax_platforms", "cpu")
    sizes = QUICK if args.quick else FULL
    try:
        if args.members:
            ks = tuple(int(k) for k in args.members.split(","))
            sizes = dataclasses.replace(sizes, cohort_members=ks)
        if args.population:
            n, m, c = (int(v) for v in args.population.split(","))
            sizes = dataclasses.replace(sizes, n=n, m=m, c=c)
    except ValueError:
        ap.error("--members takes integers K,K,...; --population takes N,M,C")
    t_start = time.perf_counter()
    device = jax.devices()[0]
    print(
        f"device: {device.device_kind} ({device.platform}, {jax.device_count()} device(s)); "
        f"jax {jax.__version__}; {'--quick sizes' if args.quick else 'full sizes'}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    result: dict[str, Any] = {
        "device_kind": device.device_kind,
        "platform": device.platform,
        "device_count": jax.device_count(),
        "jax_version": jax.__version__,
        "quick": bool(args.quick),
        "compute_dtype": args.compute_dtype,
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg()[0],
        "peak_memory": {},
    }
    if "cohort" in parts or "train_step" in parts:
        setup = loop.build_setup(train_config(sizes, args.compute_dtype), load_train=False)
        single_step = loop.make_train_step(setup)
        train_info = {"model": sizes.model, "model_kwargs": sizes.model_kwargs}
        train_info["batch"] = sizes.batch
    if "cohort" in parts:
        rows = []
        for k in sizes.cohort_members:
            rows.append(cohort_row(setup, single_step, k, sizes))
            print(f"  cohort K={k} done ({time.perf_counter() - t_start:.0f} s)", flush=True)
        result["cohort"] = {
            **train_info,
            "rounds": sizes.cohort_rounds,
            "stacked_step": "jaxdiv.train.loop.make_train_step(setup, members=K)",
            "rows": rows,
        }
        result["peak_memory"]["cohort"] = peak_memory()
        print_cohort(rows, sizes.model, sizes.batch)
    if "train_step" in parts:
        r = train_step_rate(setup, single_step, sizes)
        result["train_step"] = {**train_info, "steps": sizes.train_steps, **r}
        result["peak_memory"]["train_step"] = peak_memory()
        print(
            f"\n(b) train step, {sizes.model}, batch {sizes.batch}: {r['images_per_s']:.0f} "
            f"images/s ({r['step_ms']:.2f} ms/step over {sizes.train_steps} steps; first step "
            f"{r['first_step_s']:.1f} s{', compiled in (a)' if 'cohort' in parts else ''})"
        )
    if "analysis" in parts:
        bandwidth, source = peak_bandwidth(sizes.copy_bytes)
        print(f"\n(c) analysis phases (bandwidth {bandwidth / 1e9:,.0f} GB/s, {source})")
        a = run_analysis(sizes, bandwidth, int(args.memory_budget))
        result["analysis"] = {**a, "bandwidth_bytes_per_s": bandwidth, "bandwidth_source": source}
        result["peak_memory"]["analysis"] = peak_memory()
        print_analysis(a, bandwidth, source)
    mem = result["peak_memory"]
    if mem:
        print(
            "\npeak memory after each part (process high-water mark): "
            + ", ".join(f"{k} {v['bytes'] / 2**30:.2f} GiB" for k, v in mem.items())
            + f" ({next(iter(mem.values()))['source']})"
        )
    result["wall_s"] = time.perf_counter() - t_start
    result["load_average_end"] = os.getloadavg()[0]
    print(f"wall {result['wall_s']:.0f} s; load average {result['load_average_end']:.1f} at end")
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {path}")
    return result


if __name__ == "__main__":
    main()
