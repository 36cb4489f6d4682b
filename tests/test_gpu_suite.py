"""benchmarks/gpu_suite.py --quick: every figure of the suite is written, finite and positive."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COHORT_FIGURES = (
    "stacked_member_images_per_s",
    "sequential_member_images_per_s",
    "ratio_stacked_over_sequential",
    "stacked_first_step_s",
    "sequential_first_round_s",
)
TRAIN_FIGURES = ("images_per_s", "step_ms", "first_step_s", "final_loss")
PHASE_FIGURES = ("first_call_s", "kernel_s", "bound_bytes", "bound_s", "ratio_to_bound")
ANALYSIS_FIGURES = (
    "mean_accuracy",
    "generate_s",
    "total_first_call_s",
    "total_kernel_s",
    "total_warm_s",
    "total_bound_s",
    "total_ratio_to_bound",
    "bandwidth_bytes_per_s",
)
PHASES = (
    "temperatures",
    "member metrics",
    "member outputs",
    "error statistics",
    "divergences",
    "pair ensembles",
    "dominance",
    "per-class accuracy",
)


def _positive(where: str, value) -> None:
    assert isinstance(value, int | float) and not isinstance(value, bool), (where, value)
    assert math.isfinite(value) and value > 0, (where, value)


def test_quick_suite_writes_every_figure(tmp_path):
    out = tmp_path / "suite.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_suite.py", "--quick", f"--out={out}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith("device: cpu"), proc.stdout[:200]
    r = json.loads(out.read_text())
    assert r["quick"] is True and r["device_kind"] == "cpu"

    rows = r["cohort"]["rows"]
    assert [row["members"] for row in rows] == [1, 2]
    for row in rows:
        for key in COHORT_FIGURES:
            _positive(f"cohort K={row['members']} {key}", row[key])

    for key in TRAIN_FIGURES:
        _positive(f"train_step {key}", r["train_step"][key])
    assert r["train_step"]["batch"] == 16

    a = r["analysis"]
    assert (a["members"], a["examples"], a["classes"]) == (6, 2000, 10)
    for key in ANALYSIS_FIGURES:
        _positive(f"analysis {key}", a[key])
    assert 0.6 < a["mean_accuracy"] < 0.8  # the synthetic population's ~70% accuracy
    assert a["bandwidth_source"].startswith("measured")
    assert [p["phase"] for p in a["phases"]] == list(PHASES)
    for p in a["phases"]:
        for key in PHASE_FIGURES:
            _positive(f"{p['phase']} {key}", p[key])
    assert a["phases"][0]["bound_bytes"] == 6 * 2000 * 10 * 4 + 2000 * 4
    assert a["total_host_checks"] >= len(PHASES) - 1  # every logits kernel checks its input
    for key in ("first_call_s", "steady_s", "bound_s"):
        _positive(f"host_check {key}", a["host_check"][key])

    for part in ("cohort", "train_step", "analysis"):
        _positive(f"peak memory {part}", r["peak_memory"][part]["bytes"])
    _positive("wall_s", r["wall_s"])
