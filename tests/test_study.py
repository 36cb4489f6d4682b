"""`jaxdiv study` end to end on a tiny population: train, predict, analyse, represent, report."""

from __future__ import annotations

import json

import ml_collections
import pandas as pd
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.stages.study import run_study
from tests.support import tiny_config

pytestmark = pytest.mark.usefixtures("tfds_dir")


def tiny_population(name: str = "tinypop", *, light: bool = False) -> ml_collections.ConfigDict:
    pop = ml_collections.ConfigDict()
    pop.name = name
    pop.base = tiny_config(num_steps=4, **{"data.eval_split": ""})
    pop.splits = ["train[45000:45300]", "test[:300]"]
    if not light:  # two corrupted copies of the report split: the shift pass and section
        pop.shift_splits = ["test[:300]:gaussian_noise:3", "test[:300]:fog:3"]
    pop.analysis = ml_collections.ConfigDict(
        {"split": "test[:300]", "calibration_split": "train[45000:45300]", "bootstrap": 5}
    )
    pop.represent = (
        False
        if light
        else ml_collections.ConfigDict(
            {"n_seeds": 1, "c_grid": (1.0,), "max_iter": 20, "transfer": "none"}
        )
    )
    pop.report = not light
    pop.variations = (
        [{"overrides": {"seed": 1}}]
        if light
        else [
            {"overrides": {"seed": 1}},
            {"overrides": {"model.name": "cnn", "model.kwargs": {"width": 1, "hidden": 32}}},
            {"overrides": {"data.train_split": "train[512:1024]"}, "name": "other_data"},
        ]
    )
    return pop


def test_study_end_to_end_then_resume_redoes_nothing(tmp_path):
    lines: list[str] = []
    result = run_study(tiny_population(), tmp_path, progress=False, log=lines.append)
    assert result["finished"] == 4 and result["failed"] == []
    pairs = pd.read_csv(tmp_path / "analysis" / "pairs.csv")
    assert len(pairs) == 6 and "error_inconsistency_low" in pairs.columns
    members = pd.read_csv(tmp_path / "analysis" / "members.csv")
    assert set(members["category"]) == {"Base", "Reinit", "Architecture", "Dataset"}
    assert (tmp_path / "representation" / "cka.npy").stat().st_size > 0
    assert (tmp_path / "report" / "representation_cka.png").stat().st_size > 0
    html = (tmp_path / "report" / "index.html").read_text()
    assert "Representations" in html and "other_data" in html
    shift_members = pd.read_csv(tmp_path / "analysis" / "shift" / "members.csv")
    assert set(shift_members["split"]) == {
        "test.0-300",
        "test.0-300.gaussian_noise-3",
        "test.0-300.fog-3",
    }
    shift_cats = pd.read_csv(tmp_path / "analysis" / "shift" / "categories.csv")
    assert set(shift_cats["severity"]) == {0, 3}
    assert "Distribution shift" in html and "shift_on_the_line.png" in html
    for png in ("shift_conditions.png", "shift_on_the_line.png"):
        assert (tmp_path / "report" / png).stat().st_size > 0
    assert json.loads((tmp_path / "study.json").read_text())["finished"] == 4

    again: list[str] = []
    run_study(tiny_population(), tmp_path, progress=False, log=again.append)
    assert not any(line.startswith("[") for line in again), again  # no member retrained


def test_store_of_another_population_is_refused(tmp_path):
    run_study_args = dict(progress=False, log=lambda *_: None)
    pop = tiny_population(light=True)
    pop.base.num_steps = 2
    run_study(pop, tmp_path, **run_study_args)
    with pytest.raises(JaxdivError, match="belongs to population 'tinypop'"):
        run_study(tiny_population("other", light=True), tmp_path, **run_study_args)


def test_shift_splits_must_corrupt_the_report_split_or_a_slice_of_it():
    from jaxdiv.stages.study import _shift_splits

    pop = tiny_population()  # report split test[:300]
    assert _shift_splits(pop, "test[:300]") == list(pop.shift_splits)
    pop.shift_splits = ["test[:100]:fog:3", "test[:100]:fog:3"]
    assert _shift_splits(pop, "test[:300]") == ["test[:100]:fog:3"]
    for bad in ("test[:400]:fog:3", "validation:fog:3", "test[:100]"):
        pop.shift_splits = [bad]
        with pytest.raises(JaxdivError, match="shift_splits entry"):
            _shift_splits(pop, "test[:300]")
