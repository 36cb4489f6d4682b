"""Store split identity: names that cannot collide, split.json, fingerprint refusals, and
`predict` skipping only a split that holds the same data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxdiv.data.streaming import eval_split
from jaxdiv.errors import JaxdivError
from jaxdiv.store.predict import config_hash, predict_member
from jaxdiv.store.splits import describe, fingerprint, store_split_name
from jaxdiv.store.store import Store
from jaxdiv.train.loop import train
from tests.tiny_mlp_config import tiny_mlp_config

DIFFERENT_DATA = [
    "test",
    "test[:50]",
    "test[50:]",
    "test[:50%]",
    "test[50%:]",
    "test[-50:]",
    "test[:-50]",
    "test[10:50]",
    "test[9800:]",
    "test[:9800]",
    "train[:45000]",
    "train[45000:]",
    "train[:10]+test[:10]",
    "test[:10]+train[:10]",
    "test[:50%](pct1_dropremainder)",
    "test[:50%](closest)",
    "test[ :50]",
    "a" * 150,
    "a" * 151,
]


def test_plain_names_stay():
    for name in ("test", "validation", "train", "train_minus_val", "extra-1"):
        assert store_split_name(name) == name


def test_split_names_never_collide_and_are_valid_store_names(tmp_path):
    names = [store_split_name(s) for s in DIFFERENT_DATA]
    assert len(set(names)) == len(names), names
    assert store_split_name("test[:50]") == "test.0-50"
    assert store_split_name("test[50:]") == "test.50-end"
    assert store_split_name("test[:50%]") == "test.0-50pct"
    assert store_split_name("test[-100:]") == "test.m100-end"
    assert store_split_name("train[45000:]") == "train.45000-end"
    assert store_split_name("train[:10]+test[:10]") == "train.0-10+test.0-10"
    hashed = store_split_name("test[:50%](pct1_dropremainder)")
    assert hashed.startswith("test_50_pct1_dropremainder.h") and len(hashed.split(".h")[1]) == 12
    # same examples, same spelling modulo an explicit 0: one name
    assert store_split_name("test[0:50]") == store_split_name("test[:50]")
    store = Store(tmp_path)
    for i, name in enumerate(names):  # every name is accepted by the store
        store.write_split(name, np.array([i]), np.array([f"id{i}"]))
    assert sorted(store.splits()) == sorted(names)


def test_fingerprint_is_exact():
    ids, labels = np.array(["a", "b"]), np.array([0, 1])
    fp = fingerprint(ids, labels)
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    assert fingerprint(ids, labels.astype(np.int64)) == fp
    assert fingerprint(ids, np.array([1, 0])) != fp
    assert fingerprint(np.array(["b", "a"]), labels) != fp
    assert fingerprint(np.array(["a\0b"]), np.array([0, 1])) != fp  # no separator ambiguity


@pytest.mark.usefixtures("tfds_dir")
def test_split_json_records_the_source(tmp_path):
    data = tiny_mlp_config().data
    split = eval_split(data, "test[:50]")
    store = Store(tmp_path)
    store.write_split(store_split_name("test[:50]"), split.labels, split.ids, split.source)
    info = json.loads((tmp_path / "splits" / "test.0-50" / "split.json").read_text())
    assert info["dataset"] == "cifar10" and info["version"]
    assert info["split"] == "test[:50]" and info["range"] == [["test", 0, 50]]
    assert info["count"] == 50
    assert info["fingerprint"] == fingerprint(split.ids, split.labels)
    assert store.split_info("test.0-50") == info


@pytest.mark.usefixtures("tfds_dir")
def test_different_data_under_one_name_is_refused_naming_both_sources(tmp_path):
    data = tiny_mlp_config().data
    first, other = eval_split(data, "test[:50]"), eval_split(data, "test[50:100]")
    store = Store(tmp_path)
    store.write_split("x", first.labels, first.ids, first.source)
    store.write_split("x", first.labels, first.ids, first.source)  # same data: accepted
    with pytest.raises(JaxdivError) as err:
        store.write_split("x", other.labels, other.ids, other.source)
    msg = str(err.value)
    assert "\n" not in msg
    assert "'test[:50]' = test[0:50]" in msg and "'test[50:100]' = test[50:100]" in msg
    assert describe(store.split_info("x")) in msg


def test_store_without_split_json_still_reads(tmp_path):
    store = Store(tmp_path)
    ids, labels = np.array(["a", "b", "c"]), np.array([0, 1, 2])
    store.write_split("test", labels, ids)
    (tmp_path / "splits" / "test" / "split.json").unlink()  # a store from before split.json
    info = store.split_info("test")
    assert info["fingerprint"] == fingerprint(ids, labels) and info["count"] == 3
    assert info["dataset"] is None and "unknown source" in describe(info)
    with pytest.raises(JaxdivError, match="unknown source"):
        store.write_split("test", np.array([0, 1, 1]), ids)
    source = {"dataset": "d", "version": "1", "split": "test", "range": [["test", 0, 3]]}
    store.write_split("test", labels, ids, source)  # same data: split.json is written now
    assert store.split_info("test")["dataset"] == "d"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = tiny_mlp_config(num_steps=2, **{"data.eval_split": ""})
    workdir = tmp_path_factory.mktemp("run")
    train(config, workdir, progress=False)
    return config, workdir


@pytest.mark.usefixtures("tfds_dir")
def test_predict_skips_only_the_same_data(trained, tmp_path):
    config, workdir = trained
    store_dir = tmp_path / "store"
    out = predict_member(config, workdir, store_dir, ["test[:50]", "test[50:]"])
    assert set(out) == {"test.0-50", "test.50-end"}
    store = Store(store_dir)
    assert store.split_info("test.0-50")["count"] == 50
    assert store.split_info("test.50-end")["count"] == 9950
    assert store.member_info("tiny_mlp")["config_hash"] == config_hash(config)
    assert predict_member(config, workdir, store_dir, ["test[:50]"]) == {}  # same data

    # a store whose `test.0-50` holds other examples (as an old colliding name would)
    odd = Store(tmp_path / "odd")
    odd.write_split("test.0-50", np.zeros(50, int), np.array([f"x{i}" for i in range(50)]))
    odd.write_member("tiny_mlp", "test.0-50", np.zeros((50, 10), np.float32))
    odd.write_member_info("tiny_mlp", store.member_info("tiny_mlp"))
    with pytest.raises(JaxdivError) as err:
        predict_member(config, workdir, odd.root, ["test[:50]"])
    assert "unknown source" in str(err.value) and "'test[:50]' = test[0:50]" in str(err.value)
