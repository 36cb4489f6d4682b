"""A population of hard voters: the whole ``analyze`` stage against per-pair loops.

    python benchmarks/hard_voters.py              # 200 members x 10,000 examples x 10 classes
    python benchmarks/hard_voters.py --quick      # 20 members x 2,000 examples, seconds
    python benchmarks/hard_voters.py --out r.json

The population gives hard decisions only (class indices, 1% abstentions), synthetic with
realistic correlations: a per-example difficulty shared by every member, a per-example
"confusing" class most wrong answers go to, and four groups of members ("recipes") that
share extra per-example noise; accuracies about 0.55-0.85. It is written to a temporary
store, and three things are timed on it in one run:

1. ``jaxdiv.stages.analyze.run_analyze``: the whole stage (loading, every pair and member
   statistic, vote pair ensembles, greedy selection, per-class accuracy, specialisation of
   the base, writing the tables), run once to compile and once timed;
2. the per-pair NumPy loop: per-member correctness precomputed once, then for each pair the
   same row of the pair table from the pair's vectors (the 2 x 2 counts, kappa, phi, Q,
   disagreement, double fault, dominance both ways, and the vote ensemble's expected
   accuracy, gain and conversion);
3. model-vs-human's per-pair error-consistency loop (``modelvshuman/plotting/analyses.py``,
   ``ErrorConsistency.get_result_df`` and ``analysis``), re-implemented step by step on the
   long trial table it reads (one row per subject and image: ``subj``, ``condition``,
   ``image_id``, ``object_response``, ``category``): per pair, select both members' rows
   with ``df.loc``, each member's accuracy, sort both by ``image_id``, reset the index,
   check the ids agree, compare correctness and form Cohen's kappa. It computes kappa only.
   Its time is given twice: as it runs (the two ``df.loc`` selections per pair included)
   and for its per-pair ``analysis`` alone (each member's rows selected once beforehand).

The loops run on a random subset of pairs and their time is extrapolated to all
``N (N - 1) / 2`` pairs (the output says how many pairs were timed). Peak memory is the
largest resident set size seen during a phase (sampled every 2 ms) minus the size before
it. The phases run one after the other in one process on the same data.

Measured on a shared 2-CPU machine (other jobs running), N=200, M=10,000, C=10: analyze
3.5-4.7 s (first run with compilation 7.5 s, peak +30 MB); the NumPy loop over pair rows
0.04-0.07 ms/pair (0.8-1.3 s for all pairs: it computes the pair rows only, not the stage);
model-vs-human's loop 83-89 ms/pair as it runs (about 1,700 s, 350-500x analyze) and
7.9 ms/pair for its analysis alone (156 s, 33x analyze).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pandas as pd  # noqa: E402

from jaxdiv.stages.analyze import run_analyze  # noqa: E402
from jaxdiv.store import Store  # noqa: E402


# ---------------------------------------------------------------------------- memory
def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak so far
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


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


# ---------------------------------------------------------------------------- population
def population(n: int, m: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hard decisions int32 [N, M] (-1: abstained) and labels [M] (module docstring)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, m)
    difficulty = rng.normal(0.0, 1.2, m)
    confusing = (labels + rng.integers(1, c, m)) % c
    skill = rng.uniform(0.3, 2.0, n)
    recipe = rng.integers(0, 4, n)
    recipe_noise = rng.normal(0.0, 0.8, (4, m))
    logit = skill[:, None] - difficulty[None, :] + recipe_noise[recipe] + rng.normal(0, 0.7, (n, m))
    right = rng.random((n, m)) < 1.0 / (1.0 + np.exp(-logit))
    other = (labels + rng.integers(1, c, (n, m))) % c
    wrong = np.where(rng.random((n, m)) < 0.6, confusing[None, :], other)
    pred = np.where(right, labels[None, :], wrong)
    pred[rng.random((n, m)) < 0.01] = -1
    return pred.astype(np.int32), labels.astype(np.int32)


def write_store(root: str, pred: np.ndarray, labels: np.ndarray, c: int) -> list[str]:
    store = Store(root)
    ids = np.array([f"x{i:06d}" for i in range(len(labels))])
    store.write_split("test", labels, ids)
    names = [f"m{i:03d}" for i in range(len(pred))]
    for i, name in enumerate(names):
        info = {"category": "Base" if i == 0 else "Architecture", "source": "imported"}
        store.write_member(name, "test", predictions=pred[i], num_classes=c, info=info)
    return names


# ---------------------------------------------------------------------------- loops
def numpy_pair_row(ci, cj, pi, pj, m: int) -> dict:
    """One row of the pair table from two members' vectors (float64)."""
    n11 = np.count_nonzero(ci & cj)
    ai, aj = np.count_nonzero(ci), np.count_nonzero(cj)
    n10, n01 = ai - n11, aj - n11
    n00 = m - ai - aj + n11
    det = n11 * n00 - n10 * n01
    den_k = ai * (m - aj) + aj * (m - ai)
    var = np.sqrt(ai * (m - ai)) * np.sqrt(aj * (m - aj))
    q_den = n11 * n00 + n10 * n01
    # vote of two: both right 1, one right vs another class 1/2, right + abstainer 1
    abst = (ci & (pj < 0)) | (cj & (pi < 0))
    xor = ci ^ cj
    right = n11 + 0.5 * (np.count_nonzero(xor) + np.count_nonzero(abst))
    return {
        "error_inconsistency": (n10 + n01) / m,
        "error_consistency_kappa": 2.0 * det / den_k if den_k else np.nan,
        "disagreement": np.count_nonzero(pi != pj) / m,
        "double_fault": n00 / m,
        "error_correlation": det / var if var else np.nan,
        "yules_q": det / q_den if q_den else np.nan,
        "ensemble_accuracy": right / m,
        "relative_ensemble_gain": (2.0 * right - ai - aj) / (2.0 * m),
        "conversion_rate": (right - n11) / (n10 + n01) if n10 + n01 else np.nan,
        "dominance_a_given_b": n11 / aj if aj else np.nan,
        "dominance_b_given_a": n11 / ai if ai else np.nan,
    }


