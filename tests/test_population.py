"""Population expansion, categories, the scheduler's failure isolation, its ETA, and seed
cohorts trained as one member-stacked step."""

from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.population.scheduler import (
    MemberOutcome,
    cohorts,
    remaining_members,
    run_population,
)
from jaxdiv.population.spec import category_of, expand_population
from jaxdiv.store import Store
from jaxdiv.store.splits import store_split_name
from jaxdiv.train.loop import restore_variables, train, train_members
from tests.support import tiny_config


def population(*variations, base=None):
    pop = ml_collections.ConfigDict()
    pop.name = "testpop"
    pop.base = base or tiny_config()
    pop.variations = list(variations)
    return pop


def test_expansion_names_and_categories():
    members = expand_population(
        population(
            {"sweep": {"seed": [1, 2]}},
            {"overrides": {"optimizer.learning_rate": 0.05}},
            {"overrides": {"model.kwargs.dropout": 0.1}, "name": "drop"},
            {"overrides": {"model.name": "cnn", "model.kwargs": {"width": 1}}},
            {"overrides": {"data.train_split": "train[512:1024]"}, "name": "other_half"},
            {
                "overrides": {"seed": 3, "optimizer.learning_rate": 0.2},
                "category": "Reinit",
                "name": "forced",
            },
        )
    )
    got = {m.name: m.category for m in members}
    assert got == {
        "tiny": None,
        "seed1": "Reinit",
        "seed2": "Reinit",
        "learning_rate0.05": "Hyperparameters",
        "drop": "Hyperparameters",
        "cnn": "Architecture",
        "other_half": "Dataset",
        "forced": "Reinit",
    }
    assert members[1].config.seed == 1 and members[0].config.seed == 0
    # every member is an independent run: variations without a seed get unused ones
    assert [m.config.seed for m in members] == [0, 1, 2, 4, 5, 6, 7, 3]
    assert members[6].differences == ("data.train_split", "seed")


def test_shared_seeds_when_independent_seeds_is_off():
    pop = population(
        {"sweep": {"seed": [1, 2]}},
        {"overrides": {"optimizer.learning_rate": 0.05}},
        {"overrides": {"data.train_split": "train[512:1024]"}, "name": "other_half"},
    )
    pop.independent_seeds = False
    members = expand_population(pop)
    assert [m.config.seed for m in members] == [0, 1, 2, 0, 0]
    assert [m.category for m in members] == [None, "Reinit", "Reinit", "Hyperparameters", "Dataset"]
    assert members[4].differences == ("data.train_split",)


def test_category_is_the_largest_difference():
    assert category_of(("seed",)) == "Reinit"
    assert category_of(("seed", "optimizer.learning_rate")) == "Hyperparameters"
    assert category_of(("optimizer.learning_rate", "model.name")) == "Architecture"
    assert category_of(("model.name", "method.name")) == "Framework"
    assert category_of(("method.name", "data.train_split")) == "Dataset"
    assert category_of(("method.temperature",)) == "Hyperparameters"


@pytest.mark.parametrize(
    "variations, message",
    [
        (
            [{"overrides": {"seed": 1}, "name": "a"}, {"overrides": {"seed": 2}, "name": "a"}],
            "named 'a'",
        ),
        ([{"overrides": {"seed": 0}}], "changes nothing"),
        ([{"overrides": {"log_every_steps": 5}}], "changes nothing"),
        ([{"overrides": {}}], "no overrides"),
        ([{"overrides": {"model.name": "resnet99"}}], "unknown model 'resnet99'"),
        ([{"overrides": {"method.name": "nope"}}], "unknown method 'nope'"),
        ([{"overrides": {"optimizer.lr": 0.1}}], "config key 'optimizer.lr' does not exist"),
        ([{"overrides": {"seed": 1}, "colour": "red"}], "unknown field"),
        ([{"overrides": {"seed": 1}, "category": "Vibes"}], "unknown category 'Vibes'"),
    ],
)
def test_bad_population_fails_before_training(variations, message):
    with pytest.raises(JaxdivError, match=message):
        expand_population(population(*variations))


