"""Prediction store layout, atomic member writes, import-predictions validation, and predict
of a representation learner (one restore, the offline probe kept, streamed splits)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from jaxdiv.errors import JaxdivError
from jaxdiv.store import Store, import_predictions


def _split(store, m=6, c=3, name="test"):
    ids = np.array([f"ex{i}" for i in range(m)])
    labels = np.arange(m) % c
    store.write_split(name, labels, ids)
    return ids, labels


def _snapshot(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = open(p, "rb").read()
    return out


def test_layout_is_plain_npy_and_json(tmp_path):
    s = Store(tmp_path)
    ids, labels = _split(s)
    logits = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    emb = np.ones((6, 4), np.float32)
    s.write_member_info("m1", {"method": "supervised", "metrics": {"val_accuracy": 0.5}})
    s.write_member("m1", "test", logits, emb)
    assert json.loads((tmp_path / "store.json").read_text())["format"] == "jaxdiv-store"
    np.testing.assert_array_equal(np.load(tmp_path / "splits/test/ids.npy"), ids)
    np.testing.assert_array_equal(np.load(tmp_path / "splits/test/labels.npy"), labels)
    np.testing.assert_array_equal(np.load(tmp_path / "members/m1/test/logits.npy"), logits)
    np.testing.assert_array_equal(np.load(tmp_path / "members/m1/test/embeddings.npy"), emb)
    assert s.members("test") == ["m1"] and s.splits() == ["test"]
    assert s.logits("test").shape == (1, 6, 3)
    assert s.member_table().loc[0, "metric.val_accuracy"] == 0.5


def test_half_written_member_is_never_read_as_finished(tmp_path):
    s = Store(tmp_path)
    _split(s)
    s.write_member("done", "test", np.zeros((6, 3)))
    # what a writer killed mid-way leaves behind: a hidden temp folder, no done.json
    partial = tmp_path / "members" / "partial"
    (partial / ".test-abc123").mkdir(parents=True)
    np.save(partial / ".test-abc123" / "logits.npy", np.zeros((3, 3)))
    (partial / ".test.tmp-def456").mkdir()  # the staged folder of jaxdiv.files.staged_folder
    (partial / "member.json").write_text('{"name": "partial"}')
    assert s.members("test") == ["done"]
    assert not s.has_member("partial", "test")
    with pytest.raises(JaxdivError, match="no finished predictions"):
        s.member_logits("partial", "test")
    s.write_member("partial", "test", np.ones((6, 3)))  # a rerun cleans the leftovers
    assert s.members("test") == ["done", "partial"]
    assert not list(partial.glob(".test-*")) and not list(partial.glob(".test.tmp-*"))


def test_members_are_independent_and_bad_writes_are_refused(tmp_path):
    s = Store(tmp_path)
    _split(s)
    s.write_member("a", "test", np.zeros((6, 3)))
    with pytest.raises(JaxdivError, match="already has predictions"):
        s.write_member("a", "test", np.ones((6, 3)))
    with pytest.raises(JaxdivError, match="NaN or inf"):
        s.write_member("b", "test", np.full((6, 3), np.nan))
    with pytest.raises(JaxdivError, match=r"logits must be \[6 examples"):
        s.write_member("b", "test", np.zeros((5, 3)))
    with pytest.raises(JaxdivError, match="already holds different examples"):
        s.write_split("test", np.zeros(6, int), np.array([f"x{i}" for i in range(6)]))
    with pytest.raises(JaxdivError, match="split 'val' is not in the store.*test"):
        s.logits("val")
    with pytest.raises(JaxdivError, match="invalid member name"):
        s.write_member("../evil", "test", np.zeros((6, 3)))
    np.testing.assert_array_equal(s.member_logits("a", "test"), np.zeros((6, 3)))
    s.write_member("a", "test", np.ones((6, 3)), overwrite=True)
    np.testing.assert_array_equal(s.member_logits("a", "test"), np.ones((6, 3)))


def test_store_of_another_population_is_refused(tmp_path):
    Store(tmp_path, population="p1").ensure()
    with pytest.raises(JaxdivError, match="belongs to population 'p1'"):
        Store(tmp_path, population="p2").ensure()


def _write_model(path, ids, logits):
    np.savez(path, ids=ids, logits=logits)
    return path


def test_import_matches_ids_not_order(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.array([f"img{i}" for i in range(8)])
    labels = rng.integers(0, 4, 8)
    np.savez(tmp_path / "labels.npz", ids=ids, labels=labels)
    logits = rng.normal(size=(8, 4)).astype(np.float32)
    perm = rng.permutation(8)
    _write_model(tmp_path / "modelA.npz", ids[perm], logits[perm])
    _write_model(tmp_path / "modelB.npz", ids.astype("S"), logits * 2)  # bytes ids work too
    names = import_predictions(
        tmp_path / "store",
        "test",
        tmp_path / "labels.npz",
        [tmp_path / "modelA.npz", tmp_path / "modelB.npz"],
    )
    assert names == ["modelA", "modelB"]
    s = Store(tmp_path / "store")
    np.testing.assert_array_equal(s.ids("test"), ids)
    np.testing.assert_array_equal(s.labels("test"), labels)
    np.testing.assert_allclose(s.member_logits("modelA", "test"), logits)
    np.testing.assert_allclose(s.member_logits("modelB", "test"), logits * 2)
    assert s.member_info("modelA")["source"] == "imported"
    # a second import into the existing split, with labels.npz in another order
    np.savez(tmp_path / "labels2.npz", ids=ids[::-1], labels=labels[::-1])
    _write_model(tmp_path / "modelC.npz", ids, logits + 1)
    import_predictions(
        tmp_path / "store", "test", tmp_path / "labels2.npz", [tmp_path / "modelC.npz"]
    )
    np.testing.assert_allclose(s.member_logits("modelC", "test"), logits + 1)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda ids, lg: (ids[:-1], lg[:-1]), "1 id.s. missing"),
        (lambda ids, lg: (np.append(ids, "zzz"), np.vstack([lg, lg[:1]])), "1 unknown id"),
        (lambda ids, lg: (ids, lg[:, :3]), "3 classes, but 'good' has 4"),
        (lambda ids, lg: (ids, np.where(np.eye(8, 4) > 0, np.inf, lg)), "NaN or inf"),
        (lambda ids, lg: (ids, np.full_like(lg, np.nan)), "NaN or inf"),
        (lambda ids, lg: (np.r_[ids[:-1], ids[:1]], lg), "not unique"),
    ],
)
def test_refused_import_changes_nothing(tmp_path, mutate, message):
    rng = np.random.default_rng(1)
    ids = np.array([f"img{i}" for i in range(8)])
    np.savez(tmp_path / "labels.npz", ids=ids, labels=rng.integers(0, 4, 8))
    logits = rng.normal(size=(8, 4))
    _write_model(tmp_path / "old.npz", ids, logits)
    import_predictions(tmp_path / "store", "test", tmp_path / "labels.npz", [tmp_path / "old.npz"])
    before = _snapshot(tmp_path / "store")
    _write_model(tmp_path / "good.npz", ids, logits)
    bad_ids, bad_logits = mutate(ids, logits)
    _write_model(tmp_path / "bad.npz", bad_ids, bad_logits)
    with pytest.raises(JaxdivError, match=message):
        import_predictions(
            tmp_path / "store",
            "test",
            tmp_path / "labels.npz",
            [tmp_path / "good.npz", tmp_path / "bad.npz"],
        )
    assert _snapshot(tmp_path / "store") == before


def test_duplicate_member_names_and_label_mismatch_are_refused(tmp_path):
    ids = np.array(["a", "b", "c"])
    np.savez(tmp_path / "labels.npz", ids=ids, labels=np.array([0, 1, 2]))
    _write_model(tmp_path / "m.npz", ids, np.eye(3))
    import_predictions(tmp_path / "s", "test", tmp_path / "labels.npz", [tmp_path / "m.npz"])
    with pytest.raises(JaxdivError, match="already has predictions"):
        import_predictions(tmp_path / "s", "test", tmp_path / "labels.npz", [tmp_path / "m.npz"])
    (tmp_path / "d").mkdir()
    _write_model(tmp_path / "d" / "m2.npz", ids, np.eye(3))
    _write_model(tmp_path / "m2.npz", ids, np.eye(3))
    with pytest.raises(JaxdivError, match="given twice"):
        import_predictions(
            tmp_path / "s",
            "test",
            tmp_path / "labels.npz",
            [tmp_path / "m2.npz", tmp_path / "d" / "m2.npz"],
        )
    np.savez(tmp_path / "labels_bad.npz", ids=ids, labels=np.array([2, 1, 0]))
    with pytest.raises(JaxdivError, match="labels disagree"):
        import_predictions(
            tmp_path / "s", "test", tmp_path / "labels_bad.npz", [tmp_path / "m2.npz"]
        )
    assert Store(tmp_path / "s").members("test") == ["m"]


# --- predict: a representation learner's offline probe ---------------------------------------

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _ssl_member(workdir):
    """A SimCLR ResNet-8 trained 2 steps with ImageNet normalisation on its views."""
    import ml_collections

    from jaxdiv.train.loop import train
    from tests.support import tiny_config

    c = tiny_config(name="ssl", num_steps=2, checkpoint_every_steps=2)
    c.method = ml_collections.ConfigDict({"name": "simclr", "temperature": 0.2})
    c.method.projector = ml_collections.ConfigDict({"hidden": [16], "out": 8})
    c.data.views = ml_collections.ConfigDict(
        {"crop_scale": [0.3, 1.0], "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    )
    c.data.train_split = "train[:256]"
    c.data.eval_split = ""
    c.probe = ml_collections.ConfigDict(
        {"fit_split": "train[:256]", "val_split": "train[256:384]", "l2_grid": [1e-3, 1e-1]}
    )
    c.probe.knn_k = 5
    train(c, workdir, progress=False)
    return c


class _Reads:
    """Counts checkpoint restores and records every split read (and any loaded train split)."""

    def __init__(self, monkeypatch):
        import jaxdiv.store.predict as predict
        from jaxdiv.data import streaming

        self.restores, self.splits, self.train_loads = 0, [], 0
        restore, eval_split, train_split = (
            predict.restore_variables,
            streaming.eval_split,
            streaming.train_split,
        )

        def counted_restore(*a, **kw):
            self.restores += 1
            return restore(*a, **kw)

        def recorded_eval(data_cfg, split):
            self.splits.append(split)
            return eval_split(data_cfg, split)

        def recorded_train(data_cfg, *, load=True):
            self.train_loads += bool(load)
            return train_split(data_cfg, load=load)

        monkeypatch.setattr(predict, "restore_variables", counted_restore)
        monkeypatch.setattr(streaming, "eval_split", recorded_eval)
        monkeypatch.setattr(streaming, "train_split", recorded_train)

    def reset(self):
        self.restores, self.splits, self.train_loads = 0, [], 0


@pytest.mark.usefixtures("tfds_dir")
def test_predict_of_a_representation_learner(tmp_path, monkeypatch):
    from jaxdiv.data.augment import normalize
    from jaxdiv.data.datasets import load_split
    from jaxdiv.store.predict import predict_member
    from jaxdiv.store.probe import OfflineProbe
    from jaxdiv.train.loop import restore_variables

    work = tmp_path / "run"
    config = _ssl_member(work)
    reads = _Reads(monkeypatch)

    # first predict: one restore; the probe is fitted (fit and validation splits read)
    out = predict_member(config, work, tmp_path / "store", ["test[:64]"])
    assert reads.restores == 1 and reads.train_loads == 0
    assert sorted(reads.splits) == ["test[:64]", "train[256:384]", "train[:256]"]
    s = Store(tmp_path / "store")
    info = s.member_info("ssl")
    assert "offline linear probe (L2" in info["classifier"]
    m = info["metrics"]
    assert out["test.0-64"]["accuracy"] == m["offline_probe_test[:64]_accuracy"]
    assert {"offline_probe_val_accuracy", "knn_val_accuracy", "knn_test[:64]_accuracy"} <= set(m)
    assert (work / "offline_probe" / "probe.npz").exists()

    # embeddings use the member's training normalisation (ImageNet statistics), not CIFAR's
    setup, variables, _ = restore_variables(config, work)
    images = load_split("cifar10", "test[:64]").images
    _, ref = setup.method.predict(variables, normalize(images, IMAGENET_MEAN, IMAGENET_STD))
    _, cifar = setup.method.predict(variables, normalize(images))
    emb = s.embeddings("ssl", "test.0-64")
    np.testing.assert_allclose(emb, ref, atol=1e-4)
    assert not np.allclose(emb, cifar, atol=1e-2)
    kept = OfflineProbe(config, work, setup.method, variables, setup.mesh, 10, 2)
    np.testing.assert_allclose(
        s.member_logits("ssl", "test.0-64"), kept.fit().logits(emb), atol=1e-4
    )

    # a further split: the kept probe is reused, only that split is read
    reads.reset()
    predict_member(config, work, tmp_path / "store", ["test[64:128]"])
    assert reads.restores == 1 and reads.splits == ["test[64:128]"] and reads.train_loads == 0
    m2 = s.member_info("ssl")["metrics"]
    assert m2["offline_probe_l2"] == m["offline_probe_l2"] and "test.0-64_accuracy" in m2
    assert "offline_probe_test[64:128]_accuracy" in m2

    # everything present: no restore, nothing read
    reads.reset()
    assert predict_member(config, work, tmp_path / "store", ["test[:64]", "test[64:128]"]) == {}
    assert reads.restores == 0 and reads.splits == []

    # the same member through the streamed reader (ImageNet's path): same images, same outputs
    streamed = config.copy_and_resolve_references()
    streamed.data.update(streaming=True, center_fraction=1.0, num_threads=2, train_crop="resize")
    reads.reset()
    predict_member(streamed, work, tmp_path / "streamed", ["test[:64]"])
    assert sorted(reads.splits) == ["test[:64]", "train[256:384]", "train[:256]"]  # refitted
    t = Store(tmp_path / "streamed")
    np.testing.assert_allclose(t.embeddings("ssl", "test.0-64"), emb, atol=1e-4)
    np.testing.assert_allclose(
        t.member_logits("ssl", "test.0-64"), s.member_logits("ssl", "test.0-64"), atol=1e-3
    )
