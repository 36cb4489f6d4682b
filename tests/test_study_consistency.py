"""A tiny study with a failing member and an imported one: the exit status, members without
embeddings, all-or-nothing publication of analysis + representation + report, leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from jaxdiv.stages import study as study_module
from jaxdiv.stages.study import run_study
from jaxdiv.store import Store, import_predictions
from tests.support import tiny_config

pytestmark = pytest.mark.usefixtures("tfds_dir")
ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("analysis", "representation", "report")


def population() -> ml_collections.ConfigDict:
    pop = ml_collections.ConfigDict()
    pop.name = "consistency"
    pop.base = tiny_config(num_steps=4, **{"data.eval_split": ""})
    pop.splits = ["train[45000:45200]", "test[:200]"]
    pop.analysis = ml_collections.ConfigDict(
        {"split": "test[:200]", "calibration_split": "train[45000:45200]", "bootstrap": 0}
    )
    pop.represent = ml_collections.ConfigDict(
        {"n_seeds": 1, "c_grid": (1.0,), "max_iter": 10, "transfer": "none", "keep": (4,)}
    )
    pop.variations = [
        {"overrides": {"seed": 1}},
        {"overrides": {"optimizer.learning_rate": 1e30}, "name": "diverges"},
    ]
    return pop


def get_config() -> ml_collections.ConfigDict:
    return population()


def _snapshot(workdir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(workdir)): p.read_bytes()
        for name in OUTPUTS
        for p in sorted((workdir / name).rglob("*"))
        if p.is_file()
    }


def _quiet_rerun(workdir: Path) -> tuple[dict, list[str]]:
    lines: list[str] = []
    return run_study(population(), workdir, progress=False, log=lines.append), lines


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study run once by the CLI (a member diverges), then a member imported."""
    workdir = tmp_path_factory.mktemp("study")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxdiv",
            "study",
            f"--config={Path(__file__).resolve()}",
            f"--workdir={workdir}",
            "--noprogress",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return workdir, proc


def test_a_failed_member_gives_exit_status_1_after_the_report(study):
    workdir, proc = study
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "members that failed: diverges" in proc.stderr
    assert json.loads((workdir / "analysis" / "members.json").read_text()) == ["seed1", "tiny"]
    assert "diverges" in (workdir / "report" / "index.html").read_text()
    assert json.loads((workdir / "study.json").read_text())["failed"] == ["diverges"]


def test_an_imported_member_is_analysed_reported_and_left_out_of_representation(study, tmp_path):
    workdir, _ = study
    store = Store(workdir / "store")
    rng = np.random.default_rng(0)
    for split in store.splits():
        ids, labels = store.ids(split), store.labels(split)
        np.savez(tmp_path / f"{split}-labels.npz", ids=ids, labels=labels)
        logits = rng.normal(size=(len(ids), 10)).astype(np.float32)
        np.savez(tmp_path / "imported.npz", ids=ids, logits=logits)
        import_predictions(
            store.root, split, tmp_path / f"{split}-labels.npz", [tmp_path / "imported.npz"]
        )
    result, lines = _quiet_rerun(workdir)
    assert result["failed"] == ["diverges"]
    names = json.loads((workdir / "analysis" / "members.json").read_text())
    assert names == ["imported", "seed1", "tiny"]
    left_out = [line for line in lines if "without embeddings" in line]
    assert left_out == [
        "representation: leaving out 1 member(s) without embeddings (imported); 2 remain"
    ]
    represent = json.loads((workdir / "representation" / "represent.json").read_text())
    assert represent["members"] == ["seed1", "tiny"] and "imported" in represent["skipped"]
    assert "imported" in (workdir / "report" / "index.html").read_text()
    assert not list(workdir.glob(".publish.tmp-*"))


@pytest.mark.parametrize("stage", ["run_represent", "write_report"])
def test_a_failed_stage_leaves_the_previous_three_outputs(study, monkeypatch, stage):
    workdir, _ = study
    before = _snapshot(workdir)
    assert {k.split("/")[0] for k in before} == set(OUTPUTS)

    def broken(*args, **kwargs):
        raise RuntimeError(f"{stage} broke")

    monkeypatch.setattr(study_module, stage, broken)
    with pytest.raises(RuntimeError, match="broke"):
        _quiet_rerun(workdir)
    assert _snapshot(workdir) == before
    assert not list(workdir.glob(".publish.tmp-*"))


def test_leftovers_of_dead_runs_are_cleaned_on_the_next_run(study):
    workdir, _ = study
    left = [".analysis.tmp-killed", ".report-killed", ".representation.tmp-killed"]
    for name in left:
        (workdir / name).mkdir()
        (workdir / name / "half.csv").write_text("x")
    (workdir / ".publish.tmp-killed").mkdir()  # a staging folder without a manifest
    _quiet_rerun(workdir)
    hidden = {p.name for p in workdir.iterdir() if p.is_dir() and p.name.startswith(".")}
    assert not hidden & {*left, ".publish.tmp-killed"}