def numpy_loop(pred, labels, pairs) -> float:
    correct = pred == labels[None, :]
    m = len(labels)
    t = time.perf_counter()
    for i, j in pairs:
        numpy_pair_row(correct[i], correct[j], pred[i], pred[j], m)
    return time.perf_counter() - t


def trial_table(pred, labels, names) -> pd.DataFrame:
    """model-vs-human's long format: one row per subject and image ('na' = abstained)."""
    n, m = pred.shape
    classes = np.array([f"class{k}" for k in range(int(labels.max()) + 1)] + ["na"])
    return pd.DataFrame(
        {
            "subj": np.repeat(np.asarray(names), m),
            "condition": "0",
            "image_id": np.tile(np.array([f"x{i:06d}" for i in range(m)]), n),
            "object_response": classes[np.where(pred < 0, len(classes) - 1, pred).ravel()],
            "category": np.tile(classes[labels], n),
        }
    )


def peer_accuracy(df: pd.DataFrame) -> float:
    return len(df.loc[df.object_response == df.category]) / len(df)


def peer_error_consistency(df1: pd.DataFrame, df2: pd.DataFrame) -> float:
    """``ErrorConsistency.analysis`` of model-vs-human, step by step."""
    assert len(df1) > 0 and len(df2) > 0 and len(df1) == len(df2)
    p1, p2 = peer_accuracy(df1), peer_accuracy(df2)
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    df1 = df1.sort_values(by="image_id").reset_index()
    df2 = df2.sort_values(by="image_id").reset_index()
    assert df1["image_id"].equals(df2["image_id"])
    df1, df2 = df1.copy(), df2.copy()
    df1["is_correct"] = df1.object_response == df1.category
    df2["is_correct"] = df2.object_response == df2.category
    observed = (df1.is_correct == df2.is_correct).sum() / len(df1)
    return 1.0 if observed == 1.0 else (observed - expected) / (1.0 - expected)


def peer_loop(df: pd.DataFrame, names, pairs) -> float:
    t = time.perf_counter()
    for i, j in pairs:  # get_result: both members' rows selected per pair
        df1 = df.loc[(df["condition"] == "0") & (df["subj"] == names[i])]
        df2 = df.loc[(df["condition"] == "0") & (df["subj"] == names[j])]
        peer_error_consistency(df1, df2)
    return time.perf_counter() - t


def peer_analysis_loop(df: pd.DataFrame, names, pairs) -> float:
    """The peer's per-pair ``analysis`` alone, each member's rows selected once beforehand."""
    frames = {name: part for name, part in df.groupby("subj")}
    t = time.perf_counter()
    for i, j in pairs:
        peer_error_consistency(frames[names[i]], frames[names[j]])
    return time.perf_counter() - t


