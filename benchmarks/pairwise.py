"""All-pairs statistics: jaxdiv's jitted kernels against the per-pair NumPy loop.

    python benchmarks/pairwise.py            # N=64 and N=256 members, M=10,000, C=100
    python benchmarks/pairwise.py --quick    # small sizes, a few seconds

The population is synthetic but realistic: about 70% accuracy, errors correlated through a
shared per-example difficulty, shared confusions and four "training recipes" (groups of
members that share extra noise). The full pairwise table is every statistic of
``jaxdiv.analysis.pairwise`` (error inconsistency, kappa, disagreement, double fault, error
correlation, Yule's Q, symmetric KL, Jensen-Shannon) plus every pair ensemble (accuracy,
relative gain, conversion rate). The baseline is the per-pair NumPy loop existing tools use:
per-member arrays precomputed once, then for each pair the statistics from the pair's
vectors (counts for the indicator statistics; vectorised over examples and classes for the
divergences and the ensemble). At N=256 the loop runs on a random subset of pairs and its
time is extrapolated to all pairs (said in the output). Peak memory is the largest resident
set size seen during a phase (sampled every 2 ms) minus the size before it. Both sides run
in the same process on the same data, one after the other; compile time is excluded (each
JAX phase is run once before it is timed).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxdiv.analysis.ensembles import (  # noqa: E402
    member_features,
    pair_ensembles_checked,
    pairwise_table,
)
from jaxdiv.analysis.pairwise import divergences_checked, pairwise_error_stats  # noqa: E402
from jaxdiv.analysis.tiling import DEFAULT_MEMORY_BUDGET  # noqa: E402


# ---------------------------------------------------------------------------- data
def make_population(n: int, m: int, c: int, seed: int = 0, strength: float = 5.0):
    """Logits [n, m, c] float32 and labels [m]: ~70% accuracy, correlated errors."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, m)
    shared = rng.standard_normal((m, c), dtype=np.float32)  # confusions all members share
    difficulty = rng.standard_normal(m, dtype=np.float32)
    recipes = [rng.standard_normal((m, c), dtype=np.float32) for _ in range(4)]
    logits = np.empty((n, m, c), np.float32)
    rows = np.arange(m)
    for i in range(n):
        z = shared + 0.7 * recipes[i % 4] + 0.9 * rng.standard_normal((m, c), dtype=np.float32)
        z[rows, labels] += strength + 1.5 * difficulty + 0.2 * rng.standard_normal()
        logits[i] = 1.3 * z
    return logits, labels


# ---------------------------------------------------------------------------- baseline
def numpy_loop(logits, labels, pairs):
    """The per-pair loop: returns ({pair: stats}, seconds per family)."""
    times = {
        "setup": 0.0,
        "indicators": 0.0,
        "disagreement": 0.0,
        "divergences": 0.0,
        "ensembles": 0.0,
    }
    t0 = time.perf_counter()
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    probs = np.exp(logp)
    pred = logits.argmax(-1)
    correct = pred == labels
    acc = correct.mean(1)
    m = labels.shape[0]
    times["setup"] = time.perf_counter() - t0
    out = {}
    for i, j in pairs:
        t0 = time.perf_counter()
        ci, cj = correct[i], correct[j]
        n11 = np.count_nonzero(ci & cj)
        n10 = np.count_nonzero(ci & ~cj)
        n01 = np.count_nonzero(~ci & cj)
        n00 = m - n11 - n10 - n01
        ei = (n10 + n01) / m
        c_exp = acc[i] * acc[j] + (1 - acc[i]) * (1 - acc[j])
        kappa = ((1 - ei) - c_exp) / (1 - c_exp) if c_exp < 1 else np.nan
        df = n00 / m
        cov = n11 / m - acc[i] * acc[j]
        var = acc[i] * (1 - acc[i]) * acc[j] * (1 - acc[j])
        corr = cov / np.sqrt(var) if var > 0 else np.nan
        qd = n11 * n00 + n10 * n01
        q = (n11 * n00 - n10 * n01) / qd if qd else np.nan
        t_dis = time.perf_counter()
        dis = np.count_nonzero(pred[i] != pred[j]) / m
        t1 = time.perf_counter()
        pi, pj, li, lj = probs[i], probs[j], logp[i], logp[j]
        skl = np.sum((pi - pj) * (li - lj)) / m
        mid = 0.5 * (pi + pj)
        js = np.sum(0.5 * pi * li + 0.5 * pj * lj - mid * np.log(np.maximum(mid, 1e-38))) / m
        t2 = time.perf_counter()
        ens = (pi + pj).argmax(-1) == labels
        ens_acc = ens.mean()
        xor = ci != cj
        conv = ens[xor].mean() if xor.any() else np.nan
        t3 = time.perf_counter()
        times["indicators"] += t_dis - t0
        times["disagreement"] += t1 - t_dis
        times["divergences"] += t2 - t1
        times["ensembles"] += t3 - t2
        out[i, j] = dict(
            error_inconsistency=ei,
            error_consistency_kappa=kappa,
            disagreement=dis,
            double_fault=df,
            error_correlation=corr,
            yules_q=q,
            symmetric_kl=skl,
            js_divergence=js,
            ensemble_accuracy=ens_acc,
            relative_ensemble_gain=ens_acc - (acc[i] + acc[j]) / 2,
            conversion_rate=conv,
        )
    return out, times


