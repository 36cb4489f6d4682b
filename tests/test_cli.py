"""The command line, end to end: train -> predict -> store -> import; clear one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

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


@pytest.mark.usefixtures("tfds_dir")
def test_train_predict_import_end_to_end(tmp_path):
    work, store = tmp_path / "run", tmp_path / "store"
    jaxdiv("train", "--config=tests/tiny_config.py", f"--workdir={work}", "--noprogress")
    out = jaxdiv(
        "predict", f"--workdir={work}", f"--store={store}", "--splits=test[:256],train[45000:45100]"
    ).stdout
    assert "test_256: accuracy" in out
    s = Store(store)
    assert s.splits() == ["test_256", "train_45000_45100"]
    assert s.members("test_256") == ["tiny"]
    logits = s.member_logits("tiny", "test_256")
    assert logits.shape == (256, 10) and np.isfinite(logits).all()
    assert s.embeddings("tiny", "test_256").shape[0] == 256
    info = s.member_info("tiny")
    assert info["architecture"] == "resnet" and info["method"] == "supervised"
    assert 0 <= info["metrics"]["test_256_accuracy"] <= 1
    assert "val_accuracy" in info["metrics"]
    # predicting again does nothing; the store is unchanged
    assert (
        "nothing to do"
        in jaxdiv("predict", f"--workdir={work}", f"--store={store}", "--splits=test[:256]").stdout
    )
    # a model trained elsewhere joins the same split through import-predictions
    ids, labels = s.ids("test_256"), s.labels("test_256")
    np.savez(tmp_path / "labels.npz", ids=ids[::-1], labels=labels[::-1])
    np.savez(tmp_path / "other_model.npz", ids=ids, logits=np.eye(10)[labels] * 3.0)
    out = jaxdiv(
        "import-predictions",
        f"--store={store}",
        "--split=test_256",
        f"--labels={tmp_path / 'labels.npz'}",
        str(tmp_path / "other_model.npz"),
    ).stdout
    assert "imported 1 member" in out
    assert s.members("test_256") == ["other_model", "tiny"]
    assert (s.logits("test_256")[0].argmax(-1) == labels).all()
    # and the analysis verb reads the store
    out = jaxdiv(
        "analyze",
        f"--store={store}",
        "--split=test_256",
        "--calibration-split=none",
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
    assert proc.returncode == 2 and "--labels is required" in proc.stderr
