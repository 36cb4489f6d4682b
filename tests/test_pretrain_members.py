"""A population's pre-training runs (``pop.pretrain``): trained before the members that
fine-tune from them (``finetune_from="pretrain:<name>"``), never predicted; a fine-tune from
other data is a Dataset member; a changed run is refused like a changed member; a failed run
fails only its dependants."""

from __future__ import annotations

import json
from pathlib import Path

import ml_collections
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.population import scheduler
from jaxdiv.population.spec import expand_population, expand_pretraining, resolve_pretrained
from jaxdiv.stages.study import run_study
from jaxdiv.store.store import Store
from tests.tiny_mlp_config import tiny_mlp_config

QUIET = dict(progress=False, log=lambda *_: None)
LEAVES = "procedural:dead_leaves[:256]"


def population(pretrain_split: str = LEAVES) -> ml_collections.ConfigDict:
    pop = ml_collections.ConfigDict()
    pop.name = "pretrainpop"
    pop.base = tiny_mlp_config(num_steps=2, **{"data.eval_split": ""})
    pop.splits = ["train[45000:45100]", "test[:100]"]
    pop.analysis = ml_collections.ConfigDict(
        {"split": "test[:100]", "calibration_split": "train[45000:45100]"}
    )
    pop.represent = False
    pop.report = False
    pop.pretrain = [{"name": "sup", "overrides": {"data.train_split": pretrain_split}}]
    pop.variations = [
        {"overrides": {"seed": 1}},
        {"name": "tuned", "overrides": {"finetune_from": "pretrain:sup"}},
    ]
    return pop


def test_a_fine_tune_from_other_data_is_a_dataset_member_and_seeds_stay_distinct():
    pop = population()
    members = expand_population(pop)
    assert [m.category for m in members] == [None, "Reinit", "Dataset"]
    (run,) = expand_pretraining(pop)
    assert run.name == "sup" and run.config.data.train_split == LEAVES
    assert run.config.seed not in {int(m.config.seed) for m in members}
    resolved = resolve_pretrained(members, "/w")
    assert resolved[2].config.finetune_from == "/w/pretrain/sup"
    assert members[2].config.finetune_from == "pretrain:sup"  # the input is left as it was

    same_data = population(pretrain_split=pop.base.data.train_split)
    same_data.pretrain[0]["overrides"] = {"optimizer.learning_rate": 0.2}
    assert expand_population(same_data)[2].category == "Framework"


def test_unknown_or_malformed_pretraining_is_refused_before_training():
    pop = population()
    pop.variations[1]["overrides"]["finetune_from"] = "pretrain:nope"
    with pytest.raises(JaxdivError, match="names no pretrain entry; defined: sup"):
        expand_population(pop)
    pop = population()
    pop.pretrain = [{"name": "sup"}]
    with pytest.raises(JaxdivError, match="pretrain entry 0: give `name` and `overrides`"):
        expand_population(pop)


@pytest.mark.usefixtures("tfds_dir")
def test_study_trains_the_run_first_never_predicts_it_and_refuses_it_changed(tmp_path):
    lines: list[str] = []
    result = run_study(population(), tmp_path, progress=False, log=lines.append)
    assert result["failed"] == [] and result["finished"] == 3
    assert lines.index(next(x for x in lines if x.startswith("[pretrain] sup"))) < lines.index(
        next(x for x in lines if x.startswith("[3/3] tuned"))
    )
    assert (tmp_path / "pretrain" / "sup" / "checkpoints").is_dir()
    assert Store(tmp_path / "store").all_members() == ["seed1", "tiny_mlp", "tuned"]
    tuned = json.loads((tmp_path / "members" / "tuned" / "config.json").read_text())
    assert tuned["finetune_from"] == str(tmp_path / "pretrain" / "sup")
    record = json.loads((tmp_path / "population.json").read_text())
    assert record["pretraining"][0]["train_split"] == LEAVES

    again: list[str] = []
    run_study(population(), tmp_path, progress=False, log=again.append)
    assert not any(x.startswith("[") for x in again), again  # nothing retrained

    edited = population(pretrain_split="procedural:spectral[:256]")
    with pytest.raises(JaxdivError, match="tuned \\(pre-training run sup changed"):
        run_study(edited, tmp_path, **QUIET)
    lines = []
    run_study(edited, tmp_path, force=True, progress=False, log=lines.append)
    assert [x.split()[0] for x in lines if x.startswith("[")] == ["[pretrain]", "[3/3]"]
    assert list((tmp_path / "pretrain" / "sup" / "superseded").glob("*/checkpoints"))
    assert list((tmp_path / "members" / "tuned" / "superseded").glob("*/checkpoints"))


@pytest.mark.usefixtures("tfds_dir")
def test_a_failed_pretraining_run_fails_only_its_dependants(tmp_path, monkeypatch):
    real = scheduler.train

    def train(config, workdir, **kw):
        if Path(workdir).parent.name == "pretrain":
            raise RuntimeError("disk full")
        return real(config, workdir, **kw)

    monkeypatch.setattr(scheduler, "train", train)
    result = run_study(population(), tmp_path, **QUIET)  # the two others are analysed
    assert result["failed"] == ["tuned"] and result["finished"] == 2
    failures = json.loads((tmp_path / "failures.json").read_text())
    assert set(failures) == {"pretrain:sup", "tuned"}
    assert "pre-training run 'sup' failed (RuntimeError: disk full)" in failures["tuned"]["error"]
    assert Store(tmp_path / "store").all_members() == ["seed1", "tiny_mlp"]
