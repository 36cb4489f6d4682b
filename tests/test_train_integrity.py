"""What a run keeps through damage and interruptions: a damaged latest checkpoint, metrics of
an interval resumed inside, final metrics of a run killed before result.json, and what
``train --force`` moves aside."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxdiv.data.datasets import _cache_path, cache_dir, load_split
from jaxdiv.store.predict import predict_member
from jaxdiv.store.store import Store
from jaxdiv.train.loop import restore_variables, train, train_members
from jaxdiv.train.metrics import read_metrics
from jaxdiv.train.workdir import RUN_FILES, config_differences, strip_runtime
from tests.support import ROOT
from tests.tiny_mlp_config import tiny_mlp_config

pytestmark = pytest.mark.usefixtures("tfds_dir")


def _config(**overrides):
    config = tiny_mlp_config(**overrides)
    config.data.eval_split = ""
    return config


def _leaves(config, workdir):
    _, variables, step = restore_variables(config, workdir)
    return step, jax.tree_util.tree_leaves(jax.device_get(variables))


def _without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "images_per_sec")} for r in records]


@pytest.mark.parametrize("damage", ["array file", "metadata"])
def test_a_damaged_latest_checkpoint_is_skipped_and_the_run_ends_as_uninterrupted(
    tmp_path, capfd, damage
):
    config = _config(num_steps=8, checkpoint_every_steps=4, log_every_steps=2)
    clean = train(config, tmp_path / "clean", progress=False)
    run = tmp_path / "run"
    train(config, run, progress=False)
    (run / "result.json").unlink()  # as if killed after the final checkpoint
    files = [p for p in (run / "checkpoints" / "8").rglob("*") if p.is_file()]
    if damage == "array file":
        victim = max(files, key=lambda p: p.stat().st_size)
    else:
        victim = next(p for p in files if p.name == "_METADATA")
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    capfd.readouterr()

    again = train(config, run, progress=False)

    err = [line for line in capfd.readouterr().err.splitlines() if "checkpoint" in line]
    assert len(err) == 1 and "damaged checkpoint" in err[0] and "checkpoints/8" in err[0], err
    assert "using step 4" in err[0] and "Traceback" not in err[0]
    moved = list((run / "superseded").glob("corrupt-*/checkpoints/8"))
    assert len(moved) == 1
    step_a, a = _leaves(config, tmp_path / "clean")
    step_b, b = _leaves(config, run)
    assert step_a == step_b == 8
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6, rtol=0)
    strip = lambda r: {k: v for k, v in r.items() if k != "train_seconds_this_run"}  # noqa: E731
    assert strip(again) == strip(clean)
    assert _without_timing(read_metrics(run)) == _without_timing(read_metrics(tmp_path / "clean"))


def test_predict_skips_a_damaged_latest_checkpoint_with_one_line(tmp_path, capfd):
    config = _config(num_steps=8, checkpoint_every_steps=4, log_every_steps=2)
    train(config, tmp_path, progress=False)
    victim = max(
        (p for p in (tmp_path / "checkpoints" / "8").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    victim.write_bytes(b"")
    capfd.readouterr()
    _, _, step = restore_variables(config, tmp_path)
    err = [line for line in capfd.readouterr().err.splitlines() if "checkpoint" in line]
    assert step == 4 and len(err) == 1 and "checkpoints/8" in err[0]
    assert (tmp_path / "checkpoints" / "8").is_dir(), "predicting moves nothing"


@pytest.mark.parametrize("members", [1, 2])
def test_a_resume_inside_a_log_interval_logs_the_same_lines(tmp_path, members):
    # checkpoints at 4 and 8, lines every 3 steps: a resume at 4 restarts inside [4, 6]
    configs = [
        _config(num_steps=10, checkpoint_every_steps=4, log_every_steps=3, seed=s)
        for s in range(members)
    ]
    clean = [tmp_path / f"clean{i}" for i in range(members)]
    run = [tmp_path / f"run{i}" for i in range(members)]
    train_members(configs, clean, progress=False)
    train_members(configs, run, progress=False)
    for w in run:  # as if killed right after the checkpoint of step 4
        for step in ("8", "10"):
            shutil.rmtree(w / "checkpoints" / step)
        (w / "result.json").unlink()
    train_members(configs, run, progress=False)
    for a, b in zip(clean, run, strict=True):
        lines = read_metrics(b)
        assert [r["step"] for r in lines] == [3, 6, 9, 10]
        assert _without_timing(lines) == _without_timing(read_metrics(a))


def test_final_metrics_of_a_run_killed_before_result_json_reach_member_json(tmp_path):
    config = _config(num_steps=4, checkpoint_every_steps=2, log_every_steps=2)
    workdir = tmp_path / "run"
    train(config, workdir, progress=False)
    last = read_metrics(workdir)[-1]
    (workdir / "result.json").unlink()  # killed between the final checkpoint and result.json
    predict_member(config, workdir, tmp_path / "store", ["test[:64]"])
    metrics = Store(tmp_path / "store").member_info("tiny_mlp")["metrics"]
    assert metrics["train_loss"] == last["train_loss"]
    assert metrics["train_accuracy"] == last["train_accuracy"]
    # a result.json without the train_* values (written by an older version) is completed too
    (workdir / "result.json").write_text(json.dumps({"step": 4}))
    predict_member(config, workdir, tmp_path / "store2", ["test[:64]"])
    metrics = Store(tmp_path / "store2").member_info("tiny_mlp")["metrics"]
    assert metrics["step"] == 4 and metrics["train_loss"] == last["train_loss"]


def test_force_moves_the_run_its_store_and_its_probe_aside(tmp_path):
    config = _config(num_steps=2, checkpoint_every_steps=2, log_every_steps=1)
    train(config, tmp_path, progress=False)
    predict_member(config, tmp_path, tmp_path / "store", ["test[:64]"])
    (tmp_path / "offline_probe").mkdir()
    (tmp_path / "offline_probe" / "probe.json").write_text("{}")
    changed = _config(num_steps=2, checkpoint_every_steps=2, log_every_steps=1, seed=7)
    train(changed, tmp_path, progress=False, force=True)
    (old,) = (tmp_path / "superseded").iterdir()
    assert {"store", "offline_probe", "checkpoints", "result.json"} <= {
        p.name for p in old.iterdir()
    }
    assert (old / "store" / "members" / "tiny_mlp").is_dir()
    assert not (tmp_path / "store").exists() and not (tmp_path / "offline_probe").exists()
    assert {"store", "offline_probe", "metrics_pending.json"} <= set(RUN_FILES)


def test_the_config_comparison_is_public_and_predict_imports_no_private_train_name():
    old = {"optimizer": {"learning_rate": 0.1}, "log_every_steps": 5, "data": {"data_dir": "x"}}
    new = {"optimizer": {"learning_rate": 0.2}, "log_every_steps": 9, "data": {"data_dir": "y"}}
    assert config_differences(old, new) == ["optimizer.learning_rate: 0.1 -> 0.2"]
    assert strip_runtime(new) == {"optimizer": {"learning_rate": 0.2}, "data": {}}
    tree = ast.parse((ROOT / "jaxdiv" / "store" / "predict.py").read_text())
    private = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxdiv.")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def test_a_long_split_string_loads_and_caches_under_a_short_file_name():
    split = "+".join(f"test[{i}:{i + 1}]" for i in range(23))
    assert len(split) > 250
    loaded = load_split("cifar10", split)
    assert len(loaded) == 23
    cached = [p for p in Path(cache_dir()).iterdir() if "-h" in p.name and p.suffix == ".npz"]
    assert cached and all(len(p.name) < 200 for p in cached)
    assert len(_cache_path("cifar10", "3.0.2", "x" * 300, "/d").name) < 200


def test_metrics_line_cut_short_by_a_kill_is_dropped(tmp_path):
    from jaxdiv.train.metrics import MetricWriter, read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.0}\n{"step": 2, "tra')
    assert read_metrics(tmp_path) == [{"step": 1, "train_loss": 2.0}]
    writer = MetricWriter(tmp_path, resume_step=1)
    writer.write(2, {"train_loss": 1.5})
    writer.close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