# ---------------------------------------------------------------------------- measuring
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Largest RSS above the starting RSS while the block runs (sampled every 2 ms)."""

    def __enter__(self):
        self.start = rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.extra = self.peak - self.start


class Clock:
    """Wall and process CPU seconds (CPU time adds up all threads; under contention from
    other processes it inflates less than wall time)."""

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0


def timed(fn, repeats: int):
    """Best wall (and CPU) time of ``repeats`` runs after one warm-up run (compilation),
    and the peak extra RSS of a timed run."""
    jax.block_until_ready(fn())
    best, cpu, extra = float("inf"), float("inf"), 0
    for _ in range(repeats):
        with PeakRSS() as mem, Clock() as clock:
            out = jax.block_until_ready(fn())
        best, cpu = min(best, clock.wall), min(cpu, clock.cpu)
        extra = max(extra, mem.extra)
    timed.cpu = cpu
    return out, best, extra


def mib(b: int) -> str:
    return f"{b / 2**20:.0f} MiB"


def run(n: int, m: int, c: int, loop_pairs: int | None, repeats: int) -> dict:
    t0 = time.perf_counter()
    logits_np, labels = make_population(n, m, c)
    logits = jax.device_put(logits_np)
    print(
        f"\n== N={n} members, M={m} examples, C={c} classes "
        f"(data {mib(logits_np.nbytes)}, made in {time.perf_counter() - t0:.1f} s)"
    )
    all_pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if loop_pairs is None or loop_pairs >= len(all_pairs):
        pairs, scale = all_pairs, 1.0
    else:
        pick = np.random.default_rng(1).choice(len(all_pairs), loop_pairs, replace=False)
        pairs, scale = [all_pairs[k] for k in sorted(pick)], len(all_pairs) / loop_pairs

    # --- jaxdiv: the whole table through the public entry point, then phase by phase
    budget = DEFAULT_MEMORY_BUDGET
    labels_j = jnp.asarray(labels, jnp.int32)
    inv_t = jnp.ones(n, jnp.float32)
    table, t_table, mem_table = timed(lambda: pairwise_table(logits, labels), repeats)
    cpu_table = timed.cpu
    f, t_feat, mem_feat = timed(
        lambda: member_features(logits, labels_j, inv_t, "prob", budget), repeats
    )
    correct, pred = f["correct"], f["pred"]
    print(
        f"accuracy {float(correct.mean()):.3f} (members {float(correct.mean(1).min()):.3f}"
        f"..{float(correct.mean(1).max()):.3f})"
    )
    _, t_ind, mem_ind = timed(lambda: pairwise_error_stats(correct, pred), max(repeats, 5))
    _, t_ind_only, _ = timed(lambda: pairwise_error_stats(correct), max(repeats, 5))
    _, t_div, mem_div = timed(lambda: divergences_checked(logits, inv_t, budget), repeats)
    _, t_ens, mem_ens = timed(
        lambda: pair_ensembles_checked(logits, labels_j, inv_t, "prob", budget, f), repeats
    )

    # --- the loop
    with PeakRSS() as mem_loop, Clock() as loop_clock:
        ref, lt = numpy_loop(logits_np, labels, pairs)
    loop = {k: v * (scale if k != "setup" else 1.0) for k, v in lt.items()}
    loop_total = sum(loop.values())
    # the loop is single-threaded: its CPU time, scaled like its wall time
    loop_cpu = loop_total * loop_clock.cpu / loop_clock.wall

    # --- agreement between the two
    jx = table
    worst = {}
    for key in ref[pairs[0]]:
        mat = np.asarray(jx[key])
        a = np.array([mat[i, j] for i, j in pairs], np.float64)
        b = np.array([ref[p][key] for p in pairs], np.float64)
        both_nan = np.isnan(a) & np.isnan(b)
        worst[key] = float(np.max(np.where(both_nan, 0.0, np.abs(a - b)), initial=0.0))

    note = (
        ""
        if scale == 1.0
        else (
            f"  [loop run on {len(pairs)} of {len(all_pairs)} pairs, "
            f"times extrapolated x{scale:.1f}]"
        )
    )
    print(f"pairs: {len(all_pairs)}{note}")
    print(f"{'phase':<46}{'jaxdiv':>11}{'numpy loop':>13}{'ratio':>9}{'jax peak mem':>15}")

    def row(name, tj, tl, mem):
        ratio = f"{tl / tj:8.1f}x" if tl else ""
        tl_s = f"{tl:12.3f}s" if tl else " " * 13
        print(f"{name:<46}{tj:10.4f}s{tl_s}{ratio:>9}{mib(mem):>15}")

    row("per-member pass (preds, probs, features)", t_feat, loop["setup"], mem_feat)
    row("error-indicator stats (EI, kappa, DF, phi, Q)", t_ind_only, loop["indicators"], mem_ind)
    row("  same + disagreement", t_ind, loop["indicators"] + loop["disagreement"], mem_ind)
    row("symmetric KL + Jensen-Shannon", t_div, loop["divergences"], mem_div)
    row("pair ensembles (acc, gain, conversion)", t_ens, loop["ensembles"], mem_ens)
    print(f"{'  sum of the phases':<46}{t_feat + t_ind + t_div + t_ens:10.4f}s")
    row("FULL TABLE (pairwise_table, incl. checks)", t_table, loop_total, mem_table)
    print(
        f"{'  in CPU seconds (all threads)':<46}{cpu_table:10.4f}s{loop_cpu:12.3f}s"
        f"{loop_cpu / cpu_table:8.1f}x"
    )
    print(
        f"numpy loop peak extra memory {mib(mem_loop.extra)}; process peak RSS "
        f"{mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}"
    )
    print(
        "max |jaxdiv - loop| over the loop's pairs: "
        + ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
    )
    return {"n": n, "jax": t_table, "loop": loop_total, "jax_cpu": cpu_table, "loop_cpu": loop_cpu}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per JAX phase (best)")
    ap.add_argument(
        "--loop-pairs",
        type=int,
        default=300,
        help="pairs the loop runs at the larger N (extrapolated)",
    )
    args = ap.parse_args(argv)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform} "
        f"({os.cpu_count()} CPUs); load average {os.getloadavg()[0]:.1f} at start"
    )
    if args.quick:
        sizes = [(16, 2000, 20, None, args.repeats), (48, 2000, 20, 100, args.repeats)]
    else:
        # one timed run per phase at N=256 (each takes tens of seconds on 2 cores)
        sizes = [(64, 10_000, 100, None, args.repeats), (256, 10_000, 100, args.loop_pairs, 1)]
    results = [run(*size) for size in sizes]
    if len(results) == 2:
        a, b = results
        grow = (b["n"] * (b["n"] - 1)) / (a["n"] * (a["n"] - 1))
        print(
            f"\nN {a['n']} -> {b['n']} ({grow:.1f}x pairs): jaxdiv {b['jax'] / a['jax']:.1f}x "
            f"time, numpy loop {b['loop'] / a['loop']:.1f}x time"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at end (other processes share these cores)")


if __name__ == "__main__":
    main()
