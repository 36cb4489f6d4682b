"""Fine-tuning: a supervised run starts from another run's backbone, with a fresh head."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

from jaxdiv.errors import JaxdivError
from jaxdiv.train import finetune
from jaxdiv.train.loop import (
    build_setup,
    init_state,
    pretrained_backbone,
    restore_variables,
    train,
)
from tests.support import tiny_config

pytestmark = pytest.mark.usefixtures("tfds_dir")


def _flat(tree) -> dict:
    return traverse_util.flatten_dict(jax.device_get(tree), sep="/")


def _simclr_config() -> ml_collections.ConfigDict:
    c = tiny_config(num_steps=2, checkpoint_every_steps=2)
    c.name = "pre"
    c.method = ml_collections.ConfigDict({"name": "simclr", "temperature": 0.2})
    c.method.projector = ml_collections.ConfigDict({"hidden": [32], "out": 16})
    c.data.views = ml_collections.ConfigDict({"crop_scale": [0.2, 1.0]})
    c.data.eval_split = ""
    return c


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pre")
    config = _simclr_config()
    train(config, workdir, progress=False)
    _, variables, _ = restore_variables(config, workdir)
    return workdir, variables


def test_backbone_comes_from_the_pretrained_run_and_the_head_is_fresh(pretrained):
    workdir, pre = pretrained
    config = tiny_config(finetune_from=str(workdir))
    setup = build_setup(config)
    fresh = init_state(setup, jax.random.PRNGKey(0))
    backbone, source_model = pretrained_backbone(workdir)
    assert source_model == "resnet"
    state = finetune.start_from(fresh, backbone, workdir, source_model, config.model.name)

    got, want, init = (
        _flat(state["params"]),
        _flat(pre["params"]["backbone"]),
        _flat(fresh["params"]),
    )
    assert set(got) - set(want) == {"head/kernel", "head/bias"}
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value)
        assert not np.array_equal(got[key], init[key]) or key.endswith("bias")
    np.testing.assert_array_equal(got["head/kernel"], init["head/kernel"])
    stats, pre_stats = _flat(state["state"]["batch_stats"]), _flat(pre["batch_stats"]["backbone"])
    assert set(stats) == set(pre_stats)
    for key, value in pre_stats.items():
        np.testing.assert_array_equal(stats[key], value)


def test_finetuning_run_trains_from_the_backbone_and_resumes_from_its_own_checkpoint(
    pretrained, tmp_path
):
    workdir, pre = pretrained
    config = tiny_config(finetune_from=str(workdir), num_steps=2, checkpoint_every_steps=2)
    result = train(config, tmp_path, progress=False)
    assert result["step"] == 2 and np.isfinite(result["train_loss"])
    _, tuned, _ = restore_variables(config, tmp_path)
    conv = next(k for k in _flat(pre["params"]["backbone"]) if k.endswith("kernel"))
    delta = np.abs(_flat(tuned["params"])[conv] - _flat(pre["params"]["backbone"])[conv])
    assert 0 < delta.max() < 0.1  # moved a little from the pre-trained weights, not re-drawn
    # a second call finds the finished run: nothing is re-initialised from the backbone
    again = train(config, tmp_path, progress=False)
    assert again["step"] == 2


def test_bad_finetune_sources_are_refused(pretrained, tmp_path):
    workdir, _ = pretrained
    with pytest.raises(JaxdivError, match="holds no training run"):
        train(tiny_config(finetune_from=str(tmp_path / "nowhere")), tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()  # refused before the workdir is touched
    other = tiny_config(finetune_from=str(workdir))
    other.model = ml_collections.ConfigDict({"name": "cnn", "kwargs": {"width": 1}})
    with pytest.raises(JaxdivError, match=r"does not fit this model \('cnn'\)"):
        train(other, tmp_path / "b", progress=False)
