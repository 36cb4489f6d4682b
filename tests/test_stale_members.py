"""Stale members: a member whose config changed is refused by `predict` and `study` with the
differences and the command that retrains it; `--force` moves the old run and its store
entries aside, so nothing stale is ever reported. Also the study whose report and
calibration splits are two slices of `test`."""

from __future__ import annotations

import json

import ml_collections
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.stages.study import run_study
from jaxdiv.store.predict import config_hash, predict_member
from jaxdiv.store.store import Store
from jaxdiv.train.loop import train
from tests.tiny_mlp_config import tiny_mlp_config

pytestmark = pytest.mark.usefixtures("tfds_dir")
QUIET = dict(progress=False, log=lambda *_: None)


def mlp(**overrides) -> ml_collections.ConfigDict:
    return tiny_mlp_config(num_steps=2, **{"data.eval_split": "", **overrides})


def test_predict_refuses_stale_entries_and_force_moves_them_aside(tmp_path):
    work, store_dir = tmp_path / "run", tmp_path / "store"
    old = mlp()
    train(old, work, progress=False)
    predict_member(old, work, store_dir, ["test[:64]"])
    new = mlp(**{"optimizer.learning_rate": 0.2})
    train(new, work, force=True, progress=False)  # the old run moves aside
    with pytest.raises(JaxdivError, match="predicted from another config") as err:
        predict_member(new, work, store_dir, ["test[:64]"])
    msg = str(err.value)
    assert "\n" not in msg and "optimizer.learning_rate: 0.1 -> 0.2" in msg
    assert "--force" in msg and "--member=tiny_mlp" in msg

    out = predict_member(new, work, store_dir, ["test[:64]"], overwrite=True)
    assert list(out) == ["test.0-64"]
    store = Store(store_dir)
    assert store.member_info("tiny_mlp")["config_hash"] == config_hash(new)
    (moved,) = (store_dir / "superseded").glob("*/tiny_mlp")
    assert json.loads((moved / "member.json").read_text())["config_hash"] == config_hash(old)
    assert (moved / "test.0-64" / "logits.npy").exists()
    assert predict_member(new, work, store_dir, ["test[:64]"]) == {}  # now up to date


def test_config_hash_leaves_out_runtime_keys():
    base = config_hash(mlp())
    assert config_hash(mlp(log_every_steps=7, eval_batch_size=64)) == base
    assert config_hash(mlp(**{"optimizer.learning_rate": 0.2})) != base


def population(**base_overrides) -> ml_collections.ConfigDict:
    pop = ml_collections.ConfigDict()
    pop.name = "stalepop"
    pop.base = mlp(**base_overrides)
    pop.splits = ["train[45000:45100]", "test[:100]"]
    pop.analysis = ml_collections.ConfigDict(
        {"split": "test[:100]", "calibration_split": "train[45000:45100]"}
    )
    pop.represent = False
    pop.report = False
    pop.variations = [{"overrides": {"seed": 1}}]
    return pop


def test_study_refuses_an_edited_member_and_force_retrains_it(tmp_path):
    first = run_study(population(), tmp_path, **QUIET)
    assert first["finished"] == 2 and first["failed"] == []
    edited = population(**{"optimizer.learning_rate": 0.2})
    with pytest.raises(JaxdivError) as err:
        run_study(edited, tmp_path, **QUIET)
    msg = str(err.value)
    assert "\n" not in msg and "2 member(s) changed" in msg
    assert "optimizer.learning_rate: 0.1 -> 0.2" in msg
    assert f"jaxdiv study --config=CONFIG --workdir={tmp_path} --force" in msg

    lines: list[str] = []
    again = run_study(edited, tmp_path, force=True, progress=False, log=lines.append)
    assert again["finished"] == 2 and again["failed"] == []
    assert sum(line.startswith("[") for line in lines) == 2  # both members retrained
    store = Store(tmp_path / "store")
    moved = sorted(p.name for p in (tmp_path / "store" / "superseded").glob("*/*"))
    assert moved == store.all_members()
    for name in store.all_members():
        assert store.member_info(name)["config"]["optimizer"]["learning_rate"] == 0.2
        assert list((tmp_path / "members" / name / "superseded").glob("*/checkpoints"))
    assert json.loads((tmp_path / "analysis" / "summary.json").read_text())

    quiet: list[str] = []
    run_study(edited, tmp_path, progress=False, log=quiet.append)  # up to date: no refusal
    assert not any(line.startswith("[") for line in quiet)


def test_study_reports_and_calibrates_on_two_slices_of_test(tmp_path):
    pop = population()
    pop.splits = ["test[:9800]", "test[9800:]"]
    pop.analysis = ml_collections.ConfigDict(
        {"split": "test[9800:]", "calibration_split": "test[:9800]"}
    )
    result = run_study(pop, tmp_path, **QUIET)
    assert result["failed"] == [] and result["finished"] == 2
    store = Store(tmp_path / "store")
    assert store.splits() == ["test.0-9800", "test.9800-end"]
    assert store.split_info("test.0-9800")["range"] == [["test", 0, 9800]]
    assert store.split_info("test.9800-end")["range"] == [["test", 9800, 10000]]
    assert store.members("test.9800-end") == store.members("test.0-9800") == store.all_members()
    members = store.all_members()
    assert store.member_logits(members[0], "test.9800-end").shape == (200, 10)
    summary = json.loads((tmp_path / "analysis" / "summary.json").read_text())
    assert summary["split"] == "test.9800-end" and summary["calibration_split"] == "test.0-9800"
    assert summary["num_examples"] == 200