# ---------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=200)
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--numpy_pairs", type=int, default=2000, help="pairs the NumPy loop times")
    ap.add_argument("--peer_pairs", type=int, default=100, help="pairs the peer loop times")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.members, args.examples, args.numpy_pairs, args.peer_pairs = 20, 2000, 100, 20
    n, m, c = args.members, args.examples, args.classes
    pred, labels = population(n, m, c)
    total_pairs = n * (n - 1) // 2
    rng = np.random.default_rng(1)
    ia, ib = np.triu_indices(n, k=1)

    def sample(k):
        pick = rng.choice(total_pairs, size=min(k, total_pairs), replace=False)
        return list(zip(ia[pick], ib[pick], strict=True))

    tmp = tempfile.mkdtemp(prefix="hard-voters-")
    try:
        names = write_store(os.path.join(tmp, "store"), pred, labels, c)
        t = time.perf_counter()
        run_analyze(os.path.join(tmp, "store"), "test", None, os.path.join(tmp, "cold"))
        cold = time.perf_counter() - t
        with PeakRSS() as mem_analyze:
            t = time.perf_counter()
            summary = run_analyze(os.path.join(tmp, "store"), "test", None, os.path.join(tmp, "a"))
            analyze = time.perf_counter() - t
        accuracy = pd.read_csv(os.path.join(tmp, "a", "members.csv"))["accuracy"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    numpy_pairs = sample(args.numpy_pairs)
    with PeakRSS() as mem_numpy:
        numpy_time = numpy_loop(pred, labels, numpy_pairs)
    df = trial_table(pred, labels, names)
    peer_pairs = sample(args.peer_pairs)
    with PeakRSS() as mem_peer:
        peer_time = peer_loop(df, names, peer_pairs)
    analysis_time = peer_analysis_loop(df, names, peer_pairs)
    numpy_all = numpy_time / len(numpy_pairs) * total_pairs
    analysis_all = analysis_time / len(peer_pairs) * total_pairs
    peer_all = peer_time / len(peer_pairs) * total_pairs
    result = {
        "members": n,
        "examples": m,
        "classes": c,
        "pairs": total_pairs,
        "accuracy_range": [float(accuracy.min()), float(accuracy.max())],
        "hard_members": len(summary["hard_members"]),
        "cpu_count": os.cpu_count(),
        "analyze_s": analyze,
        "analyze_first_run_s": cold,
        "analyze_peak_rss_mb": mem_analyze.extra / 2**20,
        "numpy_loop_pairs_timed": len(numpy_pairs),
        "numpy_loop_ms_per_pair": 1e3 * numpy_time / len(numpy_pairs),
        "numpy_loop_all_pairs_s": numpy_all,
        "numpy_loop_peak_rss_mb": mem_numpy.extra / 2**20,
        "peer_loop_pairs_timed": len(peer_pairs),
        "peer_loop_ms_per_pair": 1e3 * peer_time / len(peer_pairs),
        "peer_loop_all_pairs_s": peer_all,
        "peer_loop_peak_rss_mb": mem_peer.extra / 2**20,
        "peer_analysis_only_ms_per_pair": 1e3 * analysis_time / len(peer_pairs),
        "peer_analysis_only_all_pairs_s": analysis_all,
        "speedup_vs_peer_analysis_only": analysis_all / analyze,
        "speedup_vs_numpy_loop": numpy_all / analyze,
        "speedup_vs_peer_loop": peer_all / analyze,
    }
    print(
        f"hard voters: N={n} members x M={m} examples x C={c} classes, {total_pairs} pairs, "
        f"{os.cpu_count()} CPUs\n"
        f"  analyze (whole stage)   {analyze:8.2f} s   (first run with compilation "
        f"{cold:.2f} s), peak +{result['analyze_peak_rss_mb']:.0f} MB\n"
        f"  per-pair NumPy loop     {numpy_all:8.2f} s   ({result['numpy_loop_ms_per_pair']:.3f} "
        f"ms/pair over {len(numpy_pairs)} pairs, extrapolated), peak "
        f"+{result['numpy_loop_peak_rss_mb']:.0f} MB\n"
        f"  model-vs-human loop     {peer_all:8.2f} s   ({result['peer_loop_ms_per_pair']:.2f} "
        f"ms/pair over {len(peer_pairs)} pairs, extrapolated; kappa only), peak "
        f"+{result['peer_loop_peak_rss_mb']:.0f} MB\n"
        f"  ... its analysis alone  {analysis_all:8.2f} s   "
        f"({result['peer_analysis_only_ms_per_pair']:.2f} ms/pair, rows selected beforehand)\n"
        f"  loop time / analyze time: NumPy loop (pair rows only) "
        f"{result['speedup_vs_numpy_loop']:.2f}, model-vs-human loop "
        f"{result['speedup_vs_peer_loop']:.1f} ({result['speedup_vs_peer_analysis_only']:.1f} "
        "for its analysis alone)"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