@pytest.mark.usefixtures("tfds_dir")
def test_scheduler_isolates_failures_skips_finished_and_records_categories(tmp_path):
    members = expand_population(
        population(
            {"overrides": {"seed": 1}},
            {"overrides": {"optimizer.learning_rate": 1e30}, "name": "diverges"},
            base=tiny_config(num_steps=4, **{"data.eval_split": ""}),
        )
    )
    store = Store(tmp_path / "store", population="testpop")
    splits = ["test[:128]"]
    lines = []
    outcomes = run_population(
        members, tmp_path, store, splits, population="testpop", progress=False, log=lines.append
    )
    assert [o.status for o in outcomes] == ["trained", "trained", "failed"]
    assert "diverged" in outcomes[2].error
    failures = json.loads((tmp_path / "failures.json").read_text())
    assert list(failures) == ["diverges"] and "diverged" in failures["diverges"]["error"]
    assert store.members(store_split_name("test[:128]")) == ["seed1", "tiny"]
    info = store.member_info("seed1")
    assert info["category"] == "Reinit" and info["base"] == "tiny"
    assert store.member_info("tiny")["category"] == "Base"
    assert any("[2/3] seed1 (Reinit" in line for line in lines)
    again = run_population(
        members, tmp_path, store, splits, population="testpop", progress=False, log=lines.append
    )
    assert [o.status for o in again] == ["skipped", "skipped", "failed"]


def test_eta_counts_the_members_still_to_train():
    members = expand_population(population({"sweep": {"seed": [1, 2, 3]}}))
    todo = members[1:]
    assert remaining_members(todo, []) == 3
    done = [MemberOutcome("tiny", "skipped"), MemberOutcome("seed1", "trained")]
    assert remaining_members(todo, done) == 2
    done.append(MemberOutcome("seed2", "failed", error="x"))
    assert remaining_members(todo, done) == 1


@pytest.mark.usefixtures("tfds_dir")
def test_stacked_cohort_matches_members_trained_one_by_one(tmp_path):
    members = expand_population(
        population(
            {"overrides": {"seed": 1}},
            {"overrides": {"seed": 2}},
            {"overrides": {"optimizer.learning_rate": 0.05}},
            base=tiny_config(num_steps=6, **{"optimizer.learning_rate": 0.02}),
        )
    )
    groups = cohorts(members)
    assert [[m.name for m in g] for g in groups] == [["tiny", "seed1", "seed2"]]
    pair = groups[0][:2]
    results = train_members(
        [m.config for m in pair], [tmp_path / "cohort" / m.name for m in pair], progress=False
    )
    with pytest.raises(JaxdivError, match="differ only in seed"):
        train_members([members[0].config, members[3].config], [tmp_path / "x", tmp_path / "y"])
    for m, stacked in zip(pair, results, strict=True):
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy"} <= set(stacked)
        lines = (tmp_path / "cohort" / m.name / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == [2, 4, 6, 6]
        train(m.config, tmp_path / "alone" / m.name, progress=False)
        saved = json.loads((tmp_path / "cohort" / m.name / "result.json").read_text())
        result = train(m.config, tmp_path / "cohort" / m.name, progress=False)  # no-op: done
        assert result["step"] == 6
        # the re-run finds the run finished and writes the same result.json
        assert json.loads((tmp_path / "cohort" / m.name / "result.json").read_text()) == saved
        assert result == saved == stacked
        _, a, _ = restore_variables(m.config, tmp_path / "cohort" / m.name)
        _, b, _ = restore_variables(m.config, tmp_path / "alone" / m.name)
        # equal up to float reassociation (vmapped convolutions), amplified by 6 SGD steps;
        # members of different seeds differ by O(1)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=5e-3, rtol=1e-2)
    _, first, _ = restore_variables(members[0].config, tmp_path / "cohort" / "tiny")
    _, second, _ = restore_variables(members[1].config, tmp_path / "cohort" / "seed1")
    gap = max(
        float(np.abs(np.asarray(x) - np.asarray(y)).max())
        for x, y in zip(
            jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(second), strict=True
        )
    )
    assert gap > 0.1


@pytest.mark.usefixtures("tfds_dir")
def test_scheduler_trains_seed_cohorts_stacked_and_isolates_a_failing_cohort(tmp_path):
    members = expand_population(
        population(
            {"overrides": {"seed": 1}},
            {"overrides": {"optimizer.learning_rate": 1e30}, "name": "diverges"},
            {"overrides": {"optimizer.learning_rate": 1e30, "seed": 7}, "name": "diverges7"},
            base=tiny_config(num_steps=4, **{"data.eval_split": ""}),
        )
    )
    store = Store(tmp_path / "store", population="testpop")
    lines = []
    outcomes = run_population(
        members,
        tmp_path,
        store,
        ["test[:128]"],
        population="testpop",
        strategy="vmap",
        progress=False,
        log=lines.append,
    )
    assert [o.status for o in outcomes] == ["trained", "trained", "failed", "failed"]
    assert any("cohort of 2 (tiny, seed1)" in line for line in lines)
    assert any("cohort ['diverges', 'diverges7'] failed" in line for line in lines)
    assert "diverged" in outcomes[2].error and "diverged" in outcomes[3].error
    assert store.members(store_split_name("test[:128]")) == ["seed1", "tiny"]
    assert json.loads((tmp_path / "members" / "seed1" / "result.json").read_text())["step"] == 4
