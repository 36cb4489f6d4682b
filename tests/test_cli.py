"""The command line, end to end: train -> predict -> store -> import; clear one-line errors."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from jaxdiv import cli
from jaxdiv.store import Store
from tests.support import ROOT


def jaxdiv(*args, env=None, check=True):
    full_env = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "jaxdiv", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def test_help_lists_the_verbs():
    out = jaxdiv("--help", check=False).stdout
    for verb in ("train", "predict", "import-predictions", "analyze"):
        assert verb in out
    assert "--workdir" in out


def test_help_lists_every_verb_of_the_table():
    proc = jaxdiv("--help")
    for name, verb in cli.VERBS.items():
        assert f"  {name} " in proc.stdout and verb.help.split()[0] in proc.stdout
    assert "VERB --help" in proc.stdout


def test_verb_help_lists_only_that_verbs_flags():
    out = jaxdiv("analyze", "--help").stdout
    assert out.startswith("jaxdiv analyze: ")
    for flag in cli.VERBS["analyze"].flags:
        assert f"--{flag}:" in out
    for flag in ("workdir", "dry_run", "train_split", "strategy", "labels", "config"):
        assert f"--{flag}" not in out and f"--[no]{flag}" not in out
    assert "--config.optimizer" not in out  # the override hint only for verbs with --config
    out = jaxdiv("train", "-h").stdout
    assert "--[no]dry_run:" in out and "--coordinator_address:" in out and "--store" not in out
    assert "--config.optimizer.learning_rate=0.05" in out
    assert "--bootstrap" not in jaxdiv("study", "--help").stdout


def test_every_verb_runs_a_module_function_and_takes_known_flags():
    for name, verb in cli.VERBS.items():
        targets = [verb.target] + ([verb.switch[1]] if verb.switch else [])
        for target in targets:
            module, function = target.split(":")
            assert module.startswith("jaxdiv.") and function.isidentifier(), name
            assert callable(getattr(importlib.import_module(module), function)), target
        for flag in verb.flags:
            assert flag in flags.FLAGS, (name, flag)
            assert "-" not in flag, (name, flag)  # one spelling: absl's underscores


def test_dashed_spellings_are_rewritten_with_a_notice(capsys):
    argv = ["jaxdiv", "analyze", "--calibration-split=none", "--accuracy-band", "0.7,0.8"]
    assert cli.undash([*argv, "--", "--train-split=x"]) == [
        "jaxdiv",
        "analyze",
        "--calibration_split=none",
        "--accuracy_band",
        "0.7,0.8",
        "--",
        "--train-split=x",
    ]
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "jaxdiv: --calibration-split is deprecated; write --calibration_split",
        "jaxdiv: --accuracy-band is deprecated; write --accuracy_band",
    ]


def test_dashed_spellings_still_reach_their_flags(tmp_path):
    # the band's value is checked before the analysis starts: it arrived at --accuracy_band
    proc = jaxdiv(
        "analyze",
        f"--store={tmp_path}",
        "--calibration-split=none",
        "--accuracy-band=0.7",
        f"--out={tmp_path / 'out'}",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--calibration-split is deprecated; write --calibration_split" in proc.stderr
    assert "--accuracy_band must be MIN,MAX (e.g. 0.7,0.8); got 0.7" in proc.stderr
    proc = jaxdiv("represent", f"--store={tmp_path}", "--train-split=validation", check=False)
    assert proc.returncode == 2
    assert "--train-split is deprecated; write --train_split" in proc.stderr
    assert "--out is required" in proc.stderr and "Traceback" not in proc.stderr


def test_flags_of_other_verbs_are_refused(tmp_path):
    proc = jaxdiv("analyze", f"--store={tmp_path}", f"--workdir={tmp_path}", check=False)
    assert proc.returncode == 2
    assert "--workdir is not a flag of analyze; `jaxdiv analyze --help`" in proc.stderr
    # --progress is accepted by every verb (launch/slurm.sbatch appends --noprogress)
    proc = jaxdiv("represent", f"--store={tmp_path}", "--noprogress", check=False)
    assert proc.returncode == 2 and "--out is required" in proc.stderr


def test_missing_config_file_is_one_clear_line(tmp_path):
    proc = jaxdiv(
        "train", "--config=configs/no_such.py:quick", f"--workdir={tmp_path}", check=False
    )
    assert proc.returncode == 2
    assert "no config file 'configs/no_such.py'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_import_root(tmp_path):
    assert cli.config_import_root(ROOT / "configs" / "quickstart.py") == ROOT
    assert cli.config_import_root(ROOT / "configs" / "imagenet" / "resnet50.py") == ROOT
    (tmp_path / "plain.py").write_text("")
    assert cli.config_import_root(tmp_path / "plain.py") == Path.cwd()


@pytest.mark.usefixtures("tfds_dir")
def test_train_predict_import_end_to_end(tmp_path):
    work, store = tmp_path / "run", tmp_path / "store"
    jaxdiv("train", "--config=tests/tiny_config.py", f"--workdir={work}", "--noprogress")
    out = jaxdiv(
        "predict", f"--workdir={work}", f"--store={store}", "--splits=test[:256],train[45000:45100]"
    ).stdout
    assert "test.0-256: accuracy" in out
    s = Store(store)
    assert s.splits() == ["test.0-256", "train.45000-45100"]
    assert s.members("test.0-256") == ["tiny"]
    assert s.class_names()[:2] == ["airplane", "automobile"]  # the TFDS label names, recorded
    logits = s.member_logits("tiny", "test.0-256")
    assert logits.shape == (256, 10) and np.isfinite(logits).all()
    assert s.embeddings("tiny", "test.0-256").shape[0] == 256
    info = s.member_info("tiny")
    assert info["architecture"] == "resnet" and info["method"] == "supervised"
    assert 0 <= info["metrics"]["test.0-256_accuracy"] <= 1
    assert "val_accuracy" in info["metrics"]
    # predicting again does nothing; the store is unchanged
    assert (
        "nothing to do"
        in jaxdiv("predict", f"--workdir={work}", f"--store={store}", "--splits=test[:256]").stdout
    )
    # a model trained elsewhere joins the same split through import-predictions
    ids, labels = s.ids("test.0-256"), s.labels("test.0-256")
    np.savez(tmp_path / "labels.npz", ids=ids[::-1], labels=labels[::-1])
    np.savez(tmp_path / "other_model.npz", ids=ids, logits=np.eye(10)[labels] * 3.0)
    out = jaxdiv(
        "import-predictions",
        f"--store={store}",
        "--split=test.0-256",
        f"--labels={tmp_path / 'labels.npz'}",
        str(tmp_path / "other_model.npz"),
    ).stdout
    assert "imported 1 member" in out
    assert s.members("test.0-256") == ["other_model", "tiny"]
    assert (s.logits("test.0-256")[0].argmax(-1) == labels).all()
    # and the analysis verb reads the store
    out = jaxdiv(
        "analyze",
        f"--store={store}",
        "--split=test.0-256",
        "--calibration_split=none",
        f"--out={tmp_path / 'analysis'}",
    ).stdout
    assert "wrote analysis of 2 members" in out
    pairs = (tmp_path / "analysis" / "pairs.csv").read_text().splitlines()
    assert len(pairs) == 2 and pairs[0].startswith("member_a,member_b")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.model.name=resnet21"], "unknown model 'resnet21'; valid choices: "),
        (["--config.optimizer.name=adam"], "unknown optimizer 'adam'; valid choices: adamw, sgd"),
        (["--config.method.name=simclr2"], "unknown method 'simclr2'; valid choices: "),
        (["--config.no_such_key=1"], "the config has no key"),
        (["--config.data.data_dir=/nonexistent/tfds"], "looked for /nonexistent/tfds"),
        (["--config.model.kwargs.depth=21"], "depth must be 6n+2"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    proc = jaxdiv(
        "train", "--config=tests/tiny_config.py", f"--workdir={tmp_path / 'w'}", *args, check=False
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_unknown_verb_and_missing_flags(tmp_path):
    proc = jaxdiv("fly", check=False)
    assert proc.returncode != 0 and "valid verbs: train, predict" in proc.stderr
    proc = jaxdiv("import-predictions", f"--store={tmp_path}", "--split=test", check=False)
    assert proc.returncode == 2 and "give at least one model file" in proc.stderr
    args = ("import-predictions", f"--store={tmp_path}", "--split=test", str(tmp_path / "a.npz"))
    proc = jaxdiv(*args, check=False)  # .npz members of a new split need their labels
    assert proc.returncode == 2 and "pass --labels=labels.npz" in proc.stderr


def test_no_verb_and_stray_arguments_are_one_clear_line(tmp_path):
    proc = jaxdiv(check=False)
    assert proc.returncode == 2 and "no verb given; valid verbs: train, predict" in proc.stderr
    proc = jaxdiv("analyze", "stray", f"--store={tmp_path}", check=False)
    assert proc.returncode == 2
    assert "jaxdiv analyze: error: unexpected arguments ['stray']" in proc.stderr
