"""Vectorised pair probes against one scikit-learn LogisticRegression per pair.

A synthetic 16-member population (embeddings [M, D] whose class signal overlaps between
members) is written to a temporary file; the script then runs, each in a fresh subprocess of
this same run so that peak memory is measured separately:

- jaxdiv: ``evaluate_probes`` on the concatenated embeddings of all 120 pairs at once
  (batched L-BFGS, chunked over pairs), one fixed C, scored on the evaluation rows
  (``--workload=mixing``: the 15 random-subset mixing probes of every pair at once);
- scikit-learn: ``LogisticRegression(C, lbfgs, multinomial)`` fitted probe by probe on the
  same standardised features (max_iter=1000), with one BLAS thread by default
  (``--sklearn-threads``): OpenBLAS's threads made these small fits 20-60x slower in CPU
  time on a loaded 2-core machine.

It prints wall and CPU seconds (CPU time is the fairer measure on a shared machine), the
ratio, each worker's peak resident memory (ru_maxrss, including the interpreter and its
imports: the idle baseline of each worker is printed too) and how far the two sets of
accuracies differ.

    python benchmarks/probes.py                      # 16 members, D=64, M=5000/10000
    python benchmarks/probes.py --workload mixing    # 1800 probes
    python benchmarks/probes.py --members 8 --train 2000 --eval 2000   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _population(members, dim, m_train, m_eval, classes, seed=0):
    rng = np.random.default_rng(seed)
    latent = 3 * classes
    means = rng.normal(size=(classes, latent)) * 0.45
    out = {}
    for split, m in (("train", m_train), ("eval", m_eval)):
        y = rng.integers(0, classes, m)
        out[f"y_{split}"] = y
        out[f"z_{split}"] = means[y] + rng.normal(size=(m, latent))
    for i in range(members):
        view = rng.choice(latent, latent // 2, replace=False)  # overlapping views
        w = rng.normal(size=(len(view), dim)) / np.sqrt(len(view))
        for split in ("train", "eval"):
            z = out[f"z_{split}"][:, view]
            e = np.maximum(z @ w + 0.3 * rng.normal(size=(len(z), dim)), 0.0)
            out[f"e{i}_{split}"] = e.astype(np.float32)
    for split in ("train", "eval"):
        del out[f"z_{split}"]
    return out


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _worker(kind: str, path: str, c: float, tol: float, workload: str, out_path: str) -> None:
    from jaxdiv.analysis.mixing import mixing_masks

    d = np.load(path)
    n = int(d["members"])
    tr = [d[f"e{i}_train"] for i in range(n)]
    ev = [d[f"e{i}_eval"] for i in range(n)]
    ytr, yev = d["y_train"], d["y_eval"]
    pairs = np.stack(np.triu_indices(n, k=1), axis=1)
    dim = tr[0].shape[1]
    if workload == "mixing":  # 5 ratios x 3 seeds of random subsets, total dimension D
        masks = mixing_masks(np.full(n, dim), pairs, n_seeds=3)[0]
    else:  # the full concatenation of each pair
        masks = np.ones((len(pairs), 1, 2 * dim), bool)
    result = {"idle_rss_mb": None, "probes": int(masks.shape[0] * masks.shape[1])}
    if kind == "jax":
        import jax  # noqa: F401  (imports before the baseline)

        from jaxdiv.analysis.probes import evaluate_probes

        result["idle_rss_mb"] = _rss_mb()
        times = []
        for _ in range(2):  # the first call compiles
            w0, c0 = time.perf_counter(), time.process_time()
            res = evaluate_probes(tr, ytr, ev, yev, pairs, masks, c_grid=(c,), tol=tol)
            times.append((time.perf_counter() - w0, time.process_time() - c0))
        result.update(
            first=times[0],
            steady=times[1],
            accuracy=res.accuracy.ravel().tolist(),
            converged=float(res.converged.mean()),
            max_iterations=int(res.iterations.max()),
        )
    else:
        from sklearn.linear_model import LogisticRegression

        from jaxdiv.analysis.probes import standardise

        result["idle_rss_mb"] = _rss_mb()
        w0, c0 = time.perf_counter(), time.process_time()
        std = [standardise(a, b) for a, b in zip(tr, ev, strict=True)]
        acc, iters = [], []
        for p, (a, b) in enumerate(pairs):
            xtr = np.concatenate([std[a][0], std[b][0]], axis=1)
            xev = np.concatenate([std[a][1], std[b][1]], axis=1)
            for mask in masks[p]:
                clf = LogisticRegression(C=c, tol=tol, max_iter=1000)
                clf.fit(xtr[:, mask], ytr)
                acc.append(float(clf.score(xev[:, mask], yev)))
                iters.append(int(clf.n_iter_.max()))
        result.update(
            steady=(time.perf_counter() - w0, time.process_time() - c0),
            accuracy=acc,
            max_iterations=max(iters),
        )
    result["peak_rss_mb"] = _rss_mb()
    Path(out_path).write_text(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--eval", type=int, default=10000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--c", type=float, default=1.0, help="scikit-learn's C for every probe")
    ap.add_argument(
        "--workload",
        choices=("pairs", "mixing"),
        default="pairs",
        help="pairs: one probe on each pair's concatenation; mixing: 15 probes "
        "per pair (5 ratios x 3 seeds of random subsets, total dimension D)",
    )
    ap.add_argument(
        "--tol",
        type=float,
        default=1e-4,
        help="gradient tolerance for both (scikit-learn's default; both stop on "
        "max |gradient| of the mean objective)",
    )
    ap.add_argument(
        "--sklearn-threads",
        type=int,
        default=1,
        help="BLAS threads for scikit-learn (0: library default). One thread is "
        "its fastest setting for these small fits on a shared machine.",
    )
    ap.add_argument("--worker", choices=("jax", "sklearn"), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker, args.data, args.c, args.tol, args.workload, args.result)
        return

    n_pairs = args.members * (args.members - 1) // 2
    per_pair = "15 mixing probes of" if args.workload == "mixing" else "one probe on"
    width = args.dim if args.workload == "mixing" else 2 * args.dim
    print(
        f"{args.members} members, D={args.dim}, {n_pairs} pairs ({per_pair} {width} "
        f"features each), {args.classes} classes, M_train={args.train}, "
        f"M_eval={args.eval}, C={args.c}, tol={args.tol}; {os.cpu_count()} CPUs, "
        f"scikit-learn BLAS threads {args.sklearn_threads or 'default'}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "population.npz"
        np.savez(
            data,
            members=args.members,
            **_population(args.members, args.dim, args.train, args.eval, args.classes),
        )
        results = {}
        for kind in ("jax", "sklearn"):
            res_path = Path(tmp) / f"{kind}.json"
            env = dict(os.environ)
            if kind == "sklearn" and args.sklearn_threads:
                for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                    env[var] = str(args.sklearn_threads)
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    kind,
                    "--data",
                    str(data),
                    "--result",
                    str(res_path),
                    "--c",
                    str(args.c),
                    "--tol",
                    str(args.tol),
                    "--workload",
                    args.workload,
                ],
                check=True,
                env=env,
            )
            results[kind] = json.loads(res_path.read_text())
    jx, sk = results["jax"], results["sklearn"]
    print(
        f"jaxdiv batched L-BFGS, first call (compiles): wall {jx['first'][0]:7.2f} s  "
        f"cpu {jx['first'][1]:7.2f} s"
    )
    print(
        f"jaxdiv batched L-BFGS, steady:                wall {jx['steady'][0]:7.2f} s  "
        f"cpu {jx['steady'][1]:7.2f} s  (max {jx['max_iterations']} iterations, "
        f"{100 * jx['converged']:.0f}% converged)"
    )
    label = f"scikit-learn, {sk['probes']} probes one by one:"
    print(
        f"{label:<46}wall {sk['steady'][0]:7.2f} s  "
        f"cpu {sk['steady'][1]:7.2f} s  (max {sk['max_iterations']} iterations)"
    )
    print(
        f"speed-up (scikit-learn / jaxdiv steady): wall {sk['steady'][0] / jx['steady'][0]:.1f}x"
        f"  cpu {sk['steady'][1] / jx['steady'][1]:.1f}x"
    )
    print(
        f"peak RSS: jaxdiv {jx['peak_rss_mb']:.0f} MB (idle {jx['idle_rss_mb']:.0f} MB)  "
        f"scikit-learn {sk['peak_rss_mb']:.0f} MB (idle {sk['idle_rss_mb']:.0f} MB)"
    )
    diff = np.abs(np.array(jx["accuracy"]) - np.array(sk["accuracy"]))
    print(
        f"probe accuracies: jaxdiv mean {np.mean(jx['accuracy']):.4f}, scikit-learn mean "
        f"{np.mean(sk['accuracy']):.4f}; max |difference| {diff.max():.4f} "
        f"({diff.max() * args.eval:.0f} of {args.eval} examples)"
    )


if __name__ == "__main__":
    main()
